"""Redis sink: one writer thread, updates coalesced by key, one pipeline per batch.

Producers (the socket threads) only merge fields into a dict under a lock;
the writer swaps that dict out and writes everything it holds in one round
trip. Under load several updates of a key collapse into one write; while
Redis is away the pending dict keeps exactly one entry per key, so memory is
bounded by the number of instruments, not by the outage's length.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Any

import hiredis
import orjson
import redis
from hiredis import pack_command

from .stats import FeedStats
from .timefmt import iso_ms

log = logging.getLogger(__name__)

SYMBOL_INDEX = "ltp:symbols:{prefix}"   # set of symbols under a prefix: SCARD is the data count
HISTORY = "ltp:history:{prefix}:{symbol}"  # capped list of recent LTPs (newest first), for sparklines
HISTORY_EVERY_MS = 1000  # one history point per key per second at most


SOCKET_TIMEOUT_S = 5


def _kernel_timeouts(sock: socket.socket | None, seconds: int) -> None:
    """Blocking socket with kernel send/receive timeouts.

    A Python-level timeout makes every recv a poll()+recv pair (measured: ~15 µs more CPU
    per batch); SO_RCVTIMEO/SO_SNDTIMEO still turn a hung Redis into an error (EAGAIN).
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return
    sock.settimeout(None)
    tv = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def redis_client(url: str) -> redis.Redis:
    """A client whose calls fail fast when Redis is away, so callers can back off."""
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=2, decode_responses=True,
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
        min_batch_interval: float = 0.002,
        load_puts_per_s: float = 5000.0,
    ) -> None:
        self.prefix = prefix
        self.stats = stats
        self.publish = publish
        self.history_len = history_len
        self.max_future_skew_ms = max_future_skew_ms
        self.min_batch_interval = min_batch_interval
        self.load_puts_per_s = load_puts_per_s
        self._puts = 0  # puts since the writer last looked (approximate: read without the lock)
        self._client = redis_client(redis_url)
        self._conn: redis.connection.AbstractConnection | None = None  # the writer thread's own connection
        self._tuned_sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        # key -> [fields, event_ts_ms, recv_ts_ms]; the only buffer there is.
        self._pending: dict[str, list[Any]] = {}
        self._last_ts: dict[str, int] = {}       # newest `timestamp` written per key
        self._history_at: dict[str, int] = {}    # when a history point was last pushed per key
        self._indexed: set[str] = set()          # symbols known to be in the symbol index
        # symbol -> [all fields last written, event_ts, recv_ts]: replayed after an outage,
        # because Redis may return empty. Bounded by the number of instruments.
        self._written: dict[str, list[Any]] = {}
        self._replay = False
        self._index_key = SYMBOL_INDEX.format(prefix=prefix)
        self._thread = threading.Thread(target=self._run, name=f"sink-{prefix}", daemon=True)
        self.connected = True

    def start(self) -> None:
        self._thread.start()

    def put(self, symbol: str, fields: dict[str, str], event_ts_ms: int, recv_ts_ms: int) -> None:
        """Queue fields for `<prefix>:<symbol>`; merges into a pending write of the same key."""
        with self._lock:
            self._puts += 1
            entry = self._pending.get(symbol)
            if entry is None:
                self._pending[symbol] = [dict(fields), event_ts_ms, recv_ts_ms]
            else:
                entry[0].update(fields)
                if event_ts_ms > entry[1]:
                    entry[1] = event_ts_ms
                entry[2] = recv_ts_ms
        if not self._wakeup.is_set():  # set() takes a lock even when already set; skip it under load
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
        last_start = 0.0
        window_start, window_puts, loaded = time.perf_counter(), 0, False
        while True:
            self._wakeup.wait(0.5)
            now = time.perf_counter()
            # Latency first at normal rates: write as soon as something is pending. Under
            # overload (> LOAD_PUTS_PER_S puts over the last 100 ms) back-to-back tiny batches
            # would cost a syscall pair and a GIL hand-off each, starving the socket thread,
            # so batches are then spaced by `min_batch_interval` and coalesce more.
            window_puts += self._puts
            self._puts = 0
            if now - window_start >= 0.1:
                loaded = window_puts / (now - window_start) > self.load_puts_per_s
                window_start, window_puts = now, 0
            if loaded and now - last_start < self.min_batch_interval:
                time.sleep(self.min_batch_interval - (now - last_start))
            last_start = time.perf_counter()
            self._wakeup.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
            if self._replay and self._written:
                batch = self._with_full_state(batch)
            if batch:
                try:
                    self._write(batch)
                    self._replay = False
                    if not self.connected:
                        log.warning("Redis is back; wrote %d pending keys", len(batch))
                    self.connected = True
                    delay = 0.1
                except redis.RedisError as exc:
                    self._requeue(batch)
                    # Redis may come back empty: re-add symbols to the index and rewrite every
                    # key's full last state, not only the fields that changed meanwhile.
                    self._indexed.clear()
                    self._replay = True
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

    def _with_full_state(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Every key ever written, its last full state overlaid with what is pending."""
        full: dict[str, list[Any]] = {}
        for symbol, (fields, event_ts, recv_ts) in self._written.items():
            full[symbol] = [dict(fields), event_ts, recv_ts]
        for symbol, (fields, event_ts, recv_ts) in batch.items():
            entry = full.get(symbol)
            if entry is None:
                full[symbol] = [fields, event_ts, recv_ts]
            else:
                entry[0].update(fields)
                entry[1], entry[2] = max(entry[1], event_ts), recv_ts
        return full

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
        # Commands are packed by hiredis (C) and sent as one buffer: redis-py's Pipeline
        # costs ~3x the CPU per key, and this thread shares the GIL with the socket thread.
        cmds: list[bytes] = []
        prefix = self.prefix
        last_ts = self._last_ts
        publish = self.publish
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
            cmds.append(pack_command(("HSET", key, *[x for kv in fields.items() for x in kv])))
            if publish:
                cmds.append(pack_command(("PUBLISH", key, orjson.dumps(fields))))
            if symbol not in self._indexed:
                new_symbols.append(symbol)
            if self.history_len and "ltp" in fields and recv_ts - self._history_at.get(key, 0) >= HISTORY_EVERY_MS:
                self._history_at[key] = recv_ts
                hkey = HISTORY.format(prefix=prefix, symbol=symbol)
                cmds.append(pack_command(("LPUSH", hkey, f"{recv_ts}:{fields['ltp']}")))
                cmds.append(pack_command(("LTRIM", hkey, 0, self.history_len - 1)))
        if new_symbols:
            cmds.append(pack_command(("SADD", self._index_key, *new_symbols)))
        self._send(cmds)
        self._indexed.update(new_symbols)
        written = self._written
        for symbol, (fields, event_ts, recv_ts) in batch.items():
            entry = written.get(symbol)
            if entry is None:
                written[symbol] = [dict(fields), event_ts, recv_ts]
            else:
                entry[0].update(fields)
                entry[1], entry[2] = event_ts, recv_ts
        self.stats.writes_total += len(batch)

    def _send(self, cmds: list[bytes]) -> None:
        """One write, then every reply; a dropped connection raises ConnectionError (the caller requeues)."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._client.connection_pool.get_connection()
        try:
            if conn._sock is None:
                conn.connect()
            if conn._sock is not self._tuned_sock:  # a new socket after every (re)connect
                _kernel_timeouts(conn._sock, SOCKET_TIMEOUT_S)
                self._tuned_sock = conn._sock
            conn.send_packed_command([b"".join(cmds)], check_health=False)
            failed = self._read_replies(conn._sock, len(cmds))
        except (redis.RedisError, OSError) as exc:
            conn.disconnect()
            raise redis.ConnectionError(str(exc)) from None
        if failed is not None:
            self.stats.error("redis_reply", str(failed), parse=False)

    @staticmethod
    def _read_replies(sock: socket.socket, count: int) -> hiredis.ReplyError | None:
        """Read `count` replies straight into a hiredis Reader (redis-py's per-reply path costs
        ~2 µs each); return the last error reply, e.g. WRONGTYPE: the data is wrong, the link is fine."""
        reader = hiredis.Reader()
        failed = None
        while count:
            data = sock.recv(65536)
            if not data:
                raise redis.ConnectionError("Redis closed the connection")
            reader.feed(data)
            while count:
                reply = reader.gets()
                if reply is False:
                    break
                count -= 1
                if isinstance(reply, hiredis.ReplyError):
                    failed = reply
        return failed

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
            self._written.pop(s, None)
            self._last_ts.pop(f"{self.prefix}:{s}", None)

