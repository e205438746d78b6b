"""RedisSink against a real, private redis-server."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.harness import RedisServer, wait_for
from workers.runtime.model import Update
from workers.runtime.sink import SOCKET_TIMEOUT_S, RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.timefmt import iso_ms


def make_sink(server: RedisServer, **kw) -> RedisSink:
    sink = RedisSink(server.url, "t", FeedStats("t"), **kw)
    sink.start()
    return sink


def now_ms() -> int:
    return int(time.time() * 1000)


def test_updates_merge_into_the_hash_with_timestamp_and_recv_ts(redis_server):
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("BTC", {"ltp": "1", "bid": "0.9"}, t - 5, t)
    sink.put("BTC", {"ltp": "2"}, t - 3, t + 1)
    r = redis_server.client()
    wait_for(lambda: r.hget("t:BTC", "ltp") == "2")
    row = r.hgetall("t:BTC")
    assert row["bid"] == "0.9" and row["timestamp"] == iso_ms(t - 3) and row["recv_ts"] == str(t + 1)
    assert r.smembers("ltp:symbols:t") == {"BTC"}
    sink.close()


def test_pending_updates_of_a_key_coalesce_into_one_write(redis_server):
    r = redis_server.client()
    sink = RedisSink(redis_server.url, "t", FeedStats("t"))  # writer not started yet: everything queues
    t = now_ms()
    for i in range(1000):
        sink.put("BTC", {"ltp": str(i + 1)}, t + i, t + i)
    for i in range(50):
        sink.put(f"S{i}", {"ltp": "1"}, t, t)
    assert sink.pending_count() == 51
    sink.start()
    wait_for(lambda: r.hget("t:BTC", "ltp") == "1000")
    wait_for(lambda: sink.stats.writes_total == 51)
    sink.close()


def test_publishes_the_written_fields_on_the_key_channel(redis_server):
    r = redis_server.client()
    ps = r.pubsub()
    ps.subscribe("t:ETH")
    wait_for(lambda: (m := ps.get_message(timeout=0.1)) and m["type"] == "subscribe")
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("ETH", {"ltp": "3"}, t, t)
    msg = wait_for(lambda: (m := ps.get_message(timeout=0.1)) and m["type"] == "message" and m)
    assert json.loads(msg["data"]) == {"ltp": "3", "timestamp": iso_ms(t), "recv_ts": str(t)}
    sink.close()
    ps.close()


def test_timestamps_never_go_backwards_and_future_clocks_are_clamped(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("X", {"ltp": "1"}, t, t)
    wait_for(lambda: r.hget("t:X", "ltp") == "1")
    sink.put("X", {"ltp": "2"}, t - 60_000, t + 10)  # exchange clock jumped back
    wait_for(lambda: r.hget("t:X", "ltp") == "2")
    assert r.hget("t:X", "timestamp") == iso_ms(t)
    sink.put("X", {"ltp": "3"}, t + 86_400_000, t + 20)  # a day ahead: use the receive time
    wait_for(lambda: r.hget("t:X", "ltp") == "3")
    assert r.hget("t:X", "timestamp") == iso_ms(t + 20)
    assert sink.stats.errors_by_kind["clock_skew"] == 1
    sink.close()


def test_redis_restart_mid_run_keeps_latest_state_and_recovers(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("A", {"ltp": "1", "original_symbol": "A"}, t, t)
    sink.put("C", {"ltp": "7"}, t, t)  # no update during the outage
    wait_for(lambda: r.hget("t:A", "ltp") == "1" and r.hget("t:C", "ltp") == "7")
    redis_server.stop()
    for i in range(5000):  # an outage under load: memory stays one entry per key
        sink.put("A", {"ltp": str(i)}, t + i, t + i)
        sink.put("B", {"ltp": str(i), "bid": "1"}, t + i, t + i)
    wait_for(lambda: not sink.connected, 5)
    assert sink.pending_count() <= 2
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:A", "ltp") == "4999" and r.hget("t:B", "ltp") == "4999", 10)
    assert sink.stats.redis_errors >= 1 and sink.connected
    # Redis came back empty: the full last state is rewritten, not only what changed meanwhile.
    assert r.hget("t:A", "original_symbol") == "A" and r.hget("t:C", "ltp") == "7"
    assert r.smembers("ltp:symbols:t") == {"A", "B", "C"}
    sink.close()


def test_close_flushes_pending_writes(redis_server):
    sink = RedisSink(redis_server.url, "t", FeedStats("t"))
    t = now_ms()
    sink.put("Z", {"ltp": "9"}, t, t)
    sink.start()
    sink.close()
    assert redis_server.client().hget("t:Z", "ltp") == "9"


def test_forget_removes_keys_history_and_index(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server, history_len=5)
    t = now_ms()
    sink.put("OLD", {"ltp": "1"}, t, t)
    sink.put("NEW", {"ltp": "1"}, t, t)
    wait_for(lambda: r.scard("ltp:symbols:t") == 2)
    assert r.llen("ltp:history:t:OLD") == 1
    sink.forget(["OLD"])
    assert not r.exists("t:OLD", "ltp:history:t:OLD")
    assert r.smembers("ltp:symbols:t") == {"NEW"}
    sink.close()


def test_history_is_capped_and_at_most_one_point_per_second(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server, history_len=3)
    t = now_ms()
    for i in range(10):
        sink.put("H", {"ltp": str(i)}, t + i * 1000, t + i * 1000)
        sink.put("H", {"ltp": f"{i}.5"}, t + i * 1000 + 1, t + i * 1000 + 1)
        time.sleep(0.02)
    wait_for(lambda: r.hget("t:H", "ltp") == "9.5")
    hist = r.lrange("ltp:history:t:H", 0, -1)
    assert len(hist) == 3
    stamps = [int(h.split(":", 1)[0]) for h in hist]
    assert stamps[0] - stamps[1] >= 1000 and stamps[1] - stamps[2] >= 1000  # newest first, one per second
    assert hist[0].split(":", 1)[1] in ("9", "9.5")
    sink.close()


def test_stage_and_flush_write_on_the_callers_thread(redis_server):
    r = redis_server.client()
    sink = RedisSink(redis_server.url, "t", FeedStats("t"))  # no writer thread: only flush() writes
    t = now_ms()
    sink.stage([Update("S1", {"ltp": "1"}, t), Update("S1", {"bid": "0.5"}, t + 1), Update("S2", {"ltp": "2"}, t)], t + 2)
    assert sink.pending_count() == 2
    sink.flush()
    assert sink.pending_count() == 0 and sink.stats.writes_total == 2  # one read's frames: one write per key
    wait_for(lambda: r.hgetall("t:S1") and r.hget("t:S2", "ltp") == "2")
    row = r.hgetall("t:S1")
    assert row["ltp"] == "1" and row["bid"] == "0.5" and row["timestamp"] == iso_ms(t + 1)
    sink.close(0.1)


@pytest.mark.timing
def test_flush_while_redis_is_away_leaves_the_retry_to_the_writer_thread(redis_server):
    sink = make_sink(redis_server)
    t = now_ms()
    sink.stage([Update("A", {"ltp": "1", "original_symbol": "A"}, t)], t)
    sink.flush()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:A", "ltp") == "1")
    redis_server.stop()
    started = time.monotonic()
    for i in range(2000):
        sink.stage([Update("A", {"ltp": str(i)}, t + i)], t + i)
        sink.flush()
    assert time.monotonic() - started < 3, "flushes must not retry or wait while Redis is away"
    wait_for(lambda: not sink.connected, 5)
    assert sink.pending_count() <= 1
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:A", "ltp") == "1999", 10)
    assert r.hget("t:A", "original_symbol") == "A"  # full state rewritten to the empty Redis
    sink.close()


def test_error_replies_are_counted_and_other_keys_still_written(redis_server):
    r = redis_server.client()
    r.set("t:BAD", "a string, not a hash")
    sink = RedisSink(redis_server.url, "t", FeedStats("t"))
    t = now_ms()
    sink.stage([Update("BAD", {"ltp": "1"}, t), Update("GOOD", {"ltp": "2"}, t)], t)
    sink.flush()
    wait_for(lambda: r.hget("t:GOOD", "ltp") == "2")
    sink.stage([Update("GOOD", {"ltp": "3"}, t + 1)], t + 1)
    sink.flush()  # reads the replies of the first batch: one WRONGTYPE
    wait_for(lambda: r.hget("t:GOOD", "ltp") == "3")
    sink.close(0.1)
    assert sink.stats.errors_by_kind.get("redis_reply") == 1
    assert sink.connected and r.get("t:BAD") == "a string, not a hash"


def test_a_hung_redis_is_noticed_at_a_low_rate_too(redis_server):
    """Replies are read lazily, so a paused Redis would look fine until thousands of replies are
    owed; the sink instead gives up on a Redis that answered nothing for the socket timeout."""
    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    sink.stage([Update("H", {"ltp": "1"}, t)], t)
    sink.flush()
    wait_for(lambda: r.hget("t:H", "ltp") == "1")
    sent = [1]

    def one_frame_then_check() -> bool:
        sent[0] += 1
        sink.stage([Update("H", {"ltp": str(sent[0])}, t + sent[0])], t + sent[0])
        sink.flush()
        return not sink.connected

    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        paused = time.monotonic()
        wait_for(one_frame_then_check, 20, interval=0.5)  # 2 frames/s: far below MAX_UNREAD_REPLIES
        assert time.monotonic() - paused < 2 * SOCKET_TIMEOUT_S + 2
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    wait_for(lambda: sink.connected and r.hget("t:H", "ltp") == str(sent[0]), 10)
    sink.close()


# -- deleted fields, liveness marks, start-up reconciliation ---------------------------------------


def test_a_none_value_deletes_the_field_in_the_same_batch_and_a_replay_does_not_bring_it_back(redis_server):
    r = redis_server.client()
    ps = r.pubsub()
    ps.subscribe("t:X")
    wait_for(lambda: (m := ps.get_message(timeout=0.1)) and m["type"] == "subscribe")
    sink = make_sink(redis_server)
    t = now_ms()
    sink.stage([Update("X", {"best_bid": "1", "best_ask": "2", "original_symbol": "X"}, t)], t)
    sink.flush()
    wait_for(lambda: r.hget("t:X", "best_ask") == "2")
    sink.stage([Update("X", {"best_bid": "1.5", "best_ask": None}, t + 1)], t + 1)  # type: ignore[dict-item]
    sink.flush()
    wait_for(lambda: r.hget("t:X", "best_bid") == "1.5")
    assert "best_ask" not in r.hgetall("t:X")
    msgs = []
    wait_for(lambda: (m := ps.get_message(timeout=0.1)) and m["type"] == "message" and msgs.append(json.loads(m["data"]))
             or len(msgs) == 2)
    assert msgs[1]["best_ask"] is None and msgs[1]["best_bid"] == "1.5"  # subscribers see the deletion
    # Redis restarts empty: the full state rewritten must not contain the deleted field.
    redis_server.stop()
    _until_disconnected(sink, "Y", {"ltp": "5"}, t + 2)
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:X", "best_bid") == "1.5" and r.hget("t:Y", "ltp") == "5", 10)
    assert "best_ask" not in r.hgetall("t:X") and r.hget("t:X", "original_symbol") == "X"
    # A value again later: back in the hash.
    sink.stage([Update("X", {"best_ask": "2.5"}, t + 3)], t + 3)
    sink.flush()
    wait_for(lambda: r.hget("t:X", "best_ask") == "2.5")
    sink.close()
    ps.close()


def test_a_deletion_staged_while_redis_is_away_is_carried_out_when_it_is_back(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("X", {"best_bid": "1", "best_ask": "2"}, t, t)
    wait_for(lambda: r.hget("t:X", "best_ask") == "2")
    redis_server.stop()
    _until_disconnected(sink, "X", {"best_ask": None}, t + 1)
    sink.put("X", {"best_bid": "1.1"}, t + 2, t + 2)  # merged with the pending deletion, not over it
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:X", "best_bid") == "1.1", 10)
    assert "best_ask" not in r.hgetall("t:X")
    sink.close()


def test_marked_keys_carry_stale_until_their_next_write(redis_server):
    r = redis_server.client()
    ps = r.pubsub()
    ps.subscribe("t:B")
    wait_for(lambda: (m := ps.get_message(timeout=0.1)) and m["type"] == "subscribe")
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("A", {"ltp": "1"}, t, t)
    sink.put("B", {"ltp": "2"}, t, t)
    wait_for(lambda: r.scard("ltp:symbols:t") == 2)
    assert sink.mark_written_stale("silent") == 2
    wait_for(lambda: r.hget("t:A", "stale") and r.hget("t:B", "stale"))
    value = r.hget("t:B", "stale")
    cause, at = value.split(" ")
    assert cause == "silent" and at.endswith("Z") and abs(int(time.time() * 1000) - _ms(at)) < 5000
    wait_for(lambda: (m := ps.get_message(timeout=0.1)) and m["type"] == "message"
             and json.loads(m["data"]).get("stale") == value)  # subscribers are told too
    sink.put("A", {"ltp": "1.5"}, t + 1, t + 1)
    wait_for(lambda: r.hget("t:A", "ltp") == "1.5")
    assert r.hget("t:A", "stale") is None and r.hget("t:B", "stale") == value
    assert sink.mark_written_stale("disconnected") == 1  # only A: B keeps its mark and its time
    wait_for(lambda: (r.hget("t:A", "stale") or "").startswith("disconnected "))
    assert r.hget("t:B", "stale") == value
    sink.close()
    ps.close()


def _until_disconnected(sink: RedisSink, symbol: str, fields: dict, ts: int) -> None:
    """Repeat an update until the sink notices Redis is gone (the first send to a dead server may
    still succeed: the reset arrives after it)."""
    wait_for(lambda: sink.put(symbol, dict(fields), ts, ts) or not sink.connected, 5)


def _ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp() * 1000)


def test_marks_come_back_right_after_redis_restarts_empty(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    for s in ("A", "B", "C"):
        sink.put(s, {"ltp": "1", "original_symbol": s}, t, t)
    wait_for(lambda: r.scard("ltp:symbols:t") == 3)
    sink.mark_written_stale("silent")
    wait_for(lambda: all(r.hget(f"t:{s}", "stale") for s in "ABC"))
    marked_b = r.hget("t:B", "stale")
    redis_server.stop()
    _until_disconnected(sink, "A", {"ltp": "2"}, t + 1)  # new data for A during the outage: live again
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:A", "ltp") == "2" and r.exists("t:B", "t:C") == 2, 10)
    assert r.hget("t:A", "stale") is None
    assert r.hget("t:B", "stale") == marked_b and r.hget("t:C", "original_symbol") == "C"
    sink.close()


def test_a_mark_made_while_redis_is_away_is_written_when_it_is_back(redis_server):
    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("A", {"ltp": "1"}, t, t)
    sink.put("B", {"ltp": "1"}, t, t)
    wait_for(lambda: r.scard("ltp:symbols:t") == 2)
    redis_server.stop()
    _until_disconnected(sink, "B", {"ltp": "3"}, t + 1)
    assert sink.mark_written_stale("disconnected") == 2  # recorded; Redis is away
    redis_server.start()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:B", "ltp") == "3" and r.exists("t:A"), 10)
    wait_for(lambda: (r.hget("t:A", "stale") or "").startswith("disconnected "))
    assert (r.hget("t:B", "stale") or "").startswith("disconnected ")  # B's data came before the mark
    sink.close()


def _leftovers(r) -> None:
    """Keys a previous process of prefix `t` left: A, B, OLD (with history), an index entry without a hash."""
    for s in ("A", "B", "OLD"):
        r.hset(f"t:{s}", mapping={"ltp": "1", "timestamp": "2026-01-01T00:00:00.000Z"})
    r.lpush("ltp:history:t:OLD", "1:1")
    r.sadd("ltp:symbols:t", "A", "B", "OLD", "GHOST")


def test_reconcile_removes_symbols_no_longer_configured_and_marks_the_rest_until_rewritten(redis_server):
    r = redis_server.client()
    _leftovers(r)
    sink = make_sink(redis_server, history_len=5)
    assert sink.reconcile(["A", "B", "NEW"]) is True
    assert not r.exists("t:OLD", "ltp:history:t:OLD")
    assert r.smembers("ltp:symbols:t") == {"A", "B"}
    assert r.hget("t:A", "stale").startswith("restarted ") and r.hget("t:B", "stale").startswith("restarted ")
    assert not r.exists("t:NEW")  # never created by a mark
    t = now_ms()
    sink.put("A", {"ltp": "2"}, t, t)
    sink.put("NEW", {"ltp": "3"}, t, t)
    wait_for(lambda: r.hget("t:A", "ltp") == "2" and r.hget("t:NEW", "ltp") == "3")
    assert r.hget("t:A", "stale") is None and r.hget("t:NEW", "stale") is None
    assert r.hget("t:B", "stale").startswith("restarted ")
    sink.close()


def test_reconcile_without_a_symbol_list_removes_nothing_listed(redis_server):
    r = redis_server.client()
    _leftovers(r)
    sink = make_sink(redis_server)
    assert sink.reconcile(None) is True
    assert r.smembers("ltp:symbols:t") == {"A", "B", "OLD"}  # only the entry without a hash is dropped
    assert all(r.hget(f"t:{s}", "stale").startswith("restarted ") for s in ("A", "B", "OLD"))
    sink.close()


@pytest.mark.timing
def test_reconcile_with_a_hung_redis_does_not_delay_start_and_runs_before_the_first_write(redis_server):
    r = redis_server.client()
    _leftovers(r)
    sink = make_sink(redis_server)
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert sink.reconcile(["A", "B"]) is False
        took = time.monotonic() - t0
        assert took < 1.2, f"start held up {took:.2f}s by a hung Redis"
        t = now_ms()
        sink.stage([Update("A", {"ltp": "9"}, t)], t)
        t0 = time.monotonic()
        sink.flush()  # leaves the write (and the reconciliation) to the writer thread
        assert time.monotonic() - t0 < 0.1
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    wait_for(lambda: r.hget("t:A", "ltp") == "9", 15)
    assert r.hget("t:A", "stale") is None  # written after the reconciliation marked it
    assert r.hget("t:B", "stale").startswith("restarted ")
    assert not r.exists("t:OLD") and r.smembers("ltp:symbols:t") == {"A", "B"}
    sink.close()


def test_mark_prefix_stale_marks_every_indexed_key_once_per_cause(redis_server):
    from workers.runtime.status import mark_prefix_stale

    r = redis_server.client()
    _leftovers(r)
    r.hset("service:status:t", "state", "subscribed")
    assert mark_prefix_stale(r, "t", "not_running", status_key="service:status:t") == -1  # the feed is alive
    assert not any(r.hget(f"t:{s}", "stale") for s in ("A", "B", "OLD"))
    r.delete("service:status:t")
    assert mark_prefix_stale(r, "t", "not_running", status_key="service:status:t") == 3
    first = r.hget("t:A", "stale")
    assert first.startswith("not_running ") and not r.exists("t:GHOST")
    time.sleep(0.01)
    assert mark_prefix_stale(r, "t", "not_running", status_key="service:status:t") == 0  # same cause: unchanged
    assert r.hget("t:A", "stale") == first
    sink = make_sink(redis_server)
    assert sink.mark_prefix_stale("stopped") == 3
    assert r.hget("t:A", "stale").startswith("stopped ")
    sink.close()


def test_a_mark_made_by_someone_else_is_cleared_by_the_next_write_once_announced(redis_server):
    from workers.runtime.status import mark_prefix_stale

    r = redis_server.client()
    sink = make_sink(redis_server)
    t = now_ms()
    sink.put("A", {"ltp": "1"}, t, t)
    wait_for(lambda: r.hget("t:A", "ltp") == "1")
    assert mark_prefix_stale(r, "t", "not_running") == 1
    sink.resync()  # what the status reporter does when its hash had expired
    time.sleep(0.3)
    assert r.hget("t:A", "stale").startswith("not_running ")  # the rewrite keeps it: no new data yet
    sink.put("A", {"ltp": "2"}, t + 1, t + 1)
    wait_for(lambda: r.hget("t:A", "ltp") == "2")
    assert r.hget("t:A", "stale") is None
    sink.close()
