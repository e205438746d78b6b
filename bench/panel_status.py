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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--keys", type=int, default=50_000)
    args = ap.parse_args()
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
        fill_redis(client, [s.redis_prefix for s in config.services.values()], args.keys)
        nprog = len(sv.rpc().supervisor.getAllProcessInfo())
        app = create_app(config, sv.server_url, settings=PanelSettings())
        port = free_port()
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{port}/api/status"
        session = requests.Session()
        for _ in range(20):
            session.get(url).raise_for_status()
        http_ms, inproc_ms = [], []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            session.get(url).raise_for_status()
            http_ms.append((time.perf_counter() - t0) * 1000)
        tc = app.test_client()
        for _ in range(args.requests):
            t0 = time.perf_counter()
            tc.get("/api/status")
            inproc_ms.append((time.perf_counter() - t0) * 1000)
        body = session.get(url).json()

        def q(xs: list[float], p: float) -> float:
            return sorted(xs)[int(p * (len(xs) - 1))]

        print(f"programs={nprog} services={len(body['services'])} redis_keys={client.dbsize()} "
              f"data_points={body['summary']['data_points']} requests={args.requests}")
        print(f"HTTP (werkzeug threaded server, keep-alive client): median={statistics.median(http_ms):.2f} ms "
              f"p90={q(http_ms, 0.9):.2f} ms p99={q(http_ms, 0.99):.2f} ms")
        print(f"in-process (Flask test client):                   median={statistics.median(inproc_ms):.2f} ms "
              f"p90={q(inproc_ms, 0.9):.2f} ms")
    finally:
        if server:
            server.shutdown()
        sv.stop()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
