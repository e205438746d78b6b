"""Publish a feed's health to `service:status:<service_id>` every second.

The hash carries a TTL a few times the refresh period, so a feed that dies
without saying so disappears from Redis and shows up as dead, not as green.

Each refresh also keeps the data honest: while the feed's connection is down,
or it has received nothing for `stale_after`, every key it wrote is marked
`stale` (RedisSink.mark_written_stale); configured symbols that got no data
within `stale_after` of subscribing are listed in `no_data`. A process that dies
without a word can't mark anything: `mark_prefix_stale(redis, prefix, cause,
status_key=...)` (stale.py) is for the panel or a watchdog to call for such a feed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import redis

from .sink import START_TIMEOUT_S, RedisSink, redis_client
from .stale import mark_prefix_stale
from .stats import CONFIG_ERROR, CONNECTING, RECONNECTING, STOPPED, SUBSCRIBED, FeedStats
from .timefmt import iso_ms

__all__ = ["STATUS_KEY", "StatusReporter", "liveness_cause", "mark_prefix_stale", "report_config_error"]

log = logging.getLogger(__name__)

STATUS_KEY = "service:status:{service_id}"
STARTS_KEY = "service:starts:{service_id}"  # no TTL: how many times this feed's process has started
REFRESH_S = 1.0
TTL_S = 10
REJECTED_CAP = 100  # refusals listed in the status hash's `rejected`; `rejected_count` has the total
STOPPED_TTL_S = 7 * 24 * 3600  # a clean stop stays readable (the panel shows "stopped")
CONFIG_ERROR_TTL_S = STOPPED_TTL_S  # so does a configuration error, until a start with a good file


def liveness_cause(stats: FeedStats, stale_after: float, now: float | None = None) -> str | None:
    """Why the feed's data is not live right now, or None: `disconnected` (a connection is being
    (re)established), `silent` (subscribed, but no data for longer than `stale_after`; counted
    from the start while none has come)."""
    if stats.state in (CONNECTING, RECONNECTING):
        return "disconnected"
    if stats.state == SUBSCRIBED:
        last = stats.last_message_at or stats.started_at
        if (time.time() if now is None else now) - last > stale_after:
            return "silent"
    return None


def report_config_error(redis_url: str, service_id: str, message: str, prefix: str | None = None) -> bool:
    """A feed that can't start: `state=config_error` and the message in its status hash (kept
    CONFIG_ERROR_TTL_S, until a start with a good file replaces it) so the panel can show it, and
    its keys (if the prefix is known) marked `stale` = "config_error <time>". Bounded: Redis gets
    START_TIMEOUT_S per call, so the process still exits before supervisord's `startsecs`."""
    client = redis_client(redis_url, START_TIMEOUT_S, START_TIMEOUT_S)
    now = iso_ms(int(time.time() * 1000))
    key = STATUS_KEY.format(service_id=service_id)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, mapping={  # every field of a running feed's hash, so none is left from an earlier run
            "service_id": service_id, "state": CONFIG_ERROR, "pid": str(os.getpid()), "started_at": now,
            "last_message_at": "", "messages_total": "0", "messages_per_s": "0.0", "reconnects": "0",
            "restarts": "", "parse_errors": "0", "redis_errors": "0", "writes_total": "0", "pending_writes": "0",
            "last_error": message[:1000], "errors_by_kind": json.dumps({CONFIG_ERROR: 1}), "rejected": "{}",
            "no_data": "[]", "symbols": "", "updated_at": now,
        })
        pipe.expire(key, CONFIG_ERROR_TTL_S)
        pipe.execute()
        if prefix:
            mark_prefix_stale(client, prefix, CONFIG_ERROR)
        return True
    except redis.RedisError as exc:
        log.warning("could not record the configuration error in Redis (%s)", exc)
        return False


