"""The venues side by side: each feed at 10 symbols on the simulator, at full speed and at 1,000 frames/s.

    python -m bench.venues [--seconds 8] [--symbols 10] [--feeds a,b,...] [--out bench/results.md]

Every feed runs alone (its own program, `python -m workers <feed>`, config pointed at the simulator),
in the same run as `bybit_futures_orderbook`, the reference row: the figures to compare are each
feed's CPU per message as a ratio to that row's, measured minutes apart on the same machine.
Messages are the feed's own count (`messages_total` in its status hash: frames it parsed).

- full speed: the simulator publishes as fast as it can (rate <= 0); frames/s and CPU per message.
- 1,000 frames/s: the simulator's per-topic rate set so that the feed receives about 1,000 frames/s
  in all (calibrated from the simulator's frame count: topics differ per feed); CPU per message there
  is dominated by wake-ups on these machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import requests
import yaml

from bench.bench import PY, Sim, proc_cpu_s, proc_rss_mb
from tests.harness import ROOT, RedisServer, free_port, sim_config, wait_for
from workers import registry

REFERENCE = "bybit_futures_orderbook"
PACED_FRAMES_PER_S = 1000.0


Symbols = Callable[[Sim, int], list[str]]


def _numbered(fmt: str) -> Symbols:
    return lambda _sim, n: [fmt.format(i=i) for i in range(n)]


def _deribit(kind: str) -> Symbols:
    """The first n live instruments of that kind the simulator lists (names carry dates: read, not made up)."""
    def listed(sim: Sim, n: int) -> list[str]:
        names = []
        for coin in ("BTC", "ETH"):
            reply = requests.get(f"http://127.0.0.1:{sim.port}/deribit/api/v2/public/get_instruments",
                                 params={"currency": coin, "kind": kind, "expired": "false"}, timeout=5).json()
            names += [row["instrument_name"] for row in reply["result"]]
        return names[:n]
    return listed


# Each feed's symbols at the benchmark's size: names its simulator lists. A feed missing here runs
# with its exchanges.yaml symbols.
SYMBOLS: dict[str, Symbols] = {
    REFERENCE: _numbered("SIM{i:03d}USDT"),
    "binance_spot": _numbered("SIM{i:03d}USDT"),
    "binance_futures": _numbered("SIM{i:03d}USDT"),
    "deribit_futures": _deribit("future"),
    "deribit_options": _deribit("option"),
    "okx_spot": _numbered("SIM{i:03d}-USDT"),
    "okx_swap": _numbered("SIM{i:03d}-USDT-SWAP"),
}


def _frames_sent(sim: Sim, exchange: str) -> int:
    stats = requests.get(f"http://127.0.0.1:{sim.port}/_sim/stats", timeout=5).json()
    return int(stats[exchange]["frames_sent"])


class Program:
    """One feed program against the simulator; samples its message count and CPU."""

    def __init__(self, feed_id: str, config: dict, redis_url: str) -> None:
        path = Path(tempfile.mkdtemp(prefix="ltp-bench-")) / "exchanges.yaml"
        path.write_text(yaml.safe_dump(config))
        self.key = f"service:status:{feed_id}"
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.redis.delete(self.key)
        self.proc = subprocess.Popen([PY, "-m", "workers", feed_id], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     env={**os.environ, "LTP_CONFIG": str(path), "LTP_LOG_LEVEL": "WARNING"})
        wait_for(lambda: int(self.redis.hget(self.key, "messages_total") or 0) > 0, 60)

    def sample(self) -> tuple[int, float, float]:
        """(messages_total, status time, cpu seconds), the first two from one status snapshot."""
        before = self.redis.hget(self.key, "updated_at")
        st = wait_for(lambda: (x := self.redis.hgetall(self.key)).get("updated_at") != before and x, 5)
        stamp = dt.datetime.fromisoformat(st["updated_at"].replace("Z", "+00:00")).timestamp()
        return int(st["messages_total"]), stamp, proc_cpu_s(self.proc.pid)

    def measure(self, seconds: float) -> dict:
        m0, t0, c0 = self.sample()
        time.sleep(seconds)
        m1, t1, c1 = self.sample()
        n = max(1, m1 - m0)
        return {"rate": n / (t1 - t0), "cpu_us_per_msg": (c1 - c0) / n * 1e6, "cpu_pct": (c1 - c0) / (t1 - t0) * 100,
                "rss_mb": proc_rss_mb(self.proc.pid)}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def bench_feed(sim: Sim, redis_url: str, feed_id: str, n_symbols: int, seconds: float) -> dict:
    spec = registry.feed(feed_id)
    assert spec is not None, feed_id
    overrides: dict = {feed_id: {"enabled": True, "redis_prefix": feed_id}}
    symbols = SYMBOLS[feed_id](sim, n_symbols) if feed_id in SYMBOLS else None
    if symbols is not None:
        overrides[feed_id].update(symbols=symbols, **({"selection": {}} if spec.kind == "option" else {}))
    config = sim_config(redis_url, sim.port, overrides=overrides)
    sim.set(rate_hz=5)
    prog = Program(feed_id, config, redis_url)
    try:
        f0, t0 = _frames_sent(sim, spec.exchange), time.monotonic()
        time.sleep(2.0)
        topics = max(1.0, (_frames_sent(sim, spec.exchange) - f0) / (time.monotonic() - t0) / 5)
        sim.set(rate_hz=0)
        time.sleep(1.0)
        full = prog.measure(seconds)
        sim.set(rate_hz=PACED_FRAMES_PER_S / topics)
        time.sleep(1.0)
        paced = prog.measure(seconds)
    finally:
        sim.set(rate_hz=5)
        prog.stop()
    n = len(symbols if symbols is not None else config_symbols(config, feed_id))
    return {"feed": feed_id, "symbols": n, "topics": round(topics), "full": full, "paced": paced}


def config_symbols(config: dict, feed_id: str) -> list[str]:
    for ex in config["exchanges"].values():
        if feed_id in ex.get("services", {}):
            return list(ex["services"][feed_id].get("symbols") or [])
    return []


def render(rows: list[dict], when: str, machine: str) -> list[str]:
    ref = next(r for r in rows if r["feed"] == REFERENCE)
    out = [f"### Venues side by side ({when}, {machine})", "",
           "`python -m bench.venues`: each feed alone on the simulator; CPU per message as a ratio to "
           f"`{REFERENCE}` measured in the same run.", "",
           "| feed | symbols | topics | full speed: frames/s | µs CPU/msg | × ref | 1k frames/s: frames/s | µs CPU/msg | × ref | RSS MB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, p = r["full"], r["paced"]
        out.append(f"| `{r['feed']}` | {r['symbols']} | {r['topics']} | {f['rate']:,.0f} | {f['cpu_us_per_msg']:.1f} | "
                   f"{f['cpu_us_per_msg'] / ref['full']['cpu_us_per_msg']:.2f} | {p['rate']:,.0f} | {p['cpu_us_per_msg']:.1f} | "
                   f"{p['cpu_us_per_msg'] / ref['paced']['cpu_us_per_msg']:.2f} | {f['rss_mb']:.1f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--feeds", help="comma-separated feed ids (default: the reference and every feed in bench.venues.SYMBOLS)")
    ap.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = ap.parse_args()
    feeds = args.feeds.split(",") if args.feeds else list(SYMBOLS)
    if REFERENCE not in feeds:
        feeds.insert(0, REFERENCE)
    server = RedisServer(free_port()).start()
    sim = Sim()
    rows = []
    try:
        for feed_id in feeds:
            rows.append(bench_feed(sim, server.url, feed_id, args.symbols, args.seconds))
            print(rows[-1], flush=True)
    finally:
        sim.stop()
        server.cleanup()
    table = render(rows, dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print("\n".join(table))
    if args.out:
        with args.out.open("a") as f:
            f.write("\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
