"""Redis sink: one writer thread, updates coalesced by key, one pipeline per batch.

Producers (the socket threads) only merge fields into a dict under a lock;
the writer swaps that dict out and writes everything it holds in one round
trip. Under load several updates of a key collapse into one write; while
Redis is away the pending dict keeps exactly one entry per key, so memory is
bounded by the number of instruments, not by the outage's length.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

from .stats import FeedStats
from .timefmt import iso_ms

log = logging.getLogger(__name__)

SYMBOL_INDEX = "ltp:symbols:{prefix}"   # set of symbols under a prefix: SCARD is the data count
HISTORY = "ltp:history:{prefix}:{symbol}"  # capped list of recent LTPs (newest first), for sparklines
HISTORY_EVERY_MS = 1000  # one history point per key per second at most


def redis_client(url: str) -> redis.Redis:
    """A client whose calls fail fast when Redis is away, so callers can back off."""
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, decode_responses=True,
        health_check_interval=0, retry_on_timeout=False,
    )


class RedisSink:
    """Merge-and-write of `<prefix>:<symbol>` hashes (plus PUBLISH on the same channel name)."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        stats: FeedStats,
        *,
        publish: bool = True,
        history_len: int = 0,
        max_future_skew_ms: int = 5000,
    ) -> None:
        self.prefix = prefix
        self.stats = stats
        self.publish = publish
        self.history_len = history_len
        self.max_future_skew_ms = max_future_skew_ms
        self._client = redis_client(redis_url)
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        # key -> [fields, event_ts_ms, recv_ts_ms]; the only buffer there is.
        self._pending: dict[str, list[Any]] = {}
        self._last_ts: dict[str, int] = {}       # newest `timestamp` written per key
        self._history_at: dict[str, int] = {}    # when a history point was last pushed per key
        self._indexed: set[str] = set()          # symbols known to be in the symbol index
        self._index_key = SYMBOL_INDEX.format(prefix=prefix)
        self._thread = threading.Thread(target=self._run, name=f"sink-{prefix}", daemon=True)
        self.connected = True

    def start(self) -> None:
        self._thread.start()

    def put(self, symbol: str, fields: dict[str, str], event_ts_ms: int, recv_ts_ms: int) -> None:
        """Queue fields for `<prefix>:<symbol>`; merges into a pending write of the same key."""
        with self._lock:
            entry = self._pending.get(symbol)
            if entry is None:
                self._pending[symbol] = [dict(fields), event_ts_ms, recv_ts_ms]
            else:
                entry[0].update(fields)
                if event_ts_ms > entry[1]:
                    entry[1] = event_ts_ms
                entry[2] = recv_ts_ms
        self._wakeup.set()

    def pending_count(self) -> int:
        return len(self._pending)

    def close(self, timeout: float = 1.5) -> None:
        """Flush what is pending (one attempt if Redis answers) and stop the writer."""
        self._stopping.set()
        self._wakeup.set()
        self._thread.join(timeout)

    # -- writer thread ---------------------------------------------------------

    def _run(self) -> None:
        delay = 0.1
        while True:
            self._wakeup.wait(0.5)
            self._wakeup.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
            if batch:
                try:
                    self._write(batch)
                    if not self.connected:
                        log.warning("Redis is back; wrote %d pending keys", len(batch))
                    self.connected = True
                    delay = 0.1
                except redis.RedisError as exc:
                    self._requeue(batch)
                    self._indexed.clear()  # Redis may come back empty: re-add symbols to the index
                    self.stats.redis_errors += 1
                    if self.connected:
                        log.error("Redis write failed (%s); keeping the latest state per key and retrying", exc)
                    self.connected = False
                    if self._stopping.is_set():
                        return
                    # Back off without spinning; a stop request cuts the wait short.
                    self._stopping.wait(delay)
                    delay = min(delay * 2, 1.0)  # retry at least every second: back within 2 s of Redis
                    self._wakeup.set()
                    continue
            if self._stopping.is_set() and not self._pending:
                return

    def _requeue(self, batch: dict[str, list[Any]]) -> None:
        with self._lock:
            newer = self._pending
            self._pending = batch
            for key, (fields, ev, rv) in newer.items():
                entry = batch.get(key)
                if entry is None:
                    batch[key] = [fields, ev, rv]
                else:
                    entry[0].update(fields)
                    entry[1] = max(entry[1], ev)
                    entry[2] = rv

    def _write(self, batch: dict[str, list[Any]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        prefix = self.prefix
        last_ts = self._last_ts
        new_symbols = []
        for symbol, (fields, event_ts, recv_ts) in batch.items():
            key = f"{prefix}:{symbol}"
            if event_ts > recv_ts + self.max_future_skew_ms:
                # An exchange clock far ahead would freeze `timestamp` for a long while.
                self.stats.error("clock_skew", f"{key}: event time {event_ts} is ahead of receive time {recv_ts}", parse=False)
                event_ts = recv_ts
            prev = last_ts.get(key, 0)
            if event_ts < prev:
                event_ts = prev  # timestamps never go backwards for a key
            last_ts[key] = event_ts
            fields["timestamp"] = iso_ms(event_ts)
            fields["recv_ts"] = str(recv_ts)
            pipe.hset(key, mapping=fields)
            if self.publish:
                pipe.publish(key, json.dumps(fields, separators=(",", ":")))
            if symbol not in self._indexed:
                new_symbols.append(symbol)
            if self.history_len and "ltp" in fields and recv_ts - self._history_at.get(key, 0) >= HISTORY_EVERY_MS:
                self._history_at[key] = recv_ts
                hkey = HISTORY.format(prefix=prefix, symbol=symbol)
                pipe.lpush(hkey, f"{recv_ts}:{fields['ltp']}")
                pipe.ltrim(hkey, 0, self.history_len - 1)
        if new_symbols:
            pipe.sadd(self._index_key, *new_symbols)
        pipe.execute()
        self._indexed.update(new_symbols)
        self.stats.writes_total += len(batch)

    def forget(self, symbols: list[str]) -> None:
        """Remove instruments that no longer exist (e.g. expired options) from Redis."""
        if not symbols:
            return
        with self._lock:
            for s in symbols:
                self._pending.pop(s, None)
        keys = [f"{self.prefix}:{s}" for s in symbols]
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(*keys)
            pipe.delete(*[HISTORY.format(prefix=self.prefix, symbol=s) for s in symbols])
            pipe.srem(self._index_key, *symbols)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not remove %d expired keys: %s", len(keys), exc)
        for s in symbols:
            self._indexed.discard(s)
            self._last_ts.pop(f"{self.prefix}:{s}", None)

