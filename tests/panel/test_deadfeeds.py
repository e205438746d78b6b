"""The dead-feed marker against a real redis-server, fed plain snapshots (no supervisord): once per episode,
its memo per marker (not per process), nothing written for a feed that reports, runs, or may run on a down node."""

from __future__ import annotations

import pytest

from controlpanel.deadfeeds import DeadFeedMarker
from controlpanel.snapshot import FeedSeen, Snapshot
from workers.runtime.config import ServiceConfig

SID = "bybit_spot"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _svc() -> ServiceConfig:
    return ServiceConfig(service_id=SID, exchange="bybit", enabled=True, redis_prefix=SID, symbols=SYMBOLS,
                         endpoints={"spot_ws": "ws://x"}, endpoint="spot_ws", rest_endpoint=None, ping_interval=20,
                         silence_timeout=30, stale_after=60, poll_interval=2, depth=50, levels=10, book_top=True,
                         discovery_interval=300)


def _snap(state: str = "STOPPED", reported: bool = False, markable: bool = True, redis_ok: bool = True) -> Snapshot:
    return Snapshot({}, [FeedSeen(_svc(), state, reported, len(SYMBOLS), markable)], redis_ok)


@pytest.fixture
def r(redis_server):
    client = redis_server.client()
    for sym in SYMBOLS:
        client.hset(f"{SID}:{sym}", mapping={"ltp": "1", "recv_ts": "1"})
        client.sadd(f"ltp:symbols:{SID}", sym)
    return client


def _marks(r) -> list[str]:
    return [(r.hget(f"{SID}:{sym}", "stale") or "").split(" ")[0] for sym in SYMBOLS]


def test_once_per_episode_and_again_after_the_feed_reported(r):
    marker = DeadFeedMarker(r)
    assert marker.mark(_snap()) == [SID] and _marks(r) == ["not_running"] * 2
    r.hdel(f"{SID}:BTCUSDT", "stale")
    assert marker.mark(_snap()) == [] and _marks(r) == ["", "not_running"]  # marked in this episode: no write
    assert marker.mark(_snap(reported=True)) == []  # its status hash is back: the episode ends
    assert marker.mark(_snap()) == [SID] and _marks(r) == ["not_running"] * 2


def test_each_marker_keeps_its_own_memo(r):
    """Two panels on one Redis (or two apps in one process): the second marks too, as before."""
    assert DeadFeedMarker(r).mark(_snap()) == [SID]
    for sym in SYMBOLS:
        r.hdel(f"{SID}:{sym}", "stale")
    assert DeadFeedMarker(r).mark(_snap()) == [SID] and _marks(r) == ["not_running"] * 2


@pytest.mark.parametrize("snap", [
    _snap(state="RUNNING"), _snap(state="UNKNOWN"), _snap(state="STOPPING"), _snap(reported=True),
    _snap(markable=False), _snap(redis_ok=False),
], ids=["running", "node-unknown", "stopping", "status-hash-there", "maybe-on-a-down-node", "redis-error"])
def test_nothing_is_marked_for_a_feed_that_may_be_alive(r, snap):
    assert DeadFeedMarker(r).mark(snap) == [] and _marks(r) == ["", ""]


def test_a_status_hash_that_reappeared_is_checked_atomically(r):
    r.hset(f"service:status:{SID}", "state", "subscribed")  # the snapshot is older than the feed's return
    marker = DeadFeedMarker(r)
    assert marker.mark(_snap()) == [] and _marks(r) == ["", ""]
    r.delete(f"service:status:{SID}")
    assert marker.mark(_snap()) == [SID]  # not memoised by the refused attempt
