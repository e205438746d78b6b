"""One rate limit for re-subscriptions: a token bucket per key, pure and with an injectable clock.

A parser that wants to drop a topic's state and ask the exchange again (an order-book
resync: unsubscribe + subscribe) asks `allow(topic)` first. A bad stream can make every
frame look like a reason to resync (a crossed book re-pushed every few seconds, a level
that can't be read): without a gate that becomes a resubscribe loop at network speed.
With it, a key gets at most `burst` actions, then one per `interval` seconds; the refused
ones are counted (`suppressed`, `suppressed_total`) so the feed can report them.

`RESYNC_INTERVAL_S` is the figure the feeds use: one re-subscription of a topic per 5 s
(longer than Bybit's 3 s re-push period of level-1 snapshots, so a book that is crossed
at the exchange costs at most one resubscribe per 5 s, not one per push). The same class
serves subscription retries: pass the interval and burst they need.

No threads, sockets or sleeps: `clock` (default `time.monotonic`) is read on each call,
so tests drive it by hand. One instance belongs to one connection's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

RESYNC_INTERVAL_S = 5.0


class Limiter:
    """Token bucket per key: `burst` tokens, one more every `interval` seconds."""

    def __init__(self, interval: float = RESYNC_INTERVAL_S, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.interval = float(interval)
        self.burst = burst
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, when last refilled)
        self.suppressed: dict[Hashable, int] = {}  # key -> actions refused so far
        self.suppressed_total = 0
        self.allowed_total = 0

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - last) / self.interval)

    def ready(self, key: Hashable) -> bool:
        """Whether `allow(key)` would succeed now; takes nothing and counts nothing."""
        return self._tokens(key, self.clock()) >= 1.0

    def allow(self, key: Hashable) -> bool:
        """Take a token for `key` if there is one; a refusal is counted as suppressed."""
        now = self.clock()
        tokens = self._tokens(key, now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self.allowed_total += 1
            return True
        self._buckets[key] = (tokens, now)
        self.suppressed[key] = self.suppressed.get(key, 0) + 1
        self.suppressed_total += 1
        return False

    def wait(self, key: Hashable) -> float:
        """Seconds until `key` has a token again (0 if it has one now)."""
        return max(0.0, (1.0 - self._tokens(key, self.clock())) * self.interval)

    def forget(self, key: Hashable) -> None:
        """Drop a key's bucket (a topic no longer followed); its suppressed count stays."""
        self._buckets.pop(key, None)
