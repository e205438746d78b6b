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

Liveness (`stale`): a key whose value is not known to be current carries a
field `stale` = "<cause> <ISO time>" (see STALE_CAUSES). `mark_stale()` sets it
on every key this process wrote; the next write of a marked key removes it
(an HDEL in the same batch, only for keys currently marked: one dict lookup per
key on the hot path). At start `reconcile()` removes keys no longer configured
and marks those left from the previous run. A field whose value is None is
deleted (HDEL), e.g. a book side that became empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from itertools import chain
from typing import Any, cast

import hiredis
import redis
from orjson import dumps

from . import cluster_marks
from .model import Update
from .redis_url import ClusterClient, is_cluster
from .redis_url import client as url_client
from .stats import FeedStats
from .timefmt import iso_ms, now_ms
from .wire import ClusterWire, Wire

log = logging.getLogger(__name__)

# hiredis's stub types the argument as a one-element tuple; it takes any number of arguments.
pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)

SYMBOL_INDEX = "ltp:symbols:{prefix}"   # set of symbols under a prefix: SCARD is the data count
HISTORY = "ltp:history:{prefix}:{symbol}"  # capped list of recent LTPs (newest first), for sparklines
HISTORY_EVERY_MS = 1000  # one history point per key per second at most

STALE = "stale"  # the liveness marker field: absent = live; else "<cause> <ISO time>"
# Why a key is marked. A reader can rely on: no `stale` field => the feed process is running,
# connected, has received data within `stale_after`, and wrote this key since it started.
STALE_CAUSES = {
    "stopped": "the feed was stopped",
    "disconnected": "the feed's connection to the exchange is down (reconnecting)",
    "silent": "connected, but no data from the exchange for longer than stale_after",
    "restarted": "left from a previous run of the feed; not rewritten by the running one yet",
    "not_running": "the feed's process is gone without a word (its status hash expired)",
    "config_error": "the feed refuses to start: exchanges.yaml has a bad value",
}
_NOTHING: Mapping[str, str] = {}
START_TIMEOUT_S = 0.8  # Redis calls on the start and stop paths: a hung Redis must not hold them up

# Every indexed key of a prefix: marked stale (unless already marked with the same cause), and
# published; nothing when KEYS[2] (a status hash) exists. Server-side, one round trip, atomic with
# that check. Returns how many keys were marked, or -1 when the status hash exists.
# KEYS: index, status key or "". ARGV: prefix, cause, ISO time, publish (1/0).
MARK_ALL_LUA = """
if KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local head = ARGV[2] .. ' '
local value = head .. ARGV[3]
local n = 0
for _, sym in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. ':' .. sym
  if redis.call('EXISTS', key) == 1 then
    local cur = redis.call('HGET', key, 'stale')
    if not cur or string.sub(cur, 1, #head) ~= head then
      redis.call('HSET', key, 'stale', value)
      if ARGV[4] == '1' then redis.call('PUBLISH', key, cjson.encode({stale = value})) end
      n = n + 1
    end
  end
end
return n
"""

# Start of a feed: every indexed symbol not in the keep list (when one is given) is removed (hash,
# history, index entry); every other one whose hash exists is marked; an index entry without a
# hash is dropped. KEYS: index. ARGV: prefix, history prefix, mark value, publish (1/0),
# keep given (1/0), keep... Returns {removed symbols, marked symbols}.
RECONCILE_LUA = """
local keep = nil
if ARGV[5] == '1' then
  keep = {}
  for i = 6, #ARGV do keep[ARGV[i]] = true end
end
local removed, marked = {}, {}
for _, sym in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. ':' .. sym
  if (keep and not keep[sym]) or redis.call('EXISTS', key) == 0 then
    redis.call('DEL', key, ARGV[2] .. sym)
    redis.call('SREM', KEYS[1], sym)
    removed[#removed + 1] = sym
  else
    redis.call('HSET', key, 'stale', ARGV[3])
    if ARGV[4] == '1' then redis.call('PUBLISH', key, cjson.encode({stale = ARGV[3]})) end
    marked[#marked + 1] = sym
  end
end
return {removed, marked}
"""

# The given keys that exist get `stale` = ARGV[1] (published if ARGV[2] is 1); others are not created.
MARK_EXISTING_LUA = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'stale', ARGV[1])
    if ARGV[2] == '1' then redis.call('PUBLISH', key, cjson.encode({stale = ARGV[1]})) end
  end
end
return 0
"""


def stale_value(cause: str, at_ms: int | None = None) -> str:
    """The marker's value: `stopped 2026-11-29T20:01:02.123Z`."""
    return f"{cause} {iso_ms(now_ms() if at_ms is None else at_ms)}"


def mark_stale(client: redis.Redis, prefix: str, cause: str, *, status_key: str | None = None,
               publish: bool = True) -> int:
    """Mark every key of `prefix` (its symbol index) stale with `cause`, in one server-side step.

    For whoever knows a feed is not delivering when the feed itself can't say so: the panel or a
    watchdog, for a feed whose process died without a word (`kill -9`, OOM). With `status_key`
    (`service:status:<feed>`) nothing is marked while that hash exists, checked atomically with
    the marking, so a feed that has just come back is never marked. Keys already marked with the
    same cause keep their time, so calling it repeatedly is cheap and changes nothing. Returns the
    number of keys marked, -1 if the status hash exists. The feed clears each mark at its next
    write of that key (after the status hash reappears it clears every key it writes)."""
    if is_cluster(client):
        return cluster_marks.mark_all(client, SYMBOL_INDEX.format(prefix=prefix), prefix, stale_value(cause),
                                      status_key=status_key, publish=publish)
    return int(client.eval(MARK_ALL_LUA, 2, SYMBOL_INDEX.format(prefix=prefix), status_key or "",  # type: ignore[arg-type]
                           prefix, cause, iso_ms(now_ms()), "1" if publish else "0"))


