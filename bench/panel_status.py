"""Median latency of GET /api/status with 11 supervisord programs and 50,000 instrument keys in Redis.

Runs a private redis-server and supervisord (the repo's supervisord.conf: its
programs plus filler programs up to 11), fills Redis with 50k `<prefix>:<SYMBOL>`
hashes spread over the configured prefixes (with their symbol indexes and
history lists), then times the endpoint through the real HTTP server.

    python bench/panel_status.py [--requests 500] [--keys 50000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from pathlib import Path

import requests
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlpanel import PanelSettings, create_app  # noqa: E402
from tests.harness import RedisServer, Supervisor, free_port, sim_config  # noqa: E402
from workers.runtime.config import load_config  # noqa: E402
from workers.runtime.sink import HISTORY, SYMBOL_INDEX  # noqa: E402

PROGRAMS = 11


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


def measure(requests_n: int = 500, keys: int = 50_000) -> dict:
    """Time /api/status (and, as the same-run baseline, the static /openapi.json) over real HTTP."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request access log lines
    redis_server = RedisServer().start()
    sv = Supervisor(sim_config(redis_server.url, free_port()), redis_server.url)
    # Filler programs so supervisord reports PROGRAMS processes whatever the repo's conf holds today.
    base = sv.conf_path.read_text()
    have = base.count("[program:")
    extra = "".join(f"\n[program:bench_filler_{i}]\ncommand=sleep 3600\nautostart=true\nstartsecs=0\n"
                    for i in range(max(0, PROGRAMS - have)))
    sv.conf_path.write_text(base + extra)
    server = None
    try:
        sv.start()
        config = load_config(sv.config_path)
        client = redis_server.client()
        fill_redis(client, [s.redis_prefix for s in config.services.values()], keys)
        nprog = len(sv.rpc().supervisor.getAllProcessInfo())
        app = create_app(config, sv.server_url, settings=PanelSettings())
        port = free_port()
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        session = requests.Session()

        def timed(path: str) -> list[float]:
            url = f"http://127.0.0.1:{port}{path}"
            for _ in range(20):
                session.get(url).raise_for_status()
            out = []
            for _ in range(requests_n):
                t0 = time.perf_counter()
                session.get(url).raise_for_status()
                out.append((time.perf_counter() - t0) * 1000)
            return sorted(out)

        status_ms, static_ms = timed("/api/status"), timed("/openapi.json")
        body = session.get(f"http://127.0.0.1:{port}/api/status").json()
        return {
            "programs": nprog, "services": len(body["services"]), "keys": client.dbsize(),
            "data_points": body["summary"]["data_points"], "requests": requests_n,
            "median_ms": statistics.median(status_ms), "p90_ms": status_ms[int(0.9 * (len(status_ms) - 1))],
            "p99_ms": status_ms[int(0.99 * (len(status_ms) - 1))],
            "baseline": f"static /openapi.json median {statistics.median(static_ms):.1f} ms",
            "baseline_median_ms": statistics.median(static_ms),
        }
    finally:
        if server:
            server.shutdown()
        sv.stop()
        redis_server.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--keys", type=int, default=50_000)
    args = ap.parse_args()
    r = measure(args.requests, args.keys)
    print(f"programs={r['programs']} services={r['services']} redis_keys={r['keys']} "
          f"data_points={r['data_points']} requests={r['requests']}")
    print(f"/api/status over HTTP: median={r['median_ms']:.2f} ms p90={r['p90_ms']:.2f} ms p99={r['p99_ms']:.2f} ms; "
          f"{r['baseline']}")


if __name__ == "__main__":
    main()
