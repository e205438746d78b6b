"""RedisSink against a real, private redis-server."""

from __future__ import annotations

import json
import os
import signal
import time

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
