"""Marking the keys of a feed that died without a word `not_running` (stale.mark_prefix_stale).

A feed whose status hash expired while supervisord says its process is not
running (kill -9, OOM, a crash loop) cannot say its keys are not current: the
panel does, once per such episode. The runtime's script checks atomically that
the status hash is still absent, so a feed that has just come back is never marked.

Who calls it: the control watcher's sweep every control.SWEEP_S (marks appear
with no browser open), and /api/status, so the dashboard shows the marks as it
reads the state that calls for them. /api/health and /metrics only read.
"""

from __future__ import annotations

import logging
import threading

import redis

from workers.runtime.stale import mark_prefix_stale
from workers.runtime.status import STATUS_KEY

from .snapshot import DEAD_STATES, FeedSeen, Snapshot

log = logging.getLogger(__name__)

DEAD_CAUSE = "not_running"


class DeadFeedMarker:
    """One per Redis client (deps.Deps holds the panel's). Remembers which feeds it marked in the
    current episode, so repeated sweeps write nothing; the memo is dropped once the feed reports again."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()  # the watcher and request threads sweep the same feeds
        self._marked: set[str] = set()
        self._failing: set[str] = set()  # marks that failed, logged once until one succeeds

    def mark(self, snap: Snapshot) -> list[str]:
        """Mark every dead feed of `snap` not marked in this episode; returns their ids."""
        if not snap.redis_ok:
            return []
        return [feed.svc.service_id for feed in snap.feeds if self._mark_one(feed)]

    def _mark_one(self, feed: FeedSeen) -> bool:
        sid = feed.svc.service_id
        if feed.reported:  # alive, or stopped cleanly (its final report): a new episode may begin
            if sid in self._marked:
                with self._lock:
                    self._marked.discard(sid)
            return False
        if not feed.markable or feed.process_state not in DEAD_STATES or feed.points <= 0 or sid in self._marked:
            return False
        with self._lock:
            if sid in self._marked:
                return False
            try:
                marked = mark_prefix_stale(self.client, feed.svc.redis_prefix, DEAD_CAUSE, status_key=STATUS_KEY.format(service_id=sid))
            except redis.RedisError as exc:
                if sid not in self._failing:
                    self._failing.add(sid)
                    log.warning("could not mark the keys of dead feed %s stale: %s", sid, exc)
                return False
            self._failing.discard(sid)
            if marked < 0:  # its status hash is back
                return False
            self._marked.add(sid)
        log.warning("%s is %s and its status hash expired: marked %d key(s) of %s stale (%s)",
                    sid, feed.process_state, marked, feed.svc.redis_prefix, DEAD_CAUSE)
        return True
