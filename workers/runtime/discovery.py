"""WebSocket connections over an instrument set that REST discovery keeps current.

Option chains roll: contracts expire, new expiries list, the strike window
follows spot. A discovery function returns the symbols to follow now; when the
set changes, the connections are rebuilt for the new set and the symbols that
left are removed from Redis, so nothing expired lingers looking fresh. Each
discovery also compares with what Redis holds (the prefix's symbol index): keys
written by an earlier process for symbols no longer selected (expired while the
feed was down, or dropped from the selection) are removed too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .feed import FeedContext, Source
from .poll import RestError, RestPoller, RestSession

log = logging.getLogger(__name__)

Discover = Callable[[RestSession], Sequence[str]]
MakeConnections = Callable[[list[str]], Sequence[Source]]


class DiscoveredWsFeed:
    discovers_symbols = True  # run_feed: the set is reconciled with Redis here, not from the configured list

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

    def _refresh(self, session: RestSession) -> None:
        symbols = sorted(set(self.discover(session)))
        if not symbols:
            raise RestError("discovery found no instruments to follow; keeping the current set")
        if self._stopped:
            return
        selected = set(symbols)
        in_redis = self.ctx.sink.index_members()  # None: Redis did not answer; the next round retries
        stray = sorted((in_redis or set()) - selected)
        if symbols == self.symbols:
            if stray:
                self.ctx.log.info("removing %d key(s) of symbols no longer selected: %s", len(stray), _names(stray))
                self.ctx.sink.forget(stray)
            return
        # Before the first set, "previous" is what Redis holds: keys written by an earlier process.
        previous = set(self.symbols) if self.symbols is not None else set(in_redis or ())
        added = [s for s in symbols if s not in previous]
        removed = sorted((previous | set(stray)) - selected)
        self.ctx.log.info(
            "instrument set: %d symbol(s), %d new, %d gone%s", len(symbols), len(added), len(removed),
            f" (gone: {_names(removed)})" if removed else "",
        )
        old = self.connections
        for conn in old:
            conn.stop()
        for conn in old:  # their last reads are flushed before the symbols that left are removed
            conn.join(1.0 / max(1, len(old)))
        self.connections = list(self.make_connections(symbols))
        for conn in self.connections:
            conn.start()
        self.ctx.stats.symbols = symbols
        self.ctx.sink.forget(removed)
        self.symbols = symbols


def _names(symbols: list[str], limit: int = 10) -> str:
    return ", ".join(symbols[:limit]) + ("..." if len(symbols) > limit else "")
