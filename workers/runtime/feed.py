"""Entry point shared by every feed program: config, logging, signals, lifecycle.

`python -m workers <feed_id>` looks the feed's builder up in the registry and calls
run_feed(feed_id, builder); the builder returns the feed's sources for its config.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

from .config import Config, ConfigError, ServiceConfig, load_config
from .model import Update
from .sink import RedisSink
from .stats import SUBSCRIBED, FeedStats
from .status import StatusReporter
from .timefmt import now_ms

STOP_BUDGET_S = 1.8  # supervisord's stop is answered within 2 s


class Source(Protocol):
    """Something that produces updates on its own threads (a WebSocket, a REST poller)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float) -> None: ...


class FeedContext:
    """What a feed's builder gets: its config and the shared runtime pieces."""

    def __init__(self, config: Config, service: ServiceConfig, stats: FeedStats, sink: RedisSink) -> None:
        self.config = config
        self.service = service
        self.stats = stats
        self.sink = sink
        self.log = logging.getLogger(service.service_id)

    def deliver(self, updates: Sequence[Update], recv_ms: int | None = None) -> None:
        """Write a REST poll's updates now, on the caller's thread, and count them like socket frames."""
        if not updates:
            return
        recv_ms = recv_ms if recv_ms is not None else now_ms()
        self.sink.stage(list(updates), recv_ms)
        self.sink.flush()
        self.stats.messages_total += len(updates)
        self.stats.last_message_at = recv_ms / 1000
        self.stats.state = SUBSCRIBED

    def accept_listed(self, wanted: Iterable[str], listed: Collection[str], what: str) -> list[str]:
        """The wanted symbols the exchange lists; each other one is reported once (stats.reject), never subscribed."""
        ok = []
        for sym in wanted:
            if sym in listed:
                self.stats.rejected.pop(sym, None)
                ok.append(sym)
            else:
                self.stats.reject(sym, f"not a {what}; not subscribed")
        return ok


SourceBuilder = Callable[[FeedContext], Sequence[Source]]


def setup_logging(service_id: str) -> None:
    logging.basicConfig(
        level=os.environ.get("LTP_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s {service_id} %(name)s: %(message)s",
        stream=sys.stdout,
    )
    logging.Formatter.converter = time.gmtime
    # websocket-client logs every disconnect as an error of its own; ours is clearer.
    logging.getLogger("websocket").setLevel(logging.CRITICAL)


def run_feed(service_id: str, build_sources: SourceBuilder) -> None:
    """Run one feed until SIGTERM/SIGINT, then stop cleanly and exit 0."""
    setup_logging(service_id)
    log = logging.getLogger(service_id)
    try:
        config = load_config()
        service = config.service(service_id)
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)

    stats = FeedStats(service_id, service.symbols, log)
    sink = RedisSink(
        config.redis_url, service.redis_prefix, stats,
        publish=config.publish, history_len=config.history_len,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ctx = FeedContext(config, service, stats, sink)
    try:
        sources = list(build_sources(ctx))
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)
    status = StatusReporter(config.redis_url, stats, sink)
    log.info(
        "starting %s: %d source(s), %d symbol(s), prefix %r, Redis %s",
        service_id, len(sources), len(stats.symbols), service.redis_prefix, _redact(config.redis_url),
    )
    if not service.enabled:
        log.warning("%s is disabled in %s but was started by hand; running anyway", service_id, config.path)
    sink.start()
    status.start()
    status.publish()
    for src in sources:
        src.start()

    while not stop.wait(0.5):
        pass

    deadline = time.monotonic() + STOP_BUDGET_S
    for src in sources:
        src.stop()
    for src in sources:
        src.join(max(0.0, deadline - time.monotonic() - 0.8))
    sink.close(max(0.1, deadline - time.monotonic() - 0.3))
    status.stop()
    log.info("stopped after %d messages", stats.messages_total)
    logging.shutdown()
    os._exit(0)  # daemon threads blocked in a socket call must not delay the exit


def _redact(url: str) -> str:
    """Hide a password in a Redis URL before logging it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