SOCKET_TIMEOUT_S = 5
ERROR_REPLAY_FIRST_S = 0.25  # after an error reply: full rewrite, then waits doubling to ERROR_REPLAY_MAX_S
ERROR_REPLAY_MAX_S = 5.0


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
        # key -> [fields, event_ts_ms, recv_ts_ms]; the only buffer there is.
        self._pending: dict[str, list[Any]] = {}
        self._last_ts: dict[str, int] = {}       # newest `timestamp` written per key
        self._history_at: dict[str, int] = {}    # when a history point was last pushed per key
        self._indexed: set[str] = set()          # symbols known to be in the symbol index
        # symbol -> [all fields last written, event_ts, recv_ts]: replayed after an outage,
        # because Redis may return empty. Bounded by the number of instruments.
        self._written: dict[str, list[Any]] = {}
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
            self._error_replay = False
            self._replay = True
            self._error_replay_at = time.monotonic() + self._error_backoff
            self._error_backoff = min(self._error_backoff * 2, ERROR_REPLAY_MAX_S)
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

    def _failed(self, exc: Exception, pending: dict[str, list[Any]]) -> None:
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

    def _write(self, batch: dict[str, list[Any]], keep: Mapping[str, str] = _NOTHING, dry: bool = False) -> None:
        """`keep`: marked keys whose mark stays, with its value ("": left as Redis has it), in a
        replay of keys without new data. `dry`: only take the batch into each key's kept state
        (Redis is away; the replay will write it)."""
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
        marked = self._marked
        cleared = []  # marked keys written now: their mark goes with this batch
        deletions: list[tuple[str, list[str]]] = []  # (symbol, fields deleted): not part of its kept state
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
            try:
                append(pack_command(("HSET", key, *chain.from_iterable(fields.items()))))
            except TypeError:  # a None value: a field that no longer exists (e.g. an empty book side)
                self._pack_deletions(symbol, key, fields, recv_ts, append, deletions)
            if marked and symbol in marked:
                if symbol in keep:
                    if keep[symbol]:
                        append(pack_command(("HSET", key, STALE, keep[symbol])))
                else:
                    append(pack_command(("HDEL", key, STALE)))  # after the HSET: never live-looking old data
                    cleared.append(symbol)
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
        if keep:
            # Marked keys this process never wrote (left from the previous run): re-marked only if
            # Redis still has them (it may have come back from its own persistence file).
            leftovers: dict[str, list[str]] = {}
            for symbol, value in keep.items():
                if value and symbol not in batch:
                    leftovers.setdefault(value, []).append(f"{prefix}:{symbol}")
            for value, keys in leftovers.items():
                for group in ([k] for k in keys) if self._cluster else [keys]:  # a cluster script: one key
                    append(pack_command(("EVAL", MARK_EXISTING_LUA, len(group), *group, value, "1" if publish else "0")))
        for symbol, gone in deletions:
            state = written[symbol][0]
            for f in gone:
                state.pop(f, None)
        if dry:
            for symbol in cleared:
                marked.pop(symbol, None)
            return
        if cmds:
            self._send(cmds)
        indexed.update(new_symbols)
        for symbol in cleared:
            marked.pop(symbol, None)
        self.stats.writes_total += len(batch)

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

    def mark_stale(self, cause: str) -> int:
        """Mark every key this process has written and that is not marked yet: `stale` = "<cause> <now>".

        Called by the status thread while the feed is disconnected or silent. What was pending is
        written first, so the mark lands after every value received before it; the next write of
        a key clears its mark. While Redis is away the marks are only recorded: the rewrite of
        every key's full state when it is back carries them. Returns how many keys were marked."""
        value = stale_value(cause)
        with self._io_lock:
            if self._pending and self.connected:
                self._write_pending()
            if self._pending and not self.connected and self._reconcile_job is None:
                # Redis is away: what was received before the mark joins the kept state that the
                # replay rewrites, so that its write can't clear the mark.
                with self._lock:
                    early, self._pending = self._pending, {}
                self._write(early, dry=True)
                self._replay = True
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

    def resync(self) -> None:
        """Redis may have lost or changed this feed's keys: its status hash had to be recreated
        (Redis restarted empty, or the hash expired during a long pause and the panel's
        `mark_stale` may have marked every key `not_running`). On a fresh connection, the writer
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
        history_prefix = HISTORY.format(prefix=self.prefix, symbol="")
        args: list[Any] = [self.prefix, history_prefix, value, "1" if self.publish else "0"]
        args += ["0"] if keep is None else ["1", *keep]
        try:
            if self._cluster:
                removed, marked = cluster_marks.reconcile(client, self._index_key, self.prefix, history_prefix, value,
                                                          keep=keep, publish=self.publish)
            else:
                reply = cast(list[list[str]], client.eval(RECONCILE_LUA, 1, self._index_key, *args))
                removed, marked = reply
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

    def mark_all_stale(self, cause: str) -> int | None:
        """Mark every key of the prefix (the whole index) stale, e.g. `stopped` at exit; None if Redis
        did not answer within START_TIMEOUT_S. Call after close(): nothing may be written afterwards."""
        try:
            return mark_stale(self._quick, self.prefix, cause, publish=self.publish)
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
