"""bybit_futures_orderbook, bybit_options and bybit_spot_testnet_spot under supervisord vs the simulator."""

from __future__ import annotations

import json
import time

import pytest

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

FUTURES = {"ltp", "mark_price", "index_price", "funding_rate", "next_funding_time", "open_interest", "best_bid",
           "best_ask", "bid_size", "ask_size", "spread", "bids", "asks", "update_id", "timestamp", "recv_ts",
           "original_symbol"}
OPTIONS = {"ltp", "mark_price", "best_bid", "best_ask", "option_type", "underlying", "strike_price", "expiry_date", "delta",
           "gamma", "vega", "theta", "implied_volatility", "bid_iv", "ask_iv", "underlying_price", "open_interest",
           "timestamp", "recv_ts"}


def test_futures_book_and_merged_tickers_fill_the_contract_and_follow_id_jumps_and_restarts(redis_server, sim, make_supervisor):
    # One symbol: the simulator's restart switch takes the next book frame of any symbol (with several,
    # it could land on another one's book and BTCUSDT's ids would never go back).
    sv = make_supervisor(overrides={"bybit_futures_orderbook": {"levels": 5, "symbols": ["BTCUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_futures_orderbook")
    row = wait_for(lambda: (h := r.hgetall("bybit_futures:BTCUSDT")) and FUTURES <= h.keys() and h, 15)
    bids, asks = json.loads(row["bids"]), json.loads(row["asks"])
    assert len(bids) == len(asks) == 5
    assert float(row["best_bid"]) < float(row["best_ask"])
    assert [float(p) for p, _ in bids] == sorted((float(p) for p, _ in bids), reverse=True)
    assert row["funding_rate"] == "0.0001" and row["next_funding_time"].endswith(":00:00.000Z")

    # Deltas carry only some fields: mark/index/funding set by the snapshot must stay.
    time.sleep(0.5)
    later = r.hgetall("bybit_futures:BTCUSDT")
    assert later["index_price"] and later["open_interest"] and later["funding_rate"] == "0.0001"

    # Update ids that jump are Bybit's normal stream (u is no gapless sequence): applied, no resync.
    bysim = sim.exchanges["bybit"]
    bysim.faults.gap_next = 3
    u0 = int(r.hget("bybit_futures:BTCUSDT", "update_id"))
    wait_for(lambda: int(r.hget("bybit_futures:BTCUSDT", "update_id")) > u0 + 10, 10)
    # The service-restart frame (u = 1, typed delta) replaces the book; never crossed while it happens.
    bysim.book_restart_next = 1
    wait_for(lambda: int(r.hget("bybit_futures:BTCUSDT", "update_id")) < u0, 10)
    for _ in range(20):
        h = r.hgetall("bybit_futures:BTCUSDT")
        assert float(h["best_bid"]) < float(h["best_ask"])
        time.sleep(0.05)
    first = int(r.hget("bybit_futures:BTCUSDT", "update_id"))
    wait_for(lambda: int(r.hget("bybit_futures:BTCUSDT", "update_id")) > first, 5)
    errors = json.loads(r.hget("service:status:bybit_futures_orderbook", "errors_by_kind") or "{}")
    assert "resync" not in errors and "stale_book_update" not in errors, errors


def test_options_chain_is_discovered_and_rolls_over_without_restart(redis_server, sim, make_supervisor):
    bysim = sim.exchanges["bybit"]
    bysim.page_size = 7  # make discovery walk nextPageCursor
    sv = make_supervisor(overrides={"bybit_options": {
        "discovery_interval": 1, "selection": {"underlyings": ["BTC"], "expiries": 2, "strike_range_pct": 5}}})
    r = redis_server.client()
    sv.ctl("start", "bybit_options")
    expiries = sorted({int(i["deliveryTime"]) for i in bysim.option_chain if i["baseCoin"] == "BTC"})
    spot = bysim.instrument("spot", "BTCUSDT").price
    want = {i["symbol"] for i in bysim.option_chain if i["baseCoin"] == "BTC" and int(i["deliveryTime"]) in expiries[:2]
            and abs(float(i["symbol"].split("-")[2]) - spot) <= spot * 0.05}
    assert want
    wait_for(lambda: r.smembers("ltp:symbols:bybit_options") == want, 20)
    sym = sorted(want)[0]
    row = r.hgetall(f"bybit_options:{sym}")
    assert OPTIONS <= row.keys(), OPTIONS - row.keys()
    assert row["option_type"] == ("CALL" if sym.endswith("-C") else "PUT")
    assert row["underlying"] == "BTC" and row["strike_price"] == sym.split("-")[2]
    assert -1 <= float(row["delta"]) <= 1

    gone = set(bysim.expire_nearest("BTC"))
    assert gone & want
    new = bysim.add_expiry("BTC", 4)
    # The third expiry moves into the nearest two; the expired contracts leave Redis.
    wait_for(lambda: not (r.smembers("ltp:symbols:bybit_options") & gone), 15)
    assert not any(r.exists(f"bybit_options:{s}") for s in gone)
    third = {i["symbol"] for i in bysim.option_chain if int(i["deliveryTime"]) == expiries[2]}
    wait_for(lambda: any(r.hget(f"bybit_options:{s}", "ltp") for s in third), 15)
    assert not any(r.exists(f"bybit_options:{s}") for s in new)  # 4 weeks out: not among the nearest two
    assert sv.info("bybit_options")["statename"] == "RUNNING"


def test_options_explicit_unknown_symbols_are_reported_not_retried(redis_server, sim, make_supervisor):
    bysim = sim.exchanges["bybit"]
    live = sorted(bysim.option_symbols())[0]
    sv = make_supervisor(overrides={"bybit_options": {"discovery_interval": 1, "symbols": [live, "BTC-25OCT21-108200-C"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_options")
    wait_for(lambda: r.hget(f"bybit_options:{live}", "ltp"), 15)
    rejected = wait_for(lambda: json.loads(r.hget("service:status:bybit_options", "rejected") or "{}"), 10)
    assert "BTC-25OCT21-108200-C" in rejected
    sv_log = sv.log("bybit_options")
    assert sv_log.count("BTC-25OCT21-108200-C") == 1  # reported once, not on every refresh


def test_testnet_spot_is_the_spot_feed_with_its_own_prefix(redis_server, sim, make_supervisor):
    sv = make_supervisor()
    r = redis_server.client()
    sv.ctl("start", "bybit_spot_testnet_spot")
    row = wait_for(lambda: (h := r.hgetall("bybit_spot_testnet:BTCUSDT")) and "ltp" in h and h, 15)
    assert row["original_symbol"] == "BTCUSDT"
    assert not r.exists("bybit_spot:BTCUSDT")
    assert "127.0.0.1" in sv.log("bybit_spot_testnet_spot")
