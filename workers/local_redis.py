"""supervisord program `redis`: run a private redis-server unless one already answers at REDIS_URL.

The server binds 127.0.0.1 only and keeps its data under var/redis/. If
REDIS_URL names another host, or a server already answers there, this
program says so and exits 0 (supervisord then leaves it EXITED). A password
in REDIS_URL (redis://:secret@127.0.0.1:6379/0) is used to ask, and the
server started here requires it (written to a 0600 config file, not argv).
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
    if parsed.scheme != "redis":  # rediss, unix, redis+sentinel (several hosts: no single port to read)
        print(f"REDIS_URL is a {parsed.scheme}:// URL; not starting a local redis-server", flush=True)
        return
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if parsed.scheme != "redis" or host not in ("127.0.0.1", "localhost"):
        print(f"REDIS_URL points at {host}; not starting a local redis-server", flush=True)
        return
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        print(f"a Redis server already answers at {host}:{port}; using it", flush=True)
        return
    except redis.AuthenticationError as exc:  # taken by a server that wants other credentials
        print(f"a Redis server at {host}:{port} refused the credentials in REDIS_URL ({exc}); "
              "fix REDIS_URL or stop that server", flush=True)
        sys.exit(1)
    except redis.ResponseError as exc:  # NOAUTH and friends: it answers, but not to us
        print(f"a Redis server at {host}:{port} answered {exc}; set its password in REDIS_URL", flush=True)
        sys.exit(1)
    except redis.RedisError:
        pass
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server is not installed: run `make install` (apt-get install redis-server)", flush=True)
        sys.exit(1)
    data_dir = Path(os.environ.get("LTP_VAR", ROOT / "var")) / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "ltp-redis.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"bind 127.0.0.1\nport {port}\ndir {data_dir}\nsave 300 1\nappendonly no\nprotected-mode yes\n")
        if parsed.password:
            f.write(f'requirepass "{parsed.password}"\n')
    print(f"starting {server} on 127.0.0.1:{port}, data in {data_dir}"
          f"{', password required (from REDIS_URL)' if parsed.password else ', no password (set one in REDIS_URL)'}", flush=True)
    os.execv(server, [server, str(conf)])


if __name__ == "__main__":
    main()
