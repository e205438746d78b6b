"""Redis sink: updates coalesced by key, every batch written in one round trip.

Socket threads `stage()` each frame's updates (a merge into a dict under a
lock) and `flush()` once per socket read: the write happens right there, on
the thread that read the data, so a quiet feed writes each frame at once and
a busy one writes hundreds of frames' worth of keys per round trip. Occasional
producers (REST polls) `put()`, which wakes the writer thread instead. The
writer thread also owns every retry: while Redis is away flushes leave the
data pending, the dict keeps exactly one entry per key (memory bounded by the
number of instruments, not by the outage's length), and the writer rewrites
every key's full last state once Redis answers again.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from itertools import chain
from typing import Any, cast

import hiredis
import redis
from orjson import dumps

from .model import Update
from .stats import FeedStats
from .timefmt import iso_ms

log = logging.getLogger(__name__)

# hiredis's stub types the argument as a one-element tuple; it takes any number of arguments.
pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)

SYMBOL_INDEX = "ltp:symbols:{prefix}"   # set of symbols under a prefix: SCARD is the data count
HISTORY = "ltp:history:{prefix}:{symbol}"  # capped list of recent LTPs (newest first), for sparklines
HISTORY_EVERY_MS = 1000  # one history point per key per second at most


SOCKET_TIMEOUT_S = 5
MAX_UNREAD_REPLIES = 20_000  # replies outstanding before a flush waits for Redis to catch up


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
    ) -> None:
        self.prefix = prefix
        self.stats = stats
        self.publish = publish
        self.history_len = history_len
        self.max_future_skew_ms = max_future_skew_ms
        self._client = redis_client(redis_url)
        self._conn: redis.connection.AbstractConnection | None = None  # the writing connection (under _io_lock)
        self._tuned_sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._unread = 0  # replies sent for but not yet read (see _send)
        self._answered_at = 0.0  # when Redis last answered, or the first unanswered batch was sent
        self._lock = threading.Lock()     # guards _pending only: held for a dict merge or swap
        self._io_lock = threading.Lock()  # one writer at a time; guards everything below _pending
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
        """Queue fields for `<prefix>:<symbol>` and wake the writer thread to write them."""
        self.stage([Update(symbol, fields, event_ts_ms)], recv_ts_ms)
        if not self._wakeup.is_set():  # set() takes a lock even when already set
            self._wakeup.set()

    def stage(self, updates: list[Update], recv_ts_ms: int) -> None:
        """Queue one frame's updates; the caller writes them with `flush()` after its read."""
        with self._lock:
            pending = self._pending
            for symbol, fields, event_ts_ms in updates:
                entry = pending.get(symbol)
                if entry is None:
                    pending[symbol] = [dict(fields), event_ts_ms, recv_ts_ms]
                else:
                    entry[0].update(fields)
                    if event_ts_ms > entry[1]:
                        entry[1] = event_ts_ms
                    entry[2] = recv_ts_ms

    def flush(self) -> None:
        """Write what is pending now, on the caller's thread.

        Never waits for another writer and never retries: while Redis is away, or the
        writer thread is busy, the data stays pending and the writer thread takes it."""
        if not self._pending:
            return
        if not self.connected or not self._io_lock.acquire(blocking=False):
            self._wakeup.set()
            return
        try:
            self._write_pending()
        finally:
            self._io_lock.release()

    def pending_count(self) -> int:
        return len(self._pending)

    def close(self, timeout: float = 1.5) -> None:
        """Flush what is pending (one attempt if Redis answers) and stop the writer."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread.ident is None:  # never started (a sink used only through flush())
            self.flush()
            self._settle()
        else:
            self._thread.join(timeout)

    # -- writing (under _io_lock) ------------------------------------------------

    def _run(self) -> None:
        """The writer thread: puts, flushes that found the lock busy, and retries while Redis is away."""
        delay = 0.1
        while True:
            self._wakeup.wait(0.5)
            self._wakeup.clear()
            with self._io_lock:
                ok = self._write_pending() if self._pending or self._replay else True
            if not ok:
                if self._stopping.is_set():
                    return
                # Back off without spinning; a stop request cuts the wait short.
                self._stopping.wait(delay)
                delay = min(delay * 2, 1.0)  # retry at least every second: back within 2 s of Redis
                self._wakeup.set()
                continue
            delay = 0.1
            if self._stopping.is_set() and not self._pending:
                self._settle()
                return

    def _write_pending(self) -> bool:
        """Swap out what is pending and write it; on failure it stays pending, merged with newer updates."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if self._replay and self._written:
            batch = self._with_full_state(batch)
        if not batch:
            return True
        try:
            self._write(batch)
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
            self._wakeup.set()
            return False
        self._replay = False
        if not self.connected:
            log.warning("Redis is back; wrote %d pending keys", len(batch))
        self.connected = True
        return True

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
        # Commands are packed by hiredis (C) and sent as one buffer: redis-py's Pipeline costs
        # ~3x the CPU per key. One pass per key: it runs for every key of every batch.
        cmds: list[bytes] = []
        append = cmds.append
        prefix = self.prefix
        last_ts = self._last_ts
        written = self._written
        indexed = self._indexed
        publish = self.publish
        history_len = self.history_len
        max_skew = self.max_future_skew_ms
        new_symbols = []
        recv_str_of, recv_str = -1, ""
        for symbol, (fields, event_ts, recv_ts) in batch.items():
            key = f"{prefix}:{symbol}"
            if event_ts > recv_ts + max_skew:
                # An exchange clock far ahead would freeze `timestamp` for a long while.
                self.stats.error("clock_skew", f"{key}: event time {event_ts} is ahead of receive time {recv_ts}", parse=False)
                event_ts = recv_ts
            prev = last_ts.get(key, 0)
            if event_ts < prev:
                event_ts = prev  # timestamps never go backwards for a key
            last_ts[key] = event_ts
            if recv_ts != recv_str_of:  # one read's keys share their receive time
                recv_str_of, recv_str = recv_ts, str(recv_ts)
            fields["timestamp"] = iso_ms(event_ts)
            fields["recv_ts"] = recv_str
            append(pack_command(("HSET", key, *chain.from_iterable(fields.items()))))
            if publish:
                append(pack_command(("PUBLISH", key, dumps(fields))))
            if symbol not in indexed:
                new_symbols.append(symbol)
            if history_len and "ltp" in fields and recv_ts - self._history_at.get(key, 0) >= HISTORY_EVERY_MS:
                self._history_at[key] = recv_ts
                hkey = HISTORY.format(prefix=prefix, symbol=symbol)
                append(pack_command(("LPUSH", hkey, f"{recv_ts}:{fields['ltp']}")))
                append(pack_command(("LTRIM", hkey, 0, history_len - 1)))
            # The full last state, replayed after an outage. Kept even if the send below fails:
            # the batch is then requeued and the replay overlays it again.
            entry = written.get(symbol)
            if entry is None:
                written[symbol] = [dict(fields), event_ts, recv_ts]
            else:
                entry[0].update(fields)
                entry[1] = event_ts
                entry[2] = recv_ts
        if new_symbols:
            append(pack_command(("SADD", self._index_key, *new_symbols)))
        self._send(cmds)
        indexed.update(new_symbols)
        self.stats.writes_total += len(batch)

    def _send(self, cmds: list[bytes]) -> None:
        """Send a batch without waiting for its replies; a dropped connection raises ConnectionError.

        Replies are read when they have arrived, at the next flush (a non-blocking read):
        waiting for them would park this thread once per batch, and on these machines a
        wake-up costs more CPU than writing ten keys. Nothing is lost by not waiting: after
        any error every key's full last state is rewritten. A slow Redis stalls a flush only
        once MAX_UNREAD_REPLIES are outstanding (meanwhile new data coalesces in the pending
        dict); one that has answered nothing for SOCKET_TIMEOUT_S is waited for once more,
        then treated as down."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._client.connection_pool.get_connection()
        try:
            if conn._sock is None:
                conn.connect()
            sock = conn._sock
            if sock is None:
                raise redis.ConnectionError("no socket after connect()")
            if sock is not self._tuned_sock:  # a new socket after every (re)connect
                _kernel_timeouts(sock, SOCKET_TIMEOUT_S)
                self._tuned_sock, self._reader, self._unread = sock, hiredis.Reader(), 0
            if self._unread:
                if time.monotonic() - self._answered_at > SOCKET_TIMEOUT_S:
                    # Redis has answered nothing for a while: hung, not slow. One more reply within
                    # the socket timeout, or this raises and the writer thread takes over.
                    self._read_replies(sock, True, self._unread - 1)
                else:
                    wait = self._unread > MAX_UNREAD_REPLIES
                    self._read_replies(sock, wait, MAX_UNREAD_REPLIES // 2 if wait else 0)
            else:
                self._answered_at = time.monotonic()
            sock.sendall(cmds[0] if len(cmds) == 1 else b"".join(cmds))
            self._unread += len(cmds)
        except (redis.RedisError, OSError) as exc:
            conn.disconnect()
            self._tuned_sock = None
            raise redis.ConnectionError(str(exc) or type(exc).__name__) from None

    def _read_replies(self, sock: socket.socket, wait: bool, down_to: int = 0) -> None:
        """Read replies into a hiredis Reader (redis-py's per-reply path costs ~2 µs each): those
        already here, or with `wait` until at most `down_to` are outstanding. An error reply
        (e.g. WRONGTYPE) is counted: the data is wrong, the link is fine."""
        reader = self._reader
        while self._unread > down_to:
            try:
                data = sock.recv(65536) if wait else sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if wait:
                    raise redis.TimeoutError(f"Redis did not answer within {SOCKET_TIMEOUT_S} s") from None
                return
            if not data:
                raise redis.ConnectionError("Redis closed the connection")
            reader.feed(data)
            self._answered_at = time.monotonic()
            while (reply := reader.gets()) is not False:
                self._unread -= 1
                if isinstance(reply, hiredis.ReplyError):
                    self.stats.error("redis_reply", str(reply), parse=False)

    def _settle(self) -> None:
        """Wait for every outstanding reply (before exit: closing with unread replies would reset the connection)."""
        with self._io_lock:
            sock = self._tuned_sock
            if sock is None or not self._unread:
                return
            try:
                self._read_replies(sock, True)
            except (redis.RedisError, OSError) as exc:
                log.warning("%d writes unconfirmed at exit: %s", self._unread, exc)

    def forget(self, symbols: list[str]) -> None:
        """Remove instruments that no longer exist (e.g. expired options) from Redis."""
        if not symbols:
            return
        keys = [f"{self.prefix}:{s}" for s in symbols]
        with self._io_lock:  # no flush may write one of them back between the delete and the bookkeeping
            with self._lock:
                for s in symbols:
                    self._pending.pop(s, None)
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
