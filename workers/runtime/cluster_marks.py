"""The server-side scripts of stale.py (MARK_ALL_LUA, RECONCILE_LUA), done by the client for a Redis Cluster.

A script may only touch the keys it declares, all in one slot; a prefix's keys are spread over every
master. So a cluster gets the same steps as pipelined single-key commands (redis-py groups them per
master: one round trip per master and step). What is lost is atomicity: a feed coming back while
the panel marks its keys `not_running` may see some marked until their next write (the feed rewrites
every key after it recreates its status hash, which clears marks it did not make at the next write).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import redis

from .fields import STALE


def mark_all(client: redis.Redis, index_key: str, prefix: str, value: str, *, status_key: str | None,
             publish: bool) -> int:
    """Every indexed key of `prefix` that exists gets `stale` = value (unless already marked with the
    same cause), published; -1 (nothing marked) when `status_key` exists. Returns how many were marked."""
    if status_key and client.exists(status_key):
        return -1
    keys = [f"{prefix}:{sym}" for sym in sorted(client.smembers(index_key))]  # type: ignore[arg-type]
    if not keys:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
        pipe.hget(key, STALE)
    answers = pipe.execute()
    head = value.split(" ", 1)[0] + " "
    targets = [key for key, exists, cur in zip(keys, answers[::2], answers[1::2], strict=True)
               if exists and not (cur or "").startswith(head)]
    _mark(client, targets, value, publish)
    return len(targets)


def reconcile(client: redis.Redis, index_key: str, prefix: str, history_prefix: str, value: str, *,
              keep: Collection[str] | None, publish: bool) -> tuple[list[str], list[str]]:
    """Start of a feed: indexed symbols not in `keep` (or whose hash is gone) are removed (hash, history,
    index entry); the others are marked `stale` = value. Returns (removed, marked)."""
    symbols = sorted(client.smembers(index_key))  # type: ignore[arg-type]
    if not symbols:
        return [], []
    pipe = client.pipeline(transaction=False)
    for sym in symbols:
        pipe.exists(f"{prefix}:{sym}")
    exists = pipe.execute()
    kept = None if keep is None else set(keep)
    removed = [s for s, e in zip(symbols, exists, strict=True) if not e or (kept is not None and s not in kept)]
    gone = set(removed)
    marked = [s for s in symbols if s not in gone]
    if removed:
        pipe = client.pipeline(transaction=False)
        for sym in removed:
            pipe.delete(f"{prefix}:{sym}")
            pipe.delete(f"{history_prefix}{sym}")
        pipe.srem(index_key, *removed)
        pipe.execute()
    _mark(client, [f"{prefix}:{s}" for s in marked], value, publish)
    return removed, marked


def _mark(client: redis.Redis, keys: list[str], value: str, publish: bool) -> None:
    if not keys:
        return
    pipe: Any = client.pipeline(transaction=False)
    for key in keys:
        pipe.hset(key, STALE, value)
    pipe.execute()
    if publish:
        # redis-py's cluster pipeline refuses PUBLISH; a classic PUBLISH on any node reaches the
        # subscribers of every node, so all of them go in one pipeline to one node.
        cluster: Any = client.cluster  # a redis_url.ClusterClient
        node_pipe = cluster.get_redis_connection(cluster.get_default_node()).pipeline(transaction=False)
        message = json.dumps({STALE: value}, separators=(",", ":"))  # as the scripts publish it
        for key in keys:
            node_pipe.publish(key, message)
        node_pipe.execute()
