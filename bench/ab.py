"""Two trees of ltp on the same pre-built frames, rounds alternating A, B, A, B: the ratio of one change.

    python -m bench.ab --a /tmp/before --b . [--feed linear|spot] [--rounds 4] [--seconds 6] [--floor-python P]

Each tree's real program (`python -m workers bybit_futures_orderbook` or `bybit_spot`, run from that
tree) in turn against one frame sender at full speed (linear: bench.peer's Bybit linear ticker deltas,
the frames of `make bench-peer`; spot: bench.bench's spot ticker snapshots) and one private redis-server
(flushed between windows), with the programs' own settings (publish on, history_len 60). Per window:
frames/s (the feed's own messages_total) and the feed process's CPU µs per frame; per round the ratio
B / A, and the median over rounds. On a shared, noisy machine only these same-run ratios mean anything.
With --floor-python (bench/.peer-venv/bin/python) the bare asyncio client (bench/bare_asyncio.py) takes a
window in every round too, and A and B are also given as ratios to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from bench.bench import FrameServer, proc_cpu_s, symbols
from bench.peer import FrameSender
from tests.harness import RedisServer, wait_for

FEEDS = {"linear": ("bybit_futures_orderbook", "bybit_futures", "linear_ws"), "spot": ("bybit_spot", "bybit_spot", "spot_ws")}


def window(tree: Path, feed: str, url: str, redis_url: str, seconds: float) -> dict[str, float]:
    feed_id, prefix, endpoint = FEEDS[feed]
    svc: dict[str, Any] = {"endpoint": endpoint, "redis_prefix": prefix, "symbols": symbols(10)}
    svc.update({"depth": 50, "levels": 10} if feed == "linear" else {"book_top": False})
    cfg = {"redis": {"url": redis_url, "publish": True, "history_len": 60},
           "exchanges": {"bybit": {"endpoints": {endpoint: url}, "services": {feed_id: svc}}}}
    path = Path(tempfile.mkdtemp(prefix="ltp-ab-")) / "exchanges.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"service:status:{feed_id}"
    proc = subprocess.Popen([sys.executable, "-m", "workers", feed_id], cwd=tree, stdout=subprocess.DEVNULL,
                            env={**os.environ, "LTP_CONFIG": str(path), "LTP_LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree)})
    try:
        wait_for(lambda: int(r.hget(key, "messages_total") or 0) > 0, 30)
        time.sleep(1.0)

        def sample() -> tuple[int, float, float]:
            before = r.hget(key, "updated_at")
            st = wait_for(lambda: (s := r.hgetall(key)).get("updated_at") != before and s, 5)
            return int(st["messages_total"]), time.monotonic(), proc_cpu_s(proc.pid)

        m0, t0, c0 = sample()
        time.sleep(seconds)
        m1, t1, c1 = sample()
        n = max(1, m1 - m0)
        return {"rate": n / (t1 - t0), "cpu_us_per_msg": (c1 - c0) / n * 1e6}
    finally:
        proc.terminate()
        proc.wait(10)
        r.flushall()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, required=True)
    ap.add_argument("--feed", choices=tuple(FEEDS), default="linear")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--floor-python", help="also run the bare asyncio floor with this python (the peer venv's)")
    args = ap.parse_args()
    server = RedisServer().start()
    sender: Any = FrameSender(10) if args.feed == "linear" else FrameServer(10)
    url = f"{sender.ws_base}/v5/public/linear" if args.feed == "linear" else sender.url
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": [], "floor": []}
    sides = ("a", "b", "floor") if args.floor_python else ("a", "b")
    try:
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                if side == "floor":
                    runs[side].append(floor(args.floor_python, url, args.seconds))
                else:
                    runs[side].append(window(getattr(args, side).resolve(), args.feed, url, server.url, args.seconds))
    finally:
        sender.stop()
        server.cleanup()
    out: dict[str, Any] = {"feed": args.feed, "a": str(args.a), "b": str(args.b), "runs": runs}
    for k in ("rate", "cpu_us_per_msg"):
        rounds = [b[k] / a[k] for a, b in zip(runs["a"], runs["b"], strict=True)]
        out[k] = {"a": statistics.mean(x[k] for x in runs["a"]), "b": statistics.mean(x[k] for x in runs["b"]),
                  "rounds_b_over_a": [round(x, 3) for x in rounds], "median_b_over_a": round(statistics.median(rounds), 3)}
        for side in ("a", "b") if runs["floor"] else ():
            vs = [x[k] / f[k] for x, f in zip(runs[side], runs["floor"], strict=True)]
            out[k][f"{side}_over_floor"] = [round(x, 3) for x in vs]
            out[k][f"median_{side}_over_floor"] = round(statistics.median(vs), 3)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}))


def floor(python: str, url: str, seconds: float) -> dict[str, float]:
    out = subprocess.run([python, str(Path(__file__).parent / "bare_asyncio.py"), url, "10", str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 60)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rate": got["rate"], "cpu_us_per_msg": got["cpu_us_per_msg"]}


if __name__ == "__main__":
    main()
