"""Hyperliquid feeds end to end: real supervisord, real Redis, the Hyperliquid simulator (/info + WebSocket)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PERP = {"ltp", "mark_price", "index_price", "mid_price", "best_bid", "best_ask", "bid_size", "ask_size", "funding_rate",
        "funding_interval_hours", "next_funding_time", "open_interest", "volume_24h", "turnover_24h", "prev_price_24h",
        "price_change_percent", "timestamp", "recv_ts", "original_symbol"}
SPOT = {"ltp", "mark_price", "best_bid", "best_ask", "turnover_24h", "prev_price_24h", "price_change_percent",
        "circulating_supply", "timestamp", "recv_ts", "original_symbol"}


def _status(r, sid: str) -> dict:
    return r.hgetall(f"service:status:{sid}")


def test_perpetual_fills_the_contract_and_unknown_names_do_not_take_the_others_down(redis_server, sim, make_supervisor):
    hl = sim.exchanges["hyperliquid"]
    sv = make_supervisor(overrides={"hyperliquid_perpetual": {"symbols": ["BTC", "NOPE", "MATIC", "ETH"]}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "hyperliquid_perpetual")
    btc = wait_for(lambda: (h := r.hgetall("hyperliquid_perp:BTC")) and PERP <= h.keys() and h, 20)
    assert btc["original_symbol"] == "BTC" and btc["funding_interval_hours"] == "1" and ISO_MS.match(btc["timestamp"])
    nft = dt.datetime.fromisoformat(btc["next_funding_time"].replace("Z", "+00:00"))
    assert nft.minute == nft.second == 0 and dt.timedelta(0) < nft - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    wait_for(lambda: r.hget("hyperliquid_perp:ETH", "ltp"), 20)
    rejected = wait_for(lambda: (j := json.loads(_status(r, "hyperliquid_perpetual").get("rejected") or "{}"))
                        and {"NOPE", "MATIC"} <= j.keys() and j, 20)
    assert "delisted" in rejected["MATIC"]
    assert not hl.kills.get("unknown_coin")  # never subscribed a name the exchange does not list
    assert not r.exists("hyperliquid_perp:NOPE") and not r.exists("hyperliquid_perp:MATIC")

    # A drop resubscribes everything.
    connects = hl.connects
    sim.drop("hyperliquid")
    wait_for(lambda: hl.connects > connects, 20)
    for coin in ("BTC", "ETH"):
        recv = int(r.hget(f"hyperliquid_perp:{coin}", "recv_ts"))
        wait_for(lambda coin=coin, recv=recv: int(r.hget(f"hyperliquid_perp:{coin}", "recv_ts")) > recv, 20)


def test_spot_names_resolve_to_exchange_ids(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"hyperliquid_spot": {"symbols": ["HYPE/USDC", "PURR/USDC", "NOPE/USDC"]}})
    r = redis_server.client()
    sv.ctl("start", "hyperliquid_spot")
    hype = wait_for(lambda: (h := r.hgetall("hyperliquid_spot:HYPE/USDC")) and SPOT <= h.keys() and h, 20)
    assert hype["original_symbol"] == "@107"
    purr = wait_for(lambda: (h := r.hgetall("hyperliquid_spot:PURR/USDC")) and "ltp" in h and h, 20)
    assert purr["original_symbol"] == "PURR/USDC"
    rejected = wait_for(lambda: json.loads(_status(r, "hyperliquid_spot").get("rejected") or "{}"), 20)
    assert "NOPE/USDC" in rejected


def test_heartbeat_keeps_an_idle_connection_open_past_the_idle_window(redis_server, sim, make_supervisor):
    hl = sim.exchanges["hyperliquid"]
    hl.idle_close_s = 2.5  # the real server: 60 s without a client message
    sv = make_supervisor(overrides={"hyperliquid_perpetual": {"symbols": ["BTC"], "ping_interval": 1}})
    r = redis_server.client()
    sv.ctl("start", "hyperliquid_perpetual")
    wait_for(lambda: r.hget("hyperliquid_perp:BTC", "mark_price"), 20)
    connects = hl.connects
    time.sleep(3 * hl.idle_close_s)
    assert hl.connects == connects and not hl.kills.get("idle")
    assert int(_status(r, "hyperliquid_perpetual")["reconnects"]) == 0
