"""Where a feed's full-speed CPU goes: the real read loop, parser and sink, in one process, on pre-built frames.

    python -m bench.hotpath_profile [--feed linear|spot] [--seconds 6] [--profile] [--top 25]

The connection's own read loop (`WsConnection._session`: socket read, wsframe decode, the stream's
parse, `RedisSink.stage`, one flush per read) runs on this process's main thread against the bench's
frame senders (linear: bench.peer's Bybit linear ticker deltas, the frames of `make bench-peer`;
spot: bench.bench's spot ticker snapshots) and a private redis-server, with the programs' own
settings (publish on, history_len 60; linear depth 50, levels 10; spot without book top). Prints
frames/s and CPU µs per frame; with --profile, cProfile's top functions by own time (cProfile adds
its own cost per call: read the order and the shares, not the absolute figures).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import threading
import time
from typing import Any

import websocket

from tests.harness import RedisServer
from workers.exchanges.bybit import LinearStream, SpotStream
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import WsConnection


def measure(feed: str, seconds: float, profile: bool, top: int) -> dict[str, Any]:
    from bench.bench import FrameServer, symbols
    from bench.peer import FrameSender

    syms = symbols(10)
    server = RedisServer().start()
    sender: Any = FrameSender(10) if feed == "linear" else FrameServer(10)
    try:
        if feed == "linear":
            url = f"{sender.ws_base}/v5/public/linear"
            stream: Any = LinearStream("linear#0", url, list(syms), depth=50, levels=10)
            prefix = "bybit_futures"
        else:
            url = sender.url
            stream = SpotStream("spot#0", url, list(syms), book_top=False)
            prefix = "bybit_spot"
        stats = FeedStats("profile", syms)
        sink = RedisSink(server.url, prefix, stats, publish=True, history_len=60)
        conn = WsConnection(stream, sink, stats)
        ws = websocket.create_connection(url, skip_utf8_validation=True, enable_multithread=True)
        conn._ws = ws
        marks: dict[str, float] = {}

        def window() -> None:
            time.sleep(1.0)  # warm-up
            marks.update(n0=stats.messages_total, t0=time.perf_counter())
            time.sleep(seconds)
            marks.update(n1=stats.messages_total, t1=time.perf_counter())
            conn._stopping.set()
            conn._abort()

        prof = cProfile.Profile() if profile else None
        t = threading.Thread(target=window, daemon=True)
        t.start()
        # The read loop runs on this thread: cProfile profiles the thread that enables it.
        c_start = time.thread_time()
        ru_start = resource.getrusage(resource.RUSAGE_THREAD)
        if prof is not None:
            prof.enable()
        try:
            conn._session(ws)
        except Exception:  # noqa: BLE001 - the abort may end the read loop with an error
            pass
        if prof is not None:
            prof.disable()
        c_end = time.thread_time()
        ru_end = resource.getrusage(resource.RUSAGE_THREAD)
        t.join()
        n = marks["n1"] - marks["n0"]
        total_frames = stats.messages_total  # CPU: the read loop's thread over the whole session
        out: dict[str, Any] = {"feed": feed, "frames_per_s": n / (marks["t1"] - marks["t0"]),
                               "cpu_us_per_frame": (c_end - c_start) / max(1, total_frames) * 1e6,
                               # sys: the kernel's share (socket reads, the Redis sends over loopback)
                               "sys_us_per_frame": (ru_end.ru_stime - ru_start.ru_stime) / max(1, total_frames) * 1e6,
                               "redis_writes": stats.writes_total, "parse_errors": stats.parse_errors}
        if prof is not None:
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
            out["profile"] = s.getvalue()
        ws.close()
        sink.close()
        return out
    finally:
        sender.stop()
        server.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feed", choices=("linear", "spot"), default="linear")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    out = measure(args.feed, args.seconds, args.profile, args.top)
    prof = out.pop("profile", None)
    print(json.dumps(out))
    if prof:
        print(prof)


if __name__ == "__main__":
    main()
