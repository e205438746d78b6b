"""Median latency of GET /api/status with 11 supervisord programs and 50,000 instrument keys in Redis.

Runs a private redis-server and supervisord (the repo's supervisord.conf: its
programs plus filler programs up to 11), fills Redis with 50k `<prefix>:<SYMBOL>`
hashes spread over the configured prefixes (with their symbol indexes and
history lists), then times the endpoint through the panel's real entry point
(`python -m controlpanel`, the server it starts, over HTTP).

    python bench/panel_status.py [--requests 500] [--keys 50000]
    python bench/panel_status.py --before DIR    # also DIR/controlpanel, e.g. from
                                                 # `git archive HEAD controlpanel | tar -x -C DIR`

With --before both panels run side by side against the same Redis, supervisord
and data, and their requests alternate in rounds, so machine noise hits both
alike; the ratio after/before is the figure to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import ROOT, RedisServer, Supervisor, free_port, sim_config, wait_for  # noqa: E402
from workers.runtime.config import load_config  # noqa: E402
from workers.runtime.sink import HISTORY, SYMBOL_INDEX  # noqa: E402

PROGRAMS = 11
ROUNDS = 10  # requests alternate between panels in this many rounds


def fill_redis(client, prefixes: list[str], keys: int) -> None:
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        prefix = prefixes[i % len(prefixes)]
        sym = f"SYM{i:06d}USDT"
        pipe.hset(f"{prefix}:{sym}", mapping={"ltp": "100.5", "timestamp": "2025-01-01T00:00:00.000Z", "recv_ts": str(now)})
        pipe.sadd(SYMBOL_INDEX.format(prefix=prefix), sym)
        if i % 10 == 0:
            pipe.lpush(HISTORY.format(prefix=prefix, symbol=sym), *(f"{now - k * 1000}:100.{k}" for k in range(60)))
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


class Panel:
    """`python -m controlpanel` from `tree` (its controlpanel package; workers from this repo)."""

    def __init__(self, tree: Path, sv: Supervisor, redis_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LTP_CONFIG": str(sv.config_path), "REDIS_URL": redis_url, "LTP_PANEL_PORT": str(self.port),
               "SUPERVISOR_SERVER_URL": sv.server_url, "PYTHONPATH": str(ROOT), "LTP_PANEL_HOST": "127.0.0.1"}
        env.pop("LTP_PANEL_TOKEN", None)
        # cwd first on sys.path: `-m controlpanel` imports the tree's own package.
        self.proc = subprocess.Popen([sys.executable, "-m", "controlpanel"], cwd=tree, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = requests.Session()
        wait_for(lambda: self.session.get(f"{self.url}/api/status", timeout=2).ok, 20)

    def timed(self, path: str, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.session.get(self.url + path, timeout=5).raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"median_ms": statistics.median(ms), "p90_ms": ms[int(0.9 * (len(ms) - 1))], "p99_ms": ms[int(0.99 * (len(ms) - 1))]}


def run(trees: dict[str, Path], requests_n: int = 500, keys: int = 50_000) -> dict:
    """Time /api/status and, as a same-run baseline, the static /openapi.json on each tree's panel."""
    redis_server = RedisServer().start()
    sv = Supervisor(sim_config(redis_server.url, free_port()), redis_server.url)
    # Filler programs so supervisord reports PROGRAMS processes whatever the repo's conf holds today.
    base = sv.conf_path.read_text()
    have = base.count("[program:")
    extra = "".join(f"\n[program:bench_filler_{i}]\ncommand=sleep 3600\nautostart=true\nstartsecs=0\n"
                    for i in range(max(0, PROGRAMS - have)))
    sv.conf_path.write_text(base + extra)
    panels: dict[str, Panel] = {}
    try:
        sv.start()
        config = load_config(sv.config_path)
        client = redis_server.client()
        fill_redis(client, [s.redis_prefix for s in config.services.values()], keys)
        nprog = len(sv.rpc().supervisor.getAllProcessInfo())
        for name, tree in trees.items():
            panels[name] = Panel(tree, sv, redis_server.url)
        for p in panels.values():  # warm-up
            p.timed("/api/status", 20)
            p.timed("/openapi.json", 20)
        status: dict[str, list[float]] = {name: [] for name in panels}
        static: dict[str, list[float]] = {name: [] for name in panels}
        per_round = max(1, requests_n // ROUNDS)
        order = list(panels)
        for r in range(ROUNDS):
            for name in order if r % 2 == 0 else reversed(order):
                status[name] += panels[name].timed("/api/status", per_round)
                static[name] += panels[name].timed("/openapi.json", per_round)
        body = next(iter(panels.values())).session.get(next(iter(panels.values())).url + "/api/status").json()
        out: dict = {"programs": nprog, "services": len(body["services"]), "keys": client.dbsize(),
                     "data_points": body["summary"]["data_points"], "requests": per_round * ROUNDS, "panels": {}}
        for name in panels:
            out["panels"][name] = {**_summary(status[name]), "baseline_median_ms": statistics.median(static[name])}
        return out
    finally:
        for p in panels.values():
            p.stop()
        sv.stop()
        redis_server.cleanup()


def measure(requests_n: int = 500, keys: int = 50_000) -> dict:
    """This tree's panel only, in the shape `make bench` (bench/bench.py) renders."""
    r = run({"this": ROOT}, requests_n, keys)
    p = r.pop("panels")["this"]
    return {**r, **p, "baseline": f"static /openapi.json median {p['baseline_median_ms']:.1f} ms"}


# -- /api/compare and /api/chain: every feed configured, hashes as the feeds write them -------------------------
#
#     python bench/panel_status.py --compare [--requests 500] [--compare-extra 0]
#
# Every service of exchanges.yaml is configured (pointed at an unused simulator port: nothing runs);
# Redis holds, per spot and derivative feed, its configured symbols (plus coindcx_spot's I-USDT_INR,
# the default rate source) and `--compare-extra` more in the feed's own naming, each with the fields
# its feed writes, and per option feed a chain of 2 underlyings x 4 expiries x 40 strikes x 2 sides.
# Times GET /api/compare, /api/compare/BTC and /api/chain/bybit_options over HTTP on `python -m controlpanel`.

_EXTRA_NAMES = {  # the n-th extra symbol in each exchange's naming (markets.py maps them all)
    "bybit": "X{n}USDT", "delta": "X{n}USD", "coindcx": "B-X{n}_USDT", "hyperliquid": "X{n}",
}


def _market_fields(kind: str, exchange: str, price: float, now: int) -> dict[str, str]:
    f = {"ltp": f"{price:.2f}", "best_bid": f"{price - 0.5:.2f}", "best_ask": f"{price + 0.5:.2f}", "recv_ts": str(now),
         "timestamp": "2026-01-01T00:00:00.000Z", "original_symbol": "x", "volume_24h": "1234.5", "high_24h": f"{price * 1.01:.2f}",
         "low_24h": f"{price * 0.99:.2f}", "price_change_percent": "0.5"}
    if kind == "derivative":
        f.update({"mark_price": f"{price * 1.0001:.2f}", "index_price": f"{price:.2f}", "funding_rate": "0.0001",
                  "funding_interval_hours": "1" if exchange == "hyperliquid" else "8", "next_funding_time": "2026-01-01T08:00:00.000Z",
                  "open_interest": "1000"})
    return f


def fill_compare(client, config, extra: int) -> dict[str, int]:
    from controlpanel.markets import feed_kind  # the bench measures the panel; its mapping says what a feed is

    now = int(time.time() * 1000)
    counts = {"markets": 0, "options": 0}
    pipe = client.pipeline(transaction=False)
    for sid, svc in config.services.items():
        kind = feed_kind(sid)
        index = SYMBOL_INDEX.format(prefix=svc.redis_prefix)
        if kind == "option":
            for und, spot in (("BTC", 65000.0), ("ETH", 3200.0)):
                for week in range(4):
                    expiry = f"2026-02-{6 + 7 * week:02d}"
                    for k in range(40):
                        strike = spot * (0.8 + k * 0.01)
                        for side in ("CALL", "PUT"):
                            sym = f"{und}-{expiry}-{strike:.0f}-{side[0]}"
                            pipe.hset(f"{svc.redis_prefix}:{sym}", mapping={
                                "option_type": side, "strike_price": f"{strike:.0f}", "underlying": und, "expiry": expiry,
                                "settle_coin": "USDC", "best_bid": "100", "best_ask": "110", "mark_price": "105", "bid_size": "1",
                                "ask_size": "1", "implied_volatility": "0.5", "bid_iv": "0.49", "ask_iv": "0.51", "delta": "0.5",
                                "gamma": "0.0001", "vega": "20", "theta": "-30", "open_interest": "12", "index_price": f"{spot}",
                                "underlying_price": f"{spot}", "recv_ts": str(now), "timestamp": "2026-01-01T00:00:00.000Z"})
                            pipe.sadd(index, sym)
                            counts["options"] += 1
            continue
        if kind is None:
            continue
        symbols = list(svc.symbols) + (["I-USDT_INR"] if sid == "coindcx_spot" else [])
        symbols += [_EXTRA_NAMES[svc.exchange].format(n=n) for n in range(extra)]
        for sym in symbols:
            price = 88.0 if sym == "I-USDT_INR" else 65000.0 if "BTC" in sym else 100.0
            pipe.hset(f"{svc.redis_prefix}:{sym}", mapping=_market_fields(kind, svc.exchange, price, now))
            pipe.sadd(index, sym)
            counts["markets"] += 1
    pipe.execute()
    return counts


def run_compare(requests_n: int = 500, extra: int = 0) -> dict:
    redis_server = RedisServer().start()
    sv = Supervisor(sim_config(redis_server.url, free_port()), redis_server.url)
    panel = None
    try:
        sv.start()
        config = load_config(sv.config_path)
        counts = fill_compare(redis_server.client(), config, extra)
        panel = Panel(ROOT, sv, redis_server.url)
        paths = ("/api/compare", "/api/compare/BTC", "/api/chain/bybit_options", "/openapi.json")
        for path in paths:
            panel.timed(path, 20)  # warm-up
        times: dict[str, list[float]] = {p: [] for p in paths}
        per_round = max(1, requests_n // ROUNDS)
        for _ in range(ROUNDS):  # interleaved, so machine noise hits every path alike
            for path in paths:
                times[path] += panel.timed(path, per_round)
        body = panel.session.get(panel.url + "/api/compare").json()
        return {"services": len(config.services), "markets": counts["markets"], "options": counts["options"],
                "underlyings": len(body["underlyings"]), "requests": per_round * ROUNDS,
                "paths": {p: _summary(t) for p, t in times.items()}}
    finally:
        if panel is not None:
            panel.stop()
        sv.stop()
        redis_server.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--before", type=Path, help="a directory holding another controlpanel/ to compare with")
    ap.add_argument("--compare", action="store_true", help="time /api/compare and /api/chain instead (every feed configured)")
    ap.add_argument("--compare-extra", type=int, default=0, help="with --compare: more symbols per spot/derivative feed")
    args = ap.parse_args()
    if args.compare:
        c = run_compare(args.requests, args.compare_extra)
        print(f"services={c['services']} markets={c['markets']} option_contracts={c['options']} "
              f"underlyings={c['underlyings']} requests={c['requests']} per path")
        for path, p in c["paths"].items():
            print(f"{path:>26}: median={p['median_ms']:.2f} ms p90={p['p90_ms']:.2f} ms p99={p['p99_ms']:.2f} ms")
        return
    trees = {"before": args.before.resolve(), "after": ROOT} if args.before else {"this": ROOT}
    r = run(trees, args.requests, args.keys)
    print(f"programs={r['programs']} services={r['services']} redis_keys={r['keys']} "
          f"data_points={r['data_points']} requests={r['requests']} per panel")
    for name, p in r["panels"].items():
        print(f"{name:>6}: /api/status over HTTP median={p['median_ms']:.2f} ms p90={p['p90_ms']:.2f} ms "
              f"p99={p['p99_ms']:.2f} ms; static /openapi.json median {p['baseline_median_ms']:.2f} ms")
    if args.before:
        b, a = r["panels"]["before"], r["panels"]["after"]
        print(f"ratio after/before: /api/status median {a['median_ms'] / b['median_ms']:.2f}, "
              f"p99 {a['p99_ms'] / b['p99_ms']:.2f}; /openapi.json median {a['baseline_median_ms'] / b['baseline_median_ms']:.2f}")


if __name__ == "__main__":
    main()
