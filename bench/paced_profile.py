"""Where a feed's CPU goes at 1,000 frames/s evenly spaced: one frame per ms, in steps.

    python -m bench.paced_profile [--seconds 3] [--rounds 3]

In one process, on the same pre-built Bybit spot ticker payloads as `bench.bench --only paced`
(10 symbols), each pass wakes once per millisecond (absolute deadlines, like the paced sender)
and does one more step of the feed's per-frame work than the pass before:

    sleep      wake up only: what this machine charges per wake-up
    loads      + orjson.loads of the payload (what `parse` starts with)
    parse      + SpotStream.parse instead: the payload to fields (`Update`)
    stage      + RedisSink.stage (merge into pending)
    write      + RedisSink.flush without history: command building, one send per frame, replies
    history    + the same with history_len 60 (the bench's and demo's setting): LPUSH/LTRIM points

CPU per frame is process time over the pass divided by frames; each step's cost is the
difference from the pass before it. Passes alternate over `--rounds` and the median is kept,
since a noisy neighbour spoils a pass, not the figure. No receive path here: the socket
read and WebSocket decoding are the floor in `bench.bench` (`--reader ltp`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson

from bench.bench import prebuilt_frames, symbols
from tests.harness import RedisServer
from workers.exchanges.bybit import SpotStream
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats

STEPS = ("sleep", "loads", "parse", "stage", "write", "history")


def payloads(n_symbols: int) -> list[bytes]:
    out = []
    for frame in prebuilt_frames(n_symbols):
        head = 4 if frame[1] == 126 else 2
        out.append(frame[head:])
    return out


def run_pass(step: str, frames: list[bytes], seconds: float, redis_url: str) -> float:
    """CPU µs per frame of one pass doing the work up to `step`, one frame per ms."""
    stream = SpotStream("bench", "ws://x", symbols(10), book_top=False)
    stream.on_connect()
    sink = None
    if step in ("stage", "write", "history"):
        sink = RedisSink(redis_url, "bench_paced", FeedStats("bench_paced", symbols(10)),
                         history_len=60 if step == "history" else 0)
    work: Callable[[bytes], object]
    if step == "sleep":
        def work(f: bytes) -> object:
            return None
    elif step == "loads":
        work = orjson.loads
    elif step == "parse":
        work = stream.parse
    else:
        assert sink is not None
        stage, flush, parse = sink.stage, sink.flush, stream.parse
        do_flush = step != "stage"

        def work(f: bytes) -> object:
            updates = parse(f)
            stage(updates, int(time.time() * 1000))  # type: ignore[arg-type]
            if do_flush:
                flush()
            return None
    n = int(seconds * 1000)
    clock, sleep = time.monotonic, time.sleep
    for f in frames[:200]:  # warm-up: first writes of each key, caches
        work(f)
    if sink is not None and step == "stage":
        sink._pending.clear()
    c0 = time.process_time()
    due = clock()
    i = 0
    for i in range(n):
        due += 0.001
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        work(frames[i % len(frames)])
        if step == "stage" and sink is not None and i % 1000 == 999:
            sink._pending.clear()  # stage only: nothing is written, keep the pending dict as small as in the feed
    cpu = time.process_time() - c0
    if sink is not None:
        sink.close()
    return cpu / n * 1e6


def measure(seconds: float, rounds: int) -> dict[str, float]:
    server = RedisServer().start()
    try:
        frames = payloads(10)
        got: dict[str, list[float]] = {s: [] for s in STEPS}
        for _ in range(rounds):
            for step in STEPS:
                got[step].append(run_pass(step, frames, seconds, server.url))
        return {s: statistics.median(v) for s, v in got.items()}
    finally:
        server.cleanup()


def table(res: dict[str, float]) -> str:
    what = {"sleep": "wake-up once per ms (nothing else)", "loads": "orjson.loads of the payload",
            "parse": "parse to fields (SpotStream.parse, loads included above)", "stage": "RedisSink.stage",
            "write": "flush: commands, one send per frame, replies (no history)",
            "history": "history points (history_len 60)"}
    lines = ["| step | CPU per frame, cumulative | this step |", "| --- | --- | --- |"]
    prev = 0.0
    for s in STEPS:
        lines.append(f"| {what[s]} | {res[s]:.1f} µs | {res[s] - prev:+.1f} µs |")
        prev = res[s]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(table(measure(args.seconds, args.rounds)))


if __name__ == "__main__":
    main()
