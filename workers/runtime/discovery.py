"""WebSocket connections over an instrument set that REST discovery keeps current.

Option chains roll: contracts expire, new expiries list, the strike window
follows spot. A discovery function returns the symbols to follow now; when the
set changes, the connections are rebuilt for the new set and the symbols that
left are removed from Redis, so nothing expired lingers looking fresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

from .feed import FeedContext, Source
from .poll import RestError, RestPoller

log = logging.getLogger(__name__)

Discover = Callable[["requests.Session"], Sequence[str]]
MakeConnections = Callable[[list[str]], Sequence[Source]]


class DiscoveredWsFeed:
    def __init__(self, ctx: FeedContext, discover: Discover, make_connections: MakeConnections, interval: float) -> None:
        self.ctx = ctx
        self.discover = discover
        self.make_connections = make_connections
        self.symbols: list[str] | None = None
        self.connections: list[Source] = []
        self._stopped = False
        self.poller = RestPoller("discovery", self._refresh, interval, ctx.stats)

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self._stopped = True
        self.poller.stop()
        for conn in self.connections:
            conn.stop()

    def join(self, timeout: float) -> None:
        self.poller.join(timeout / 2)
        for conn in self.connections:
            conn.join(timeout / 2 / max(1, len(self.connections)))

    def _refresh(self, session: requests.Session) -> None:
        symbols = sorted(set(self.discover(session)))
        if not symbols:
            raise RestError("discovery found no instruments to follow; keeping the current set")
        if symbols == self.symbols or self._stopped:
            return
        previous = set(self.symbols or ())
        added = [s for s in symbols if s not in previous]
        removed = sorted(previous - set(symbols))
        self.ctx.log.info(
            "instrument set: %d symbol(s), %d new, %d gone%s", len(symbols), len(added), len(removed),
            f" (gone: {', '.join(removed[:10])}{'...' if len(removed) > 10 else ''})" if removed else "",
        )
        for conn in self.connections:
            conn.stop()
        self.connections = list(self.make_connections(symbols))
        for conn in self.connections:
            conn.start()
        self.ctx.stats.symbols = symbols
        self.ctx.sink.forget(removed)
        self.symbols = symbols
