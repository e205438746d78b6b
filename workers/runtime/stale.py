"""Liveness marks: the `stale` field of a key whose value is not known to be current.

A mark is `stale` = "<cause> <ISO time>" (STALE_CAUSES). The sink marks the keys its own process
wrote (`RedisSink.mark_written_stale`) and clears a key's mark at its next write; what is here works
on a whole prefix, through its symbol index: `mark_prefix_stale` (the panel, a watchdog, a feed at
exit), the start-up reconciliation (`reconcile_prefix`), and the re-marking of keys left from a
previous run in a replay (`leftover_marks`). On one Redis each is a server-side script, one round
trip, atomic; a Redis Cluster gets the same steps from cluster_marks (a script there may only touch
keys of one slot).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, cast

import redis

from . import cluster_marks
from .fields import HISTORY, SYMBOL_INDEX
from .redis_url import is_cluster
from .timefmt import iso_ms, now_ms
from .wire import pack_command

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


def mark_prefix_stale(client: redis.Redis, prefix: str, cause: str, *, status_key: str | None = None,
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


def reconcile_prefix(client: redis.Redis, prefix: str, keep: list[str] | None, value: str, *,
                     publish: bool) -> tuple[list[str], list[str]]:
    """Start of a feed: the indexed symbols not in `keep` (None: keep all), or whose hash is gone, are
    removed (hash, history, index entry); the others are marked `stale` = value. Returns (removed,
    marked). redis.RedisError if Redis did not do it."""
    index_key = SYMBOL_INDEX.format(prefix=prefix)
    history_prefix = HISTORY.format(prefix=prefix, symbol="")
    if is_cluster(client):
        return cluster_marks.reconcile(client, index_key, prefix, history_prefix, value, keep=keep, publish=publish)
    args: list[Any] = [prefix, history_prefix, value, "1" if publish else "0"]
    args += ["0"] if keep is None else ["1", *keep]
    removed, marked = cast(list[list[str]], client.eval(RECONCILE_LUA, 1, index_key, *args))
    return removed, marked


def leftover_marks(prefix: str, marks: Mapping[str, str], written_now: Collection[str], *, publish: bool,
                   cluster: bool) -> list[bytes]:
    """The commands that mark again, in a replay, the keys of `marks` (symbol -> its mark) that this
    process never wrote (left from the previous run): only if Redis still has them (it may have come
    back from its own persistence file). "" marks and the symbols in `written_now` are left out."""
    leftovers: dict[str, list[str]] = {}
    for symbol, value in marks.items():
        if value and symbol not in written_now:
            leftovers.setdefault(value, []).append(f"{prefix}:{symbol}")
    cmds = []
    for value, keys in leftovers.items():
        for group in ([k] for k in keys) if cluster else [keys]:  # a cluster script: one key
            cmds.append(pack_command(("EVAL", MARK_EXISTING_LUA, len(group), *group, value, "1" if publish else "0")))
    return cmds
