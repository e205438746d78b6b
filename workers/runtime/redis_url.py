"""Redis URLs: the forms ltp accepts, and the one way feeds and panel build a client from one.

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ssl_ca_certs=/path/ca.pem&ssl_certfile=...&ssl_keyfile=...]
    unix:///path/redis.sock[?db=0][&password=...]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]

The first three are redis-py's own (query options as `redis.ConnectionPool.from_url` reads them).
The Sentinel form asks the listed sentinels for the master of `service` (redis-py's `Sentinel`,
`master_for`), before every connect: after a failover, the next (re)connect goes to the promoted
master. The user and password are the master's; the sentinels are asked without credentials.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"
FORMS = (
    "redis://[[user]:password@]host[:port][/db]",
    "rediss://...[?ssl_ca_certs=/path/ca.pem] (TLS)",
    "unix:///path/redis.sock[?db=0]",
    f"{SENTINEL_SCHEME}://[[user]:password@]host:port[,host:port...]/service[/db]",
)
ALLOWED = ", ".join(FORMS)
_FILE_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")  # checked to exist by check()


class SentinelUrl(NamedTuple):
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel(url: str) -> SentinelUrl:
    """`redis+sentinel://[[user]:password@]h1:26379,h2:26379/mymaster[/db]`; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{SENTINEL_SCHEME}:// takes no query options")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    sentinels = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.strip("[]")  # [::1]:26379
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"sentinel {item!r} is not host:port")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /service or /service/db")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"db {path[1]!r} is not a number")
    return SentinelUrl(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0, username, password)


def _options(timeout: float, connect_timeout: float) -> dict[str, Any]:
    """What every ltp connection has: calls that fail fast when Redis is away, so callers back off."""
    return {"decode_responses": True, "socket_timeout": timeout, "socket_connect_timeout": connect_timeout,
            "health_check_interval": 0, "retry_on_timeout": False}


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel pool bounded like the panel's: a caller waits `timeout` for a free connection."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        # The Sentinel proxy calls disconnect(inuse_connections=False) when the master moves; the
        # blocking pool's takes no argument. Idle connections are the ones in the queue.
        if inuse_connections:
            redis.BlockingConnectionPool.disconnect(self)
            return
        idle = [c for c in list(self.pool.queue) if c is not None]
        for conn in idle:
            conn.disconnect()


def connection_pool(url: str, timeout: float, connect_timeout: float, *, max_connections: int | None = None,
                    pool_timeout: float | None = None) -> redis.ConnectionPool:
    """A pool for any accepted URL form. With `pool_timeout`, a bounded blocking pool (the panel's):
    a caller waits that long for one of `max_connections`, then gets ConnectionError."""
    options = _options(timeout, connect_timeout)
    bounded: dict[str, Any] = {}
    if pool_timeout is not None:
        bounded = {"max_connections": max_connections or 50, "timeout": pool_timeout}
    elif max_connections is not None:
        bounded = {"max_connections": max_connections}
    if not url.startswith(f"{SENTINEL_SCHEME}://"):
        cls = redis.BlockingConnectionPool if pool_timeout is not None else redis.ConnectionPool
        return cls.from_url(url, **options, **bounded)
    s = parse_sentinel(url)
    # The sentinels: the same socket timeouts, and no retries (redis.Redis retries 3 times with a
    # backoff of up to 10 s by default): an unreachable sentinel is skipped at once for the next.
    sentinel_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, "retry": Retry(NoBackoff(), 0)}
    sentinel = Sentinel(s.sentinels, sentinel_kwargs=sentinel_kwargs, db=s.db, username=s.username,
                        password=s.password, **options)
    pool_class = BlockingSentinelConnectionPool if pool_timeout is not None else SentinelConnectionPool
    return sentinel.master_for(s.service, connection_pool_class=pool_class, **bounded).connection_pool


def client(url: str, timeout: float, connect_timeout: float) -> redis.Redis:
    return redis.Redis(connection_pool=connection_pool(url, timeout, connect_timeout))


def redact(url: str) -> str:
    """The URL with its credentials hidden, for logs and error messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def check(url: Any) -> None:
    """ValueError (what is wrong) unless `url` is one of FORMS with options redis-py takes. Nothing connects."""
    if not isinstance(url, str):
        raise ValueError(f"expected a Redis URL, got {url!r} ({type(url).__name__})")
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME):
        raise ValueError(f"expected a Redis URL, got {redact(url)!r}")
    if scheme == "unix" and not urlsplit(url).path:
        raise ValueError("unix:// needs the socket's path: unix:///path/redis.sock")
    if scheme in ("redis", "rediss"):
        for name, values in parse_qs(urlsplit(url).query).items():
            if name in _FILE_OPTIONS and not os.path.isfile(unquote(values[0])):
                raise ValueError(f"{name}: no such file {unquote(values[0])!r}")
    try:
        pool = connection_pool(url, 1, 1)
        pool.make_connection()  # builds the connection object (checks every option), no network
    except (ValueError, TypeError, redis.RedisError) as exc:
        raise ValueError(f"{redact(url)!r}: {exc}") from None
