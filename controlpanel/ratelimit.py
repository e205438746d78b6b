"""Token-bucket rate limits for mutations and logins, per client address."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Token bucket per (client, bucket); old idle entries are dropped so memory stays bounded."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst, self.per_s = burst, per_s
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, bucket: str) -> float:
        """0 if allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 10_000:
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            tokens, then = self._buckets.get((client, bucket), (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
            if tokens < 1:
                self._buckets[(client, bucket)] = (tokens, now)
                return (1 - tokens) / self.per_s
            self._buckets[(client, bucket)] = (tokens - 1, now)
            return 0.0
