"""supervisord program `redis`: run a private redis-server unless one already answers at REDIS_URL.

The server binds 127.0.0.1 only and keeps its data under var/redis/. If
REDIS_URL names another host, or a server already answers there, this
program says so and exits 0 (supervisord then leaves it EXITED).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import redis

from workers.runtime.config import ROOT, ConfigError, load_config


def main() -> None:
    try:
        url = load_config().redis_url
    except ConfigError as exc:
        print(exc, flush=True)
        sys.exit(2)
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if parsed.scheme != "redis" or host not in ("127.0.0.1", "localhost"):
        print(f"REDIS_URL points at {host}; not starting a local redis-server", flush=True)
        return
    try:
        redis.Redis(host=host, port=port, socket_connect_timeout=1).ping()
        print(f"a Redis server already answers at {host}:{port}; using it", flush=True)
        return
    except redis.RedisError:
        pass
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server is not installed: run `make install` (apt-get install redis-server)", flush=True)
        sys.exit(1)
    data_dir = Path(os.environ.get("LTP_VAR", ROOT / "var")) / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting {server} on 127.0.0.1:{port}, data in {data_dir}", flush=True)
    os.execv(server, [
        server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
        "--save", "300 1", "--appendonly", "no", "--protected-mode", "yes",
    ])


if __name__ == "__main__":
    main()
