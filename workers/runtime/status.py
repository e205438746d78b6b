"""Publish a feed's health to `service:status:<service_id>` every second.

The hash carries a TTL a few times the refresh period, so a feed that dies
without saying so disappears from Redis and shows up as dead, not as green.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import redis

from .sink import RedisSink, redis_client
from .stats import STOPPED, FeedStats
from .timefmt import iso_ms

log = logging.getLogger(__name__)

STATUS_KEY = "service:status:{service_id}"
STARTS_KEY = "service:starts:{service_id}"  # no TTL: how many times this feed's process has started
REFRESH_S = 1.0
TTL_S = 10
STOPPED_TTL_S = 7 * 24 * 3600  # a clean stop stays readable (the panel shows "stopped")


class StatusReporter:
    def __init__(self, redis_url: str, stats: FeedStats, sink: RedisSink | None = None) -> None:
        self.stats = stats
        self.sink = sink
        self.key = STATUS_KEY.format(service_id=stats.service_id)
        self.starts_key = STARTS_KEY.format(service_id=stats.service_id)
        self._starts: int | None = None  # counted once, at the first publish Redis accepts
        self._client = redis_client(redis_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._prev = (time.monotonic(), 0)
        self._rate = 0.0

    def start(self) -> None:
        self._thread.start()

    def snapshot(self) -> dict[str, str]:
        s = self.stats
        now = time.monotonic()
        then, count = self._prev
        if now - then >= 0.5:
            self._rate = (s.messages_total - count) / (now - then)
            self._prev = (now, s.messages_total)
        return {
            "service_id": s.service_id,
            "state": s.state,
            "pid": str(os.getpid()),
            "started_at": iso_ms(int(s.started_at * 1000)),
            "last_message_at": iso_ms(int(s.last_message_at * 1000)) if s.last_message_at else "",
            "messages_total": str(s.messages_total),
            "messages_per_s": f"{self._rate:.1f}",
            "reconnects": str(s.reconnects),
            "restarts": str(self._starts - 1) if self._starts else "",
            "parse_errors": str(s.parse_errors),
            "redis_errors": str(s.redis_errors),
            "writes_total": str(s.writes_total),
            "pending_writes": str(self.sink.pending_count()) if self.sink else "0",
            "last_error": s.last_error,
            "errors_by_kind": json.dumps(s.errors_by_kind, sort_keys=True),
            "rejected": json.dumps(s.rejected, sort_keys=True),
            "symbols": ",".join(s.symbols),
            "updated_at": iso_ms(int(time.time() * 1000)),
        }

    def publish(self, ttl: int = TTL_S) -> bool:
        try:
            if self._starts is None:
                self._starts = int(self._client.incr(self.starts_key))  # type: ignore[arg-type]  # sync client
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(self.key, mapping=self.snapshot())
            pipe.expire(self.key, ttl)
            pipe.execute()
            return True
        except redis.RedisError:
            return False  # the sink already reports Redis trouble; status just retries

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.publish()

    def stop(self) -> None:
        """Write the final `stopped` state; it is kept long enough for the panel to show."""
        self._stop.set()
        self.stats.state = STOPPED
        if not self.publish(STOPPED_TTL_S):
            log.warning("could not record the stopped state in Redis")
