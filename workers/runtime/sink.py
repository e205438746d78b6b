"""Redis sink: updates coalesced by key, every batch written in one round trip.

Socket threads `stage()` each frame's updates (a merge into a dict under a
lock) and `flush()` once per socket read: the write happens right there, on
the thread that read the data, so a quiet feed writes each frame at once and
a busy one writes hundreds of frames' worth of keys per round trip. Occasional
producers (REST polls) `put()`, which wakes the writer thread instead. The
writer thread also owns every retry: while Redis is away flushes leave the
data pending, the dict keeps exactly one entry per key (memory bounded by the
number of instruments, not by the outage's length; the merge rule: entries.py),
and the writer rewrites every key's full last state once Redis answers again.

Liveness (`stale`, see stale.py): `mark_written_stale()` marks every key this
process wrote; the next write of a marked key removes the mark (an HDEL in the
same batch, only for keys currently marked: one dict lookup per key on the hot
path). At start `reconcile()` removes keys no longer configured and marks those
left from the previous run. A field whose value is None is deleted (HDEL), e.g.
a book side that became empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from itertools import chain
from typing import Any, cast

import redis
from orjson import dumps

from .entries import Entries, merge, merge_entries
from .fields import HISTORY, STALE, SYMBOL_INDEX
from .model import Update
from .redis_url import ClusterClient, is_cluster
from .redis_url import client as url_client
from .stale import leftover_marks, mark_prefix_stale, reconcile_prefix, stale_value
from .stats import FeedStats
from .timefmt import iso_ms
from .wire import ClusterWire, Wire, pack_command

log = logging.getLogger(__name__)

HISTORY_EVERY_MS = 1000  # one history point per key per second at most
_NOTHING: Mapping[str, str] = {}
START_TIMEOUT_S = 0.8  # Redis calls on the start and stop paths: a hung Redis must not hold them up
SOCKET_TIMEOUT_S = 5
ERROR_REPLAY_FIRST_S = 0.25  # after an error reply: full rewrite, then waits doubling to ERROR_REPLAY_MAX_S
ERROR_REPLAY_MAX_S = 5.0
# What packing a batch found: symbols new to the index, marked keys whose mark goes with this
# batch, and (symbol, fields deleted) for the deletions to drop from a key's kept state.
Packed = tuple[list[str], list[str], list[tuple[str, list[str]]]]


def redis_client(url: str, timeout: float = SOCKET_TIMEOUT_S, connect_timeout: float = 2) -> redis.Redis:
    """A client whose calls fail fast when Redis is away, so callers can back off. Any form of
    `redis_url.FORMS` (TCP, TLS, unix socket, Sentinel): the sink's writing connection comes from
    its pool, so it reconnects the same way (to the current master, under Sentinel)."""
    return url_client(url, timeout, connect_timeout)


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
        self._quick = redis_client(redis_url, START_TIMEOUT_S, START_TIMEOUT_S)  # start/stop paths: bounded
        self._cluster = is_cluster(self._client)
        # The writing connection(s) (under _io_lock): one, or one per master of a Redis Cluster.
        self._wire: Wire | ClusterWire = (ClusterWire(cast(ClusterClient, self._client), self._reply_error)
                                          if self._cluster else Wire(self._client.connection_pool, self._reply_error))
        self._lock = threading.Lock()     # guards _pending only: held for a dict merge or swap
        self._io_lock = threading.Lock()  # one writer at a time; guards everything below _pending
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        # symbol -> [fields, event_ts_ms, recv_ts_ms] (entries.py); the only buffer there is.
        self._pending: Entries = {}
        self._last_ts: dict[str, int] = {}       # newest `timestamp` written per key
        self._history_at: dict[str, int] = {}    # when a history point was last pushed per key
        self._indexed: set[str] = set()          # symbols known to be in the symbol index
        # symbol -> [all fields last written, event_ts, recv_ts]: replayed after an outage,
        # because Redis may return empty. Bounded by the number of instruments.
        self._written: Entries = {}
        self._replay = False
        # An error reply asks for a full rewrite (`_reply_failed`), at `_error_replay_at` at the earliest.
        self._error_replay = False
        self._error_replay_at = 0.0
        self._error_backoff = ERROR_REPLAY_FIRST_S
        self._error_last = -1e9
        # symbol -> its `stale` value in Redis, for keys marked stale; the next write of one removes
        # the mark. "" = maybe marked by someone else (the panel): removed at the next write, never re-set.
        self._marked: dict[str, str] = {}
        # (keep or None, mark value): the start-up reconciliation, until Redis has run it (see reconcile).
        self._reconcile_job: tuple[list[str] | None, str] | None = None
        self._index_key = SYMBOL_INDEX.format(prefix=prefix)
        self._thread = threading.Thread(target=self._run, name=f"sink-{prefix}", daemon=True)
        self.connected = True

    def start(self) -> None:
        self._thread.start()

    def put(self, symbol: str, fields: Mapping[str, str | None], event_ts_ms: int, recv_ts_ms: int) -> None:
        """Queue fields for `<prefix>:<symbol>` and wake the writer thread to write them."""
        self.stage([Update(symbol, fields, event_ts_ms)], recv_ts_ms)
        if not self._wakeup.is_set():  # set() takes a lock even when already set
            self._wakeup.set()

    def stage(self, updates: list[Update], recv_ts_ms: int) -> None:
        """Queue updates (a WebSocket connection: those of every frame of one socket read); the caller
        writes them with `flush()` after its read."""
        with self._lock:
            merge(self._pending, updates, recv_ts_ms)

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
                self._read_ready_replies()  # error replies of an idle feed's last writes are seen too
                due = self._error_replay and time.monotonic() >= self._error_replay_at
                ok = self._write_pending() if self._pending or self._replay or self._reconcile_job or due else True
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

    def _read_ready_replies(self) -> None:
        self._wire.read_ready()

    def _write_pending(self) -> bool:
        """Swap out what is pending and write it; on failure it stays pending, merged with newer updates."""
        if self._reconcile_job is not None and not self._run_reconcile(self._client):
            self._failed(redis.ConnectionError("start-up reconciliation not done"), {})
            return False
        if self._error_replay and time.monotonic() >= self._error_replay_at:
            self._start_error_replay()
        with self._lock:
            batch, self._pending = self._pending, {}
        pending = batch
        keep: dict[str, str] = {}
        if self._replay and (self._written or self._marked):
            # Marked keys without new data keep their mark in the rewritten state ("": as Redis has it).
            keep = {s: v for s, v in self._marked.items() if s not in pending}
            batch = self._with_full_state(batch)
        if not batch and not keep:
            return True
        try:
            self._write(batch, keep)
        except redis.RedisError as exc:
            self._failed(exc, pending)
            return False
        self._replay = False
        if not self.connected:
            log.warning("Redis is back; wrote %d pending keys", len(batch))
        self.connected = True
        return True

    def _start_error_replay(self) -> None:
        """After an error reply, once its backoff is over: this write is a replay (every key's full state)."""
        self._error_replay = False
        self._replay = True
        self._error_replay_at = time.monotonic() + self._error_backoff
        self._error_backoff = min(self._error_backoff * 2, ERROR_REPLAY_MAX_S)

    def _failed(self, exc: Exception, pending: Entries) -> None:
        """A send failed: keep what was pending, and rewrite every key's full state (and marks) once
        Redis answers: it may come back empty, so the index is re-added too."""
        self._requeue(pending)
        self._indexed.clear()
        self._replay = True
        self.stats.redis_errors += 1
        if self.connected:
            log.error("Redis write failed (%s); keeping the latest state per key and retrying", exc)
        self.connected = False
        self._wakeup.set()

    def _with_full_state(self, batch: Entries) -> Entries:
        """Every key ever written, its last full state overlaid with what is pending."""
        full = {symbol: [dict(fields), event_ts, recv_ts] for symbol, (fields, event_ts, recv_ts) in self._written.items()}
        merge_entries(full, batch, copy=False)
        return full

    def _requeue(self, batch: Entries) -> None:
        """A batch that was not written is pending again, with what was staged since merged into it."""
        with self._lock:
            newer, self._pending = self._pending, batch
            merge_entries(batch, newer, copy=False)

    def _write(self, batch: Entries, keep: Mapping[str, str] = _NOTHING, dry: bool = False) -> None:
        """Write a batch: each key's fields, marks, publish and history; the symbol index; in a replay
        (`keep`: marked keys whose mark stays, with its value, "" = as Redis has it) the marks of keys
        left from the previous run. `dry`: only take the batch into each key's kept state (Redis is
        away; the replay will write it). redis.RedisError if the send fails."""
        cmds: list[bytes] = []
        new_symbols, cleared, deletions = self._pack_batch(batch, keep, cmds)
        if new_symbols:
            cmds.append(pack_command(("SADD", self._index_key, *new_symbols)))
        if keep:
            cmds += leftover_marks(self.prefix, keep, batch, publish=self.publish, cluster=self._cluster)
        for symbol, gone in deletions:  # not part of the key's state any more: a replay can't bring them back
            state = self._written[symbol][0]
            for f in gone:
                state.pop(f, None)
        if not dry:
            if cmds:
                self._send(cmds)
            self._indexed.update(new_symbols)
            self.stats.writes_total += len(batch)
        for symbol in cleared:
            self._marked.pop(symbol, None)

    def _pack_batch(self, batch: Entries, keep: Mapping[str, str], cmds: list[bytes]) -> Packed:
        """Append each key's commands to `cmds`: HSET of its fields with `timestamp` (never going back,
        never far ahead of the receive time) and `recv_ts`, the HDEL (or, in `keep`, HSET) of its
        mark, PUBLISH, a history point; take the key into its kept full state (`_written`: replayed
        after an outage, kept even if the send fails, as the batch is then requeued and the replay
        overlays it again). One pass per key: it runs for every key of every batch."""
        append = cmds.append
        prefix = self.prefix
        last_ts = self._last_ts
        written = self._written
        indexed = self._indexed
        publish = self.publish
        history_len = self.history_len
        max_skew = self.max_future_skew_ms
        marked = self._marked
        new_symbols: list[str] = []
        cleared: list[str] = []
        deletions: list[tuple[str, list[str]]] = []
        corrected: dict[str, int] = {}  # symbol -> its event time as written, where not the entry's
        recv_str_of, recv_str = -1, ""
        for symbol, (fields, event_ts, recv_ts) in batch.items():
            key = f"{prefix}:{symbol}"
            if event_ts > recv_ts + max_skew:
                # An exchange clock far ahead would freeze `timestamp` for a long while.
                self.stats.error("clock_skew", f"{key}: event time {event_ts} is ahead of receive time {recv_ts}", parse=False)
                event_ts = corrected[symbol] = recv_ts
            prev = last_ts.get(key, 0)
            if event_ts < prev:
                event_ts = corrected[symbol] = prev  # timestamps never go backwards for a key
            last_ts[key] = event_ts
            if recv_ts != recv_str_of:  # one read's keys share their receive time
                recv_str_of, recv_str = recv_ts, str(recv_ts)
            fields["timestamp"] = iso_ms(event_ts)
            fields["recv_ts"] = recv_str
            try:
                append(pack_command(("HSET", key, *chain.from_iterable(fields.items()))))
            except TypeError:  # a None value: a field that no longer exists (e.g. an empty book side)
                self._pack_deletions(symbol, key, fields, recv_ts, append, deletions)
            if marked and symbol in marked:
                if symbol not in keep:
                    append(pack_command(("HDEL", key, STALE)))  # after the HSET: never live-looking old data
                    cleared.append(symbol)
                elif keep[symbol]:
                    append(pack_command(("HSET", key, STALE, keep[symbol])))
            if publish:
                append(pack_command(("PUBLISH", key, dumps(fields))))
            if symbol not in indexed:
                new_symbols.append(symbol)
            if history_len and "ltp" in fields and recv_ts - self._history_at.get(key, 0) >= HISTORY_EVERY_MS:
                self._history_at[key] = recv_ts
                hkey = HISTORY.format(prefix=prefix, symbol=symbol)
                append(pack_command(("LPUSH", hkey, f"{recv_ts}:{fields['ltp']}")))
                append(pack_command(("LTRIM", hkey, 0, history_len - 1)))
        merge_entries(written, batch, copy=True)
        if corrected:
            for symbol, event_ts in corrected.items():
                written[symbol][1] = event_ts
        return new_symbols, cleared, deletions

    def _pack_deletions(self, symbol: str, key: str, fields: dict[str, Any], recv_ts: int,
                        append: Callable[[bytes], None], deletions: list[tuple[str, list[str]]]) -> None:
        """HDEL of the fields whose value is None, then HSET of the others. The None values stay in
        `fields` (published as `null`; kept pending if the send fails, so the HDEL is retried) and
        are dropped from the key's kept full state after the loop: a replay can't bring them back."""
        gone: list[str] = []
        kept: list[Any] = []
        bad: list[str] = []
        for f, v in fields.items():
            if v is None:
                gone.append(f)
            elif isinstance(v, (str, bytes, int, float)):
                kept += (f, v)
            else:  # a parser bug: that field is dropped, the rest of the update is written
                self.stats.error("bad_field_value", f"{key}.{f}: {type(v).__name__} is not a string", parse=False)
                bad.append(f)
        for f in bad:
            del fields[f]
        if gone:
            append(pack_command(("HDEL", key, *gone)))
        append(pack_command(("HSET", key, *kept)))
        deletions.append((symbol, gone))
        if "ltp" in gone:  # no history point for a deleted price
            self._history_at[key] = recv_ts

    def _send(self, cmds: list[bytes]) -> None:
        """Send a batch without waiting for its replies (see wire.Wire.send); ConnectionError if it can't."""
        self._wire.send(cmds)

    def _reply_error(self, message: str) -> None:
        self.stats.error("redis_reply", message, parse=False)
        self._reply_failed()

    def _reply_failed(self) -> None:
        """An error reply (OOM at maxmemory, READONLY, WRONGTYPE...) is a write that did not happen, and
        the reply does not say which: every key's full state and the symbol index are rewritten, as
        after a connection error, with backoff (0.25 s doubling to 5 s) while Redis keeps refusing."""
        now = time.monotonic()
        if not self._error_replay:
            if now - self._error_last > 10.0:
                self._error_backoff = ERROR_REPLAY_FIRST_S
            self._error_replay = True
            self._error_replay_at = max(self._error_replay_at, now)
        self._error_last = now
        self._indexed.clear()
        self._wakeup.set()

    def _settle(self) -> None:
        """Wait for every outstanding reply (before exit: closing with unread replies would reset the connection)."""
        with self._io_lock:
            try:
                self._wire.settle()
            except (redis.RedisError, OSError) as exc:
                log.warning("%d writes unconfirmed at exit: %s", self._wire.unread, exc)

    # -- liveness marks and start-up reconciliation ---------------------------------

    def mark_written_stale(self, cause: str) -> int:
        """Mark every key this process has written and that is not marked yet: `stale` = "<cause> <now>".

        Called by the status thread while the feed is disconnected or silent. What was pending is
        written first, so the mark lands after every value received before it; the next write of
        a key clears its mark. While Redis is away the marks are only recorded: the rewrite of
        every key's full state when it is back carries them. Returns how many keys were marked."""
        value = stale_value(cause)
        with self._io_lock:
            self._write_pending_before_marks()
            marked = self._marked
            targets = [s for s in self._written if not marked.get(s)]
            if not targets:
                return 0
            cmds = []
            for symbol in targets:
                key = f"{self.prefix}:{symbol}"
                cmds.append(pack_command(("HSET", key, STALE, value)))
                if self.publish:
                    cmds.append(pack_command(("PUBLISH", key, dumps({STALE: value}))))
                marked[symbol] = value
            if self.connected and not self._replay:
                try:
                    self._send(cmds)
                except redis.RedisError as exc:
                    self._failed(exc, {})
            else:
                self._replay = True
                self._wakeup.set()
        log.warning("marked %d key(s) stale: %s", len(targets), value)
        return len(targets)

    def _write_pending_before_marks(self) -> None:
        """What was received before a mark goes first (under _io_lock): written, or while Redis is
        away taken into the kept state that the replay rewrites, so that its write can't clear the mark."""
        if self._pending and self.connected:
            self._write_pending()
        if self._pending and not self.connected and self._reconcile_job is None:
            with self._lock:
                early, self._pending = self._pending, {}
            self._write(early, dry=True)
            self._replay = True

    def resync(self) -> None:
        """Redis may have lost or changed this feed's keys: its status hash had to be recreated
        (Redis restarted empty, or the hash expired during a long pause and the panel's
        `mark_prefix_stale` may have marked every key `not_running`). On a fresh connection, the writer
        rewrites every key's full last state with the marks this process made, whether or not
        data comes (a silent feed's keys come back marked); a mark made by someone else stays
        until that key's next write clears it."""
        with self._io_lock:
            for symbol in self._written:
                self._marked.setdefault(symbol, "")
            self._wire.drop()  # a restarted Redis: the old socket may still accept one send
            self._indexed.clear()
            self._replay = True
        self._wakeup.set()

    def is_marked(self, symbol: str) -> bool:
        return bool(self._marked.get(symbol))

    def has_written(self, symbol: str) -> bool:
        """Whether this process has written the key (or is writing it now)."""
        return symbol in self._written or symbol in self._pending

    def reconcile(self, keep: Collection[str] | None, cause: str = "restarted") -> bool:
        """Start of a feed: make Redis agree with this process before it writes anything.

        Every symbol of the index `ltp:symbols:<prefix>` that is not in `keep` (a fixed symbol list;
        None for feeds whose set discovery decides) is removed: hash, history, index entry. Every
        other key still in Redis is marked `stale` = "restarted <now>" until this process rewrites
        it: values left from a previous run must not look current. Redis gets START_TIMEOUT_S to
        answer; if it does not, this returns False at once and the writer runs the same step
        before its first write, whenever Redis is back."""
        self._reconcile_job = (None if keep is None else sorted(keep), stale_value(cause))
        with self._io_lock:
            if self._run_reconcile(self._quick):
                return True
            self.connected = False  # flushes leave the writes (and this step) to the writer thread
            return False

    def _run_reconcile(self, client: redis.Redis) -> bool:
        """The reconciliation job, if still to do (under _io_lock). False: Redis did not answer."""
        job = self._reconcile_job
        if job is None:
            return True
        keep, value = job
        try:
            removed, marked = reconcile_prefix(client, self.prefix, keep, value, publish=self.publish)
        except redis.ResponseError as exc:  # Redis answered but won't run it: write anyway, say so
            self._reconcile_job = None
            self.stats.error("reconcile", f"could not reconcile the keys left in Redis: {exc}", parse=False)
            return True
        except redis.RedisError as exc:
            log.warning("Redis did not answer the start-up reconciliation (%s); it runs before the first write", exc)
            return False
        self._reconcile_job = None
        for symbol in marked:
            self._marked.setdefault(symbol, value)
        if removed:
            log.info("removed %d key(s) left in Redis that are no longer %s: %s%s", len(removed),
                     "configured" if keep is not None else "indexed", ", ".join(sorted(removed)[:10]),
                     "..." if len(removed) > 10 else "")
        if marked:
            log.info("marked %d key(s) left from the previous run stale (%s) until rewritten", len(marked), value)
        return True

    def index_members(self) -> set[str] | None:
        """The symbols in this prefix's index now, or None if Redis did not answer within START_TIMEOUT_S."""
        try:
            return set(self._quick.smembers(self._index_key))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            log.warning("could not read the symbol index %s: %s", self._index_key, exc)
            return None

    def mark_prefix_stale(self, cause: str) -> int | None:
        """Mark every key of the prefix (the whole index, `stale.mark_prefix_stale`), e.g. `stopped` at
        exit; None if Redis did not answer within START_TIMEOUT_S. Call after close(): nothing may be
        written afterwards."""
        try:
            return mark_prefix_stale(self._quick, self.prefix, cause, publish=self.publish)
        except redis.RedisError as exc:
            log.warning("could not mark the keys %s (%s)", cause, exc)
            return None

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
                for s in symbols:  # one key per DEL: in a cluster the keys live on different masters
                    pipe.delete(f"{self.prefix}:{s}")
                    pipe.delete(HISTORY.format(prefix=self.prefix, symbol=s))
                pipe.srem(self._index_key, *symbols)
                pipe.execute()
            except redis.RedisError as exc:
                log.warning("could not remove %d expired keys: %s", len(keys), exc)
            for s in symbols:
                self._indexed.discard(s)
                self._written.pop(s, None)
                self._marked.pop(s, None)
                self._last_ts.pop(f"{self.prefix}:{s}", None)
