"""WsConnection + RedisSink in process against the simulator: reconnects, silence, garbage."""

from __future__ import annotations

import threading
import time

import pytest

from tests.harness import wait_for
from workers.runtime.stats import SUBSCRIBED


@pytest.fixture
def feed(spot_connection):
    def make(symbols=("BTCUSDT", "ETHUSDT"), silence_timeout=30.0, max_frame_bytes=1 << 20):
        return spot_connection(symbols, silence_timeout=silence_timeout, max_frame_bytes=max_frame_bytes)

    return make


def test_server_drops_are_followed_by_reconnect_and_resubscribe(feed, sim, redis_server):
    conn, stats = feed()
    r = redis_server.client()
    wait_for(lambda: r.hget("t:BTCUSDT", "ltp"))
    threads_before = threading.active_count()
    bysim = sim.exchanges["bybit"]
    for _ in range(3):
        connects = bysim.connects
        sim.drop("bybit")
        wait_for(lambda c=connects: bysim.connects > c, 5)
        before = stats.messages_total
        wait_for(lambda b=before: stats.messages_total > b + 2, 5)  # data flows again: it re-subscribed
    assert stats.reconnects == 3
    assert threading.active_count() <= threads_before  # no thread per reconnect


def test_silent_server_is_detected_by_the_watchdog(feed, sim):
    conn, stats = feed(silence_timeout=1.0)
    wait_for(lambda: stats.state == SUBSCRIBED)
    sim.exchanges["bybit"].faults.silent = True
    wait_for(lambda: stats.reconnects >= 1, 4)
    assert stats.errors_by_kind.get("silence_timeout", 0) >= 1
    sim.exchanges["bybit"].faults.silent = False
    before = stats.messages_total
    wait_for(lambda: stats.messages_total > before, 5)


def test_garbage_is_counted_and_leaves_redis_untouched(feed, sim, redis_server):
    conn, stats = feed(symbols=("BTCUSDT",), max_frame_bytes=10_000)
    r = redis_server.client()
    wait_for(lambda: r.hget("t:BTCUSDT", "ltp"))
    sim.rate_hz = 0.5  # slow down so the row can be compared before and after
    bad = [
        '{"topic": "tickers.BTCUSDT", "ts": 1, "data": {',
        '{"topic": "tickers.BTCUSDT", "ts": 1672305380595, "type": "snapshot", "data": {"symbol": "BTCUSDT", "lastPrice": "NaN"}}',
        '{"topic": "tickers.BTCUSDT", "ts": 1672305380595, "type": "snapshot", "data": {"symbol": "BTCUSDT", "lastPrice": -5}}',
        '{"topic": "tickers.BTCUSDT", "ts": 1672305380595, "type": "snapshot", "data": {"symbol": "BTCUSDT", "lastPrice": ""}}',
        '{"topic": "unknown.BTCUSDT", "ts": 1672305380595, "data": {}}',
        '{"topic": "tickers.BTCUSDT", "ts": 1, "data": {"symbol": "BTCUSDT", "lastPrice": "1"}, "pad": "' + "x" * 20_000 + '"}',
    ]
    row = r.hgetall("t:BTCUSDT")
    errors = stats.parse_errors
    sim.exchanges["bybit"].faults.garbage = list(bad)
    wait_for(lambda: stats.parse_errors >= errors + len(bad), 10)
    assert {"bad_json", "bad_value", "bad_type", "unknown_topic", "oversized_frame"} <= stats.errors_by_kind.keys()
    now = r.hgetall("t:BTCUSDT")
    assert float(now["ltp"]) > 0 and now["ltp"] != "1" and now["timestamp"] >= row["timestamp"]
    assert stats.reconnects == 0


def test_refused_connections_back_off_then_recover(feed, sim):
    bysim = sim.exchanges["bybit"]
    bysim.faults.refuse_connections = True
    conn, stats = feed()
    wait_for(lambda: stats.reconnects >= 3, 10)
    bysim.faults.refuse_connections = False
    wait_for(lambda: stats.state == SUBSCRIBED and stats.messages_total > 0, 10)


def test_a_symbol_the_exchange_refuses_is_reported_and_the_rest_keeps_flowing(feed, sim, redis_server):
    sim.exchanges["bybit"].faults.reject_symbols = {"ETHUSDT"}
    conn, stats = feed(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    r = redis_server.client()
    wait_for(lambda: r.hget("t:BTCUSDT", "best_bid") and r.hget("t:SOLUSDT", "ltp"))
    wait_for(lambda: {"tickers.ETHUSDT", "orderbook.1.ETHUSDT"} <= stats.rejected.keys())
    assert "handler not found" in stats.rejected["tickers.ETHUSDT"]
    assert not r.exists("t:ETHUSDT")
    # A reconnect does not ask for the refused symbol again.
    sim.drop("bybit")
    before = stats.messages_total
    wait_for(lambda: stats.reconnects == 1 and stats.messages_total > before + 3)
    assert not r.exists("t:ETHUSDT")


def test_server_pings_are_answered(feed, sim):
    # aiohttp's heartbeat: an RFC 6455 ping every 0.2 s, and the server drops a client whose pong is late.
    sim.exchanges["bybit"].faults.ws_heartbeat = 0.2
    conn, stats = feed()
    wait_for(lambda: stats.state == SUBSCRIBED)
    before = stats.messages_total
    time.sleep(2.0)  # ~10 pings
    assert stats.reconnects == 0 and stats.messages_total > before
