"""CoinDCX feeds end to end: real supervisord, real Redis, the CoinDCX simulator (REST + socket.io)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FUTURES = {"ltp", "mark_price", "current_funding_rate", "estimated_funding_rate", "funding_rate", "funding_timestamp",
           "funding_interval_hours", "volume_24h", "high_24h", "low_24h", "price_change_percent", "timestamp", "recv_ts",
           "original_symbol"}
SPOT = {"ltp", "best_bid", "best_ask", "turnover_24h", "high_24h", "low_24h", "price_change_percent", "timestamp", "recv_ts",
        "original_symbol"}


def _status(r, sid: str) -> dict:
    return r.hgetall(f"service:status:{sid}")


def test_futures_rest_fills_the_promised_schema_and_reports_unknown_instruments(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"coindcx_futures_rest": {
        "poll_interval": 0.5, "symbols": ["B-BTC_USDT", "B-SOL_USDT", "B-NOPE_USDT", "B-LUNA_USDT"]}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "coindcx_futures_rest")
    btc = wait_for(lambda: (h := r.hgetall("coindcx_futures:B-BTC_USDT")) and FUTURES <= h.keys() and h, 20)
    assert btc["original_symbol"] == "B-BTC_USDT" and ISO_MS.match(btc["timestamp"]) and ISO_MS.match(btc["funding_timestamp"])
    assert btc["funding_rate"] == btc["estimated_funding_rate"] and btc["funding_interval_hours"] == "8"
    assert abs(float(btc["current_funding_rate"])) < 0.01  # a fraction, as promised (x100 = percent)
    assert "e" not in btc["current_funding_rate"].lower()  # no exponent notation
    sol = wait_for(lambda: r.hgetall("coindcx_futures:B-SOL_USDT").get("funding_interval_hours"), 20)
    assert sol == "4"
    rejected = wait_for(lambda: json.loads(_status(r, "coindcx_futures_rest").get("rejected") or "{}"), 20)
    assert {"B-NOPE_USDT", "B-LUNA_USDT"} <= rejected.keys()  # unknown, and inactive (frozen in the RT reply)
    assert not r.exists("coindcx_futures:B-LUNA_USDT") and not r.exists("coindcx_futures:B-NOPE_USDT")
    assert sv.log("coindcx_futures_rest").count("B-NOPE_USDT") == 1  # reported once


def test_futures_rest_backs_off_on_429_and_500_then_recovers(redis_server, sim, make_supervisor):
    dcx = sim.exchanges["coindcx"]
    sv = make_supervisor(overrides={"coindcx_futures_rest": {"poll_interval": 0.5, "symbols": ["B-BTC_USDT"]}})
    r = redis_server.client()
    sv.ctl("start", "coindcx_futures_rest")
    wait_for(lambda: r.hget("coindcx_futures:B-BTC_USDT", "ltp"), 20)
    before = dcx.rest_requests
    dcx.faults.rest_errors = [429, 500, "garbage", 500]
    wait_for(lambda: not dcx.faults.rest_errors, 20)
    start = time.monotonic()
    recv = int(r.hget("coindcx_futures:B-BTC_USDT", "recv_ts"))
    wait_for(lambda: int(r.hget("coindcx_futures:B-BTC_USDT", "recv_ts")) > recv, 20)
    assert time.monotonic() - start < 10  # fresh data within 10 s of the exchange answering normally
    errors = json.loads(_status(r, "coindcx_futures_rest")["errors_by_kind"])
    assert errors.get("rest_error", 0) >= 4
    assert dcx.rest_requests - before < 40  # backed off, no hammering


def test_spot_trades_over_socketio_survive_pings_drops_and_report_unknown_pairs(redis_server, sim, make_supervisor):
    dcx = sim.exchanges["coindcx"]
    dcx.faults.ping_interval_s, dcx.faults.ping_timeout_s = 0.5, 0.5
    sv = make_supervisor(overrides={"coindcx_spot": {"poll_interval": 1, "symbols": ["B-BTC_USDT", "I-BTC_INR", "B-NOPE_USDT"]}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "coindcx_spot")
    row = wait_for(lambda: (h := r.hgetall("coindcx_spot:B-BTC_USDT")) and SPOT <= h.keys() and h, 20)
    assert float(row["best_bid"]) < float(row["best_ask"]) and row["original_symbol"] == "B-BTC_USDT"
    wait_for(lambda: r.hget("coindcx_spot:I-BTC_INR", "ltp"), 20)
    rejected = wait_for(lambda: json.loads(_status(r, "coindcx_spot").get("rejected") or "{}"), 20)
    assert "B-NOPE_USDT" in rejected

    # The server pings every 0.5 s and drops a client that does not answer within 0.5 s: the feed answers.
    connects, pongs = dcx.connects, dcx.pongs
    time.sleep(2.5)  # 5 ping intervals
    assert dcx.connects == connects and dcx.ping_timeouts == 0 and dcx.pongs >= pongs + 3

    joins = dcx.joins
    sim.drop("coindcx")
    wait_for(lambda: dcx.joins >= joins + 2, 20)  # both pairs joined again
    recv = int(r.hget("coindcx_spot:B-BTC_USDT", "recv_ts"))
    wait_for(lambda: int(r.hget("coindcx_spot:B-BTC_USDT", "recv_ts")) > recv, 20)
    # The status hash is refreshed every second: the reconnected state shows within a few.
    wait_for(lambda: _status(r, "coindcx_spot")["state"] == "subscribed", 10)