class StatusReporter:
    def __init__(self, redis_url: str, stats: FeedStats, sink: RedisSink | None = None, *, stale_after: float = 60.0) -> None:
        self.stats = stats
        self.sink = sink
        self.stale_after = stale_after
        self._published = False  # a later publish that recreates the hash: it had expired (see publish)
        self._no_data_since: dict[str, float] = {}  # configured symbol -> since when it is awaited (subscribed)
        self.key = STATUS_KEY.format(service_id=stats.service_id)
        self.starts_key = STARTS_KEY.format(service_id=stats.service_id)
        self._starts: int | None = None  # counted once, at the first publish Redis accepts
        self._client = redis_client(redis_url)
        self._quick = redis_client(redis_url, START_TIMEOUT_S, START_TIMEOUT_S)  # the stop path: bounded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._prev = (time.monotonic(), 0)
        self._rejected_key: tuple = ()
        self._rejected_cache = "{}"
        self._rate = 0.0

    def start(self) -> None:
        self._thread.start()

    def _rejected_json(self) -> str:
        """The `rejected` field: the first REJECTED_CAP refusals (sorted), the total in `rejected_count`.
        10,000 symbols with 9,000 unknown must not rewrite a megabyte every second."""
        rejected = self.stats.rejected
        key = (len(rejected), next(iter(rejected), None), next(reversed(rejected), None))
        if key != self._rejected_key:
            first = sorted(list(rejected))[:REJECTED_CAP]  # list(): one C-level copy (another thread adds)
            self._rejected_cache = json.dumps({k: rejected.get(k, "") for k in first}, sort_keys=True)
            self._rejected_key = key
        return self._rejected_cache

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
            "rejected": self._rejected_json(),
            "rejected_count": str(len(s.rejected)),
            "no_data": json.dumps(s.no_data),
            "symbols": ",".join(s.symbols),
            "updated_at": iso_ms(int(time.time() * 1000)),
        }

    def publish(self, ttl: int = TTL_S, quick: bool = False) -> bool:
        """`quick` (the stop path): START_TIMEOUT_S per call, and no start count if none was made yet."""
        client = self._quick if quick else self._client
        try:
            if self._starts is None and not quick:
                self._starts = int(self._client.incr(self.starts_key))  # type: ignore[arg-type]  # sync client
            pipe = client.pipeline(transaction=False)
            pipe.hset(self.key, mapping=self.snapshot())
            pipe.expire(self.key, ttl)
            added = pipe.execute()[0]
        except redis.RedisError:
            return False  # the sink already reports Redis trouble; status just retries
        if added and self._published and self.sink is not None:
            # The hash had gone: Redis restarted empty (the keys of a feed that gets no data now
            # would stay lost), or it expired during a pause and the panel may have marked the
            # keys `not_running`. The sink rewrites every key with its own marks.
            self.sink.resync()
        self._published = True
        return True

    def check(self) -> None:
        """Once per refresh: mark the data stale if the feed is not delivering; track `no_data`."""
        cause = liveness_cause(self.stats, self.stale_after)
        if cause and self.sink is not None:
            self.sink.mark_written_stale(cause)
        self._check_no_data(time.monotonic())

    def _check_no_data(self, now: float) -> None:
        """Configured symbols without a single write after `stale_after` subscribed: reported once
        (log, `no_data` list, error kind `no_data`), off the list when their data comes."""
        s, sink = self.stats, self.sink
        if sink is None:
            return
        refused = set(s.rejected) | {what.rsplit(".", 1)[-1] for what in s.rejected}  # symbols, or topics `tickers.X`
        wanted = [sym for sym in s.symbols if sym not in refused]
        waiting = {sym for sym in wanted if not sink.has_written(sym)}
        came = [sym for sym in s.no_data if sym not in waiting]
        if came:
            log.info("data arrived for %s; off the no_data list", ", ".join(came))
        reported = [sym for sym in s.no_data if sym in waiting]
        since = self._no_data_since
        for sym in list(since):
            if sym not in waiting:
                del since[sym]
        if s.state != SUBSCRIBED:
            since.clear()  # the grace runs while subscribed: a connection that is down explains the silence
        else:
            new = []
            for sym in wanted:
                if sym in waiting and sym not in reported:
                    t0 = since.setdefault(sym, now)
                    if now - t0 >= self.stale_after:
                        new.append(sym)
                        del since[sym]
            if new:
                s.report_no_data(new, self.stale_after)
                reported += new
        s.no_data = sorted(reported)

    def _run(self) -> None:
        self.publish()  # at once: the start path does not wait for Redis
        while not self._stop.wait(REFRESH_S):
            self.check()
            self.publish()

    def halt(self, timeout: float = 0.3) -> None:
        """Stop the refresh thread (no mark or publish after this returns, within `timeout`)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Write the final `stopped` state; it is kept long enough for the panel to show."""
        self.halt()
        self.stats.state = STOPPED
        if not self.publish(STOPPED_TTL_S, quick=True):
            log.warning("could not record the stopped state in Redis")
