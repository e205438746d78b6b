"""Instructions per frame of the full-speed read loop, counted by valgrind: a noise-free A/B on a noisy VM.

    python -m bench.instructions --tree /tmp/before --tree . [--frames 64000]

Time-based figures swing ±30 % between minutes on the shared 2-core VMs here, so a change worth 3-5 %
is lost in them. valgrind's cachegrind counts the instructions the process executes: the same run gives
the same count (hash seed fixed) to ~0.01 %. Each tree's real read loop (`WsConnection._read_loop` → wsframe →
`LinearStream.parse` → `RedisSink.stage` → flush to a private redis-server) runs in one process on
bench.peer's Bybit linear ticker deltas (the frames of `make bench-peer`), cut into full reads of
RECV_BYTES as at full speed; the count of an empty run (start-up, imports) is subtracted. Writes go on
the loop's thread (no writer thread). Two write modes: after every read, and (trees with
FLUSH_BEHIND_S) only when the socket drains, the two ends of what full speed does. Kernel work (the
socket reads, the sends to Redis) is not counted. Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROUNDS_FRAMES = 640  # bench.peer's linear_frames(10): 64 deltas for each of 10 symbols


def inner(rounds: int) -> None:
    """The measured process (run from the tree under test): the read loop over `rounds` x 640 deltas."""
    from bench.peer import linear_frames, symbols
    from tests.harness import RedisServer
    from workers.exchanges.bybit import LinearStream
    from workers.runtime import ws as wsmod
    from workers.runtime.sink import RedisSink
    from workers.runtime.stats import FeedStats
    from workers.runtime.wsframe import FrameDecoder

    if hasattr(wsmod, "FLUSH_BEHIND_S"):
        wsmod.FLUSH_BEHIND_S = float(os.environ["LTP_BENCH_FLUSH_BEHIND_S"])
    frames = linear_frames(10)
    blob = b"".join(frames["snapshots"]) + b"".join(frames["deltas"]) * rounds
    size = wsmod.RECV_BYTES
    reads = iter([blob[i:i + size] for i in range(0, len(blob), size)])
    server = RedisServer().start()
    try:
        syms = symbols(10)
        stats = FeedStats("bench", syms)
        sink = RedisSink(server.url, "bybit_futures", stats, publish=True, history_len=60)  # the program's settings
        conn = wsmod.WsConnection(LinearStream("linear#0", "ws://bench", list(syms), depth=50, levels=10), sink, stats)
        args: list[Any] = [None, lambda: next(reads, b"")]
        if "waiting" in inspect.signature(conn._read_loop).parameters:
            args.append(lambda: True)  # the next read is always waiting: only the drain (the end) or the interval writes
        conn._read_loop(*args, FrameDecoder(1 << 22))
        sink.close()
        print(json.dumps({"frames": stats.messages_total, "writes": stats.writes_total}), file=sys.stderr)
    finally:
        server.cleanup()


def count(tree: Path, rounds: int, flush_behind_s: float) -> tuple[int, dict[str, int]]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree), "LTP_BENCH_FLUSH_BEHIND_S": str(flush_behind_s)}
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, __file__, "--inner", str(rounds)],  # this file, the tree's modules
                         cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    done = re.search(r"^\{.*\}$", out.stderr, re.M)
    if out.returncode or not refs or not done:
        raise SystemExit(f"{tree}: valgrind run failed:\n{out.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), json.loads(done.group(0))


def measure(tree: Path, frames: int) -> dict[str, Any]:
    rounds = max(1, frames // ROUNDS_FRAMES)
    has_interval = "FLUSH_BEHIND_S" in (tree / "workers" / "runtime" / "ws.py").read_text()
    out: dict[str, Any] = {"tree": str(tree)}
    for mode, interval in (("write_every_read", 0.0), ("write_when_drained", 1e9)):
        if mode == "write_when_drained" and not has_interval:
            continue
        base, _ = count(tree, 0, interval)
        total, got = count(tree, rounds, interval)
        n = got["frames"] - 10  # the 10 snapshots are in the empty run too
        out[mode] = {"instructions_per_frame": round((total - base) / n), "frames": n, "keys_written": got["writes"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, action="append", help="a tree to measure (repeat: the first is the baseline)")
    ap.add_argument("--frames", type=int, default=64_000)
    ap.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner is not None:
        inner(args.inner)
        return
    trees = [t.resolve() for t in args.tree or [Path(".")]]
    results = [measure(t, args.frames) for t in trees]
    base = results[0]["write_every_read"]["instructions_per_frame"]
    for r in results:
        for mode in ("write_every_read", "write_when_drained"):
            if mode in r:
                r[mode]["of_baseline_every_read"] = round(r[mode]["instructions_per_frame"] / base, 3)
        print(json.dumps(r))


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run as a file for another tree (--inner): that tree's packages, not this folder's modules
    main()
