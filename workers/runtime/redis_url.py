"""Redis URLs: the forms ltp accepts, and the one way feeds and panel build a client from one.

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ssl_ca_certs=/path/ca.pem&ssl_certfile=...&ssl_keyfile=...]
    unix:///path/redis.sock[?db=0][&password=...]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...]
        (rediss+sentinel: TLS to the sentinels and the master, with the ssl_* options)
    redis+cluster://[[user]:password@]host:port[,host:port...][?ssl_ca_certs=...]  (rediss+cluster: TLS)

The first three are redis-py's own (query options as `redis.ConnectionPool.from_url` reads them).
The Sentinel form asks the listed sentinels for the master of `service` (redis-py's `Sentinel`,
`master_for`), before every connect: after a failover, the next (re)connect goes to the promoted
master. The user and password are the master's; sentinels that require a password of their own
(`requirepass` in sentinel.conf) get `sentinel_password` (and `sentinel_username`, for an ACL user).
The Cluster form names any reachable nodes of a Redis Cluster (redis-py's `RedisCluster` reads the
slot map from them); the user and password are every node's. A cluster has no databases but 0.
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_SCHEMES = (SENTINEL_SCHEME, "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)  # every form below; check() takes no other
FORMS = (
    "redis://[[user]:password@]host[:port][/db]",
    "rediss://...[?ssl_ca_certs=/path/ca.pem] (TLS)",
    "unix:///path/redis.sock[?db=0]",
    f"{SENTINEL_SCHEME}://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...] "
    "(rediss+sentinel:// for TLS)",
    "redis+cluster://[[user]:password@]host:port[,host:port...] (rediss+cluster:// for TLS)",
)
ALLOWED = ", ".join(FORMS)
_FILE_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")  # checked to exist by check()
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


class SentinelUrl(NamedTuple):
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_auth: dict[str, str] = {}  # username/password the sentinels themselves require
    tls: dict[str, str] = {}  # rediss+sentinel: ssl options for the sentinels and the master


def _credentials_and_hosts(netloc: str, what: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """`[[user]:password@]h1:p1[,h2:p2...]`: user, password and the host list; ValueError names `what`."""
    userinfo, _, hosts = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    nodes = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.strip("[]")  # [::1]:26379
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{what} {item!r} is not host:port")
        nodes.append((host, int(port)))
    return username, password, nodes


def parse_sentinel(url: str) -> SentinelUrl:
    """`redis+sentinel://[[user]:password@]h1:26379,h2:26379/mymaster[/db][?sentinel_password=...]`
    (`rediss+sentinel://...[&ssl_ca_certs=...]` for TLS); ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    if parts.fragment:
        raise ValueError(f"{SENTINEL_SCHEME}:// takes no #fragment")
    username, password, sentinels = _credentials_and_hosts(parts.netloc, "sentinel")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /service or /service/db")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"db {path[1]!r} is not a number")
    options = {k: unquote(v[0]) for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "rediss+sentinel"
    allowed = (*_SENTINEL_AUTH, *(_FILE_OPTIONS if tls else ()))
    if set(options) - set(allowed):
        raise ValueError(f"options {sorted(options)}: only {', '.join(_SENTINEL_AUTH)}, and {', '.join(_FILE_OPTIONS)} "
                         "with rediss+sentinel://")
    auth = {k.removeprefix("sentinel_"): v for k, v in options.items() if k in _SENTINEL_AUTH}
    ssl_options = {k: v for k, v in options.items() if k in _FILE_OPTIONS}
    return SentinelUrl(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0, username, password,
                       auth, {"ssl": "1", **ssl_options} if tls else {})


class ClusterUrl(NamedTuple):
    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None
    tls: dict[str, str]  # empty: no TLS; else ssl options (possibly none beyond TLS itself)


def parse_cluster(url: str) -> ClusterUrl:
    """`redis+cluster://[[user]:password@]h1:7000[,h2:7001...][/0]`, `rediss+cluster://...[?ssl_ca_certs=...]`."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError("not a redis+cluster:// URL")
    username, password, nodes = _credentials_and_hosts(parts.netloc, "node")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("a cluster has only db 0: the path must be empty or /0")
    options = {k: unquote(v[0]) for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "rediss+cluster"
    unknown = set(options) - set(_FILE_OPTIONS)
    if unknown or (options and not tls):
        raise ValueError(f"options {sorted(options)}: only {', '.join(_FILE_OPTIONS)} with rediss+cluster://")
    return ClusterUrl(nodes, username, password, {"ssl": "1", **options} if tls else {})


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


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
    if url.partition("://")[0] not in SENTINEL_SCHEMES:
        cls = redis.BlockingConnectionPool if pool_timeout is not None else redis.ConnectionPool
        return cls.from_url(url, **options, **bounded)
    s = parse_sentinel(url)
    tls: dict[str, Any] = {k: v for k, v in s.tls.items() if k != "ssl"}
    if s.tls:
        tls["ssl"] = True
    # The sentinels: the same socket timeouts, and no retries (redis.Redis retries 3 times with a
    # backoff of up to 10 s by default): an unreachable sentinel is skipped at once for the next.
    sentinel_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, "retry": Retry(NoBackoff(), 0),
                       **s.sentinel_auth, **tls}
    sentinel = Sentinel(s.sentinels, sentinel_kwargs=sentinel_kwargs, db=s.db, username=s.username,
                        password=s.password, **options, **tls)
    pool_class = BlockingSentinelConnectionPool if pool_timeout is not None else SentinelConnectionPool
    return sentinel.master_for(s.service, connection_pool_class=pool_class, **bounded).connection_pool


class ClusterUnavailable(redis.ConnectionError):
    """No node of the cluster answered (redis-py says so with an exception that is not a RedisError)."""


class _ClusterPipeline:
    """redis-py's cluster pipeline, its execute() failing with a RedisError like every other call."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return self._pipe.execute(raise_on_error)
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from None


class ClusterClient:
    """A `redis.RedisCluster` built at its first use and rebuilt after it failed to build.

    RedisCluster reads the slot map in its constructor and raises when no node answers: a feed
    started while the cluster is away would die. Here every call (and a pipeline's execute) that
    finds no node answering raises ClusterUnavailable, a redis.ConnectionError, so callers back off
    and retry as with any Redis. The command API is RedisCluster's (the same as redis.Redis for the
    single-key commands ltp uses; multi-key commands stay within one key each)."""

    def __init__(self, url: str, timeout: float, connect_timeout: float, max_connections: int | None = None) -> None:
        spec = parse_cluster(url)
        self._spec = spec
        self._kwargs: dict[str, Any] = {
            "decode_responses": True, "socket_timeout": timeout, "socket_connect_timeout": connect_timeout,
            "username": spec.username, "password": spec.password,
            # One retry without sleeping: after a node fails, redis-py re-reads the slot map and tries
            # the new owner once; longer waits are the caller's backoff.
            "retry": Retry(NoBackoff(), 1),
        }
        if max_connections is not None:
            self._kwargs["max_connections"] = max_connections
        if spec.tls:
            self._kwargs.update({"ssl": True, **{k: v for k, v in spec.tls.items() if k != "ssl"}})
        self._cluster: redis.RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> redis.RedisCluster:
        cluster = self._cluster
        if cluster is not None:
            return cluster
        with self._lock:
            if self._cluster is None:
                nodes = [ClusterNode(host, port) for host, port in self._spec.nodes]
                try:
                    self._cluster = redis.RedisCluster(startup_nodes=nodes, **self._kwargs)
                except RedisClusterException as exc:
                    raise ClusterUnavailable(str(exc)) from None
            return self._cluster

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.cluster, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except RedisClusterException as exc:
                raise ClusterUnavailable(str(exc)) from None
            return _ClusterPipeline(result) if name == "pipeline" else result
        return call


def is_cluster(client: Any) -> bool:
    """Whether `client` (from `client()`) talks to a Redis Cluster: no multi-slot commands, no scripts
    touching keys they do not declare."""
    return isinstance(client, ClusterClient)


def client(url: str, timeout: float, connect_timeout: float, max_connections: int | None = None) -> redis.Redis:
    """A client for any accepted URL form. For a Redis Cluster, a ClusterClient: typed as redis.Redis
    because it answers the same commands (see ClusterClient); `is_cluster()` tells them apart."""
    if is_cluster_url(url):
        return cast(redis.Redis, ClusterClient(url, timeout, connect_timeout, max_connections))
    return redis.Redis(connection_pool=connection_pool(url, timeout, connect_timeout, max_connections=max_connections))


def scheme_of(url: str) -> str:
    """The URL's scheme ("" without `://`); one of SCHEMES for an accepted URL."""
    scheme, sep, _ = url.partition("://")
    return scheme if sep else ""


def redact(url: str) -> str:
    """The URL with every credential hidden, for logs and error messages: the user and password
    before `@` (`user:pass@`, `:pass@`), and the value of every query option naming a password
    (`password`, `sentinel_password`, `ssl_password`, in any case or %-encoding of the name), in
    any of SCHEMES. Errs on hiding more: everything before the URL's last `@` goes, even when that
    `@` is in the query or the URL has no scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    head, question, query = rest.partition("?")
    if question:
        query = "&".join(_redact_option(option) for option in query.split("&"))
    return f"{scheme}{sep}{head}{question}{query}"


def _redact_option(option: str) -> str:
    """`name=value` of a query, its value hidden if the name names a password (a #fragment stays)."""
    name, eq, value = option.partition("=")
    if not eq or "password" not in unquote(name).lower():
        return option
    fragment = value.partition("#")[1:]
    return f"{name}=***{''.join(fragment)}"


def check(url: Any) -> None:
    """ValueError (what is wrong) unless `url` is one of FORMS with options redis-py takes. Nothing connects."""
    if not isinstance(url, str):
        raise ValueError(f"expected a Redis URL, got {url!r} ({type(url).__name__})")
    scheme = scheme_of(url)
    if scheme not in SCHEMES:
        raise ValueError(f"expected a Redis URL, got {redact(url)!r}")
    if scheme in CLUSTER_SCHEMES or scheme in SENTINEL_SCHEMES:
        try:
            tls_options = (parse_cluster(url) if scheme in CLUSTER_SCHEMES else parse_sentinel(url)).tls
        except ValueError as exc:
            raise ValueError(f"{redact(url)!r}: {exc}") from None
        for name, path in tls_options.items():
            if name in _FILE_OPTIONS and not os.path.isfile(path):
                raise ValueError(f"{name}: no such file {path!r}")
        if scheme in CLUSTER_SCHEMES:
            return  # nothing to build without connecting: RedisCluster reads the slot map at once
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
