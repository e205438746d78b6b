"""What every request needs, set up once by the factory: config, Redis, supervisord nodes, rate limiter, settings,
the dead-feed marker.

Blueprints and helpers import the `get_*` accessors from here and never read
`app.extensions` themselves, so the wiring lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from flask import Flask, current_app
from prometheus_client import CollectorRegistry

from workers.runtime.config import Config
from workers.runtime.redis_url import client as url_client
from workers.runtime.redis_url import connection_pool, is_cluster_url

from .deadfeeds import DeadFeedMarker
from .nodes import NodeSet
from .ratelimit import RateLimiter
from .settings import PanelSettings

_KEY = "ltp"
REDIS_SOCKET_TIMEOUT_S = 5
REDIS_POOL_WAIT_S = 2.0  # a request waits this long for a free connection, then gets a 503, never "Too many connections"
REDIS_POOL_SPARE = 2     # connections beyond one per server thread: the control watcher and a margin


@dataclass(frozen=True)
class Deps:
    config: Config
    settings: PanelSettings
    redis: redis.Redis
    supervisor: NodeSet  # one node (the local supervisord) unless LTP_PANEL_NODES lists several
    ratelimit: RateLimiter
    marker: DeadFeedMarker  # on `redis`; shared by /api/status and the control watcher (one memo)
    # A registry per app: several apps in one process (tests) never clash.
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)


def panel_redis(url: str, max_connections: int) -> redis.Redis:
    """A client on a bounded, blocking pool: as many connections as the panel has threads, no more.
    Any URL form the feeds take (`workers.runtime.redis_url`), built the same way. A Redis Cluster gets
    that many connections per node (redis-py's cluster client has no blocking pool: a request beyond
    them fails with a 503 at once)."""
    if is_cluster_url(url):
        return url_client(url, REDIS_SOCKET_TIMEOUT_S, 2, max_connections)
    pool = connection_pool(url, REDIS_SOCKET_TIMEOUT_S, 2, max_connections=max_connections, pool_timeout=REDIS_POOL_WAIT_S)
    return redis.Redis(connection_pool=pool)


def build(config: Config, settings: PanelSettings, supervisor_url: str | None) -> Deps:
    client = panel_redis(config.redis_url, settings.threads + REDIS_POOL_SPARE)
    return Deps(
        config=config,
        settings=settings,
        redis=client,
        supervisor=NodeSet.build(settings.nodes_file, supervisor_url),
        ratelimit=RateLimiter(settings.rate_burst, settings.rate_per_s),
        marker=DeadFeedMarker(client),
    )


def init_app(app: Flask, deps: Deps) -> None:
    app.extensions[_KEY] = deps


def of(app: Flask) -> Deps:
    """For set-up code outside a request (metrics registration, the entry point)."""
    return app.extensions[_KEY]


def _deps() -> Deps:
    return current_app.extensions[_KEY]


def get_config() -> Config:
    return _deps().config


def get_settings() -> PanelSettings:
    return _deps().settings


def get_redis() -> redis.Redis:
    return _deps().redis


def get_supervisor() -> NodeSet:
    return _deps().supervisor


def get_ratelimit() -> RateLimiter:
    return _deps().ratelimit


def get_marker() -> DeadFeedMarker:
    return _deps().marker


def get_metrics_registry() -> CollectorRegistry:
    return _deps().metrics
