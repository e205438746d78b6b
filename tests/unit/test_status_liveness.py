"""The status reporter's liveness duties against a real redis-server: stale marks, `no_data`,
the status hash coming back after it expired, configuration errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import time

import pytest

from tests.harness import wait_for
from workers.runtime.sink import RedisSink
from workers.runtime.stats import CONNECTING, RECONNECTING, STOPPED, SUBSCRIBED, FeedStats
from workers.runtime.status import StatusReporter, liveness_cause, mark_prefix_stale, report_config_error


def now_ms() -> int:
    return int(time.time() * 1000)


def feed(redis_server, symbols=("A", "B"), stale_after=1.0) -> tuple[FeedStats, RedisSink, StatusReporter]:
    stats = FeedStats("t", list(symbols))
    sink = RedisSink(redis_server.url, "t", stats)
    sink.start()
    return stats, sink, StatusReporter(redis_server.url, stats, sink, stale_after=stale_after)


@pytest.mark.parametrize(("state", "age", "cause"), [
    (CONNECTING, 0, "disconnected"), (RECONNECTING, 0, "disconnected"), (SUBSCRIBED, 0.5, None),
    (SUBSCRIBED, 2.0, "silent"), (STOPPED, 5.0, None),
])
def test_liveness_cause(state, age, cause):
    stats = FeedStats("t")
    stats.state = state
    stats.last_message_at = time.time() - age
    assert liveness_cause(stats, 1.0) == cause


def test_subscribed_without_any_data_since_start_is_silent_after_stale_after():
    stats = FeedStats("t")
    stats.state = SUBSCRIBED
    stats.started_at = time.time() - 5
    assert liveness_cause(stats, 1.0) == "silent"


def test_check_marks_every_written_key_while_not_delivering_and_writes_clear_it(redis_server):
    r = redis_server.client()
    stats, sink, status = feed(redis_server)
    t = now_ms()
    sink.put("A", {"ltp": "1"}, t, t)
    sink.put("B", {"ltp": "1"}, t, t)
    stats.state, stats.last_message_at = SUBSCRIBED, time.time()
    wait_for(lambda: r.scard("ltp:symbols:t") == 2)
    status.check()
    assert not r.hget("t:A", "stale")  # live: nothing marked
    stats.state = RECONNECTING
    status.check()
    wait_for(lambda: (r.hget("t:A", "stale") or "").startswith("disconnected ") and r.hget("t:B", "stale"))
    stats.state, stats.last_message_at = SUBSCRIBED, time.time()
    sink.put("A", {"ltp": "2"}, t + 1, t + 1)
    wait_for(lambda: r.hget("t:A", "ltp") == "2")
    assert r.hget("t:A", "stale") is None and r.hget("t:B", "stale").startswith("disconnected ")
    stats.last_message_at = time.time() - 2  # silent past stale_after (1 s)
    status.check()
    wait_for(lambda: (r.hget("t:A", "stale") or "").startswith("silent "))
    assert r.hget("t:B", "stale").startswith("disconnected ")  # already marked: keeps its cause and time
    sink.close()


def test_no_data_lists_symbols_without_a_write_after_stale_after_subscribed_once(redis_server, caplog):
    r = redis_server.client()
    stats, sink, status = feed(redis_server, ("A", "B", "C", "REJ", "TOPIC"), stale_after=0.5)
    stats.rejected["REJ"] = "not listed"  # already reported as rejected: not no_data
    stats.rejected["tickers.TOPIC"] = "handler not found"  # Bybit names the refused topic
    t = now_ms()
    sink.put("A", {"ltp": "1"}, t, t)
    status.check()
    time.sleep(0.6)
    status.check()  # not subscribed yet: the grace has not started
    assert stats.no_data == []
    stats.state, stats.last_message_at = SUBSCRIBED, time.time()
    with caplog.at_level(logging.ERROR):
        status.check()
        assert stats.no_data == []
        time.sleep(0.6)
        stats.last_message_at = time.time()
        status.check()
        status.check()
    assert stats.no_data == ["B", "C"]
    assert stats.errors_by_kind["no_data"] == 2 and "B, C" in stats.last_error
    assert sum("no data within" in rec.getMessage() for rec in caplog.records) == 1  # reported once
    status.publish()
    assert json.loads(r.hget("service:status:t", "no_data")) == ["B", "C"]
    sink.put("B", {"ltp": "1"}, t, t)
    status.check()
    assert stats.no_data == ["C"] and stats.errors_by_kind["no_data"] == 2
    status.publish()
    assert json.loads(r.hget("service:status:t", "no_data")) == ["C"]
    sink.close()


def test_a_status_hash_that_had_expired_makes_the_feed_clear_marks_it_did_not_set(redis_server):
    """The panel marks a feed `not_running` once its status hash has expired; if the process was
    only paused, its next writes must clear those marks."""
    r = redis_server.client()
    stats, sink, status = feed(redis_server)
    t = now_ms()
    sink.put("A", {"ltp": "1"}, t, t)
    wait_for(lambda: r.exists("t:A"))
    assert status.publish()
    r.delete("service:status:t")  # expired while the process was paused
    assert mark_prefix_stale(r, "t", "not_running", status_key="service:status:t") == 1
    assert status.publish()  # the hash is back: the sink expects marks it did not make
    sink.put("A", {"ltp": "2"}, t + 1, t + 1)
    wait_for(lambda: r.hget("t:A", "ltp") == "2")
    assert r.hget("t:A", "stale") is None
    sink.close()


def test_config_error_is_recorded_with_its_message_and_the_keys_marked(redis_server):
    r = redis_server.client()
    r.hset("t:A", mapping={"ltp": "1"})
    r.sadd("ltp:symbols:t", "A")
    r.hset("service:status:t", mapping={"state": "subscribed", "messages_per_s": "12.0", "control_action": "start"})
    msg = "exchanges.yaml: exchanges.bybit.services.t.ping_interval: expected a number (allowed: 1 to 3600 seconds)"
    assert report_config_error(redis_server.url, "t", msg, "t")
    st = r.hgetall("service:status:t")
    assert st["state"] == "config_error" and st["last_error"] == msg and st["messages_per_s"] == "0.0"
    assert json.loads(st["errors_by_kind"]) == {"config_error": 1} and st["control_action"] == "start"
    assert r.ttl("service:status:t") > 3600
    assert r.hget("t:A", "stale").startswith("config_error ")


@pytest.mark.timing
def test_config_error_report_to_a_hung_redis_is_bounded(redis_server):
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert report_config_error(redis_server.url, "t", "bad", "t") is False
        assert time.monotonic() - t0 < 1.2
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
