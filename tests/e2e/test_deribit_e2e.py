"""Deribit feeds end to end: real supervisord, real Redis, the Deribit simulator (JSON-RPC, heartbeat
test_request, subscribe results that leave refused channels out), over ws:// and wss://."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from tests.harness import Supervisor, sim_config, wait_for
from tests.sim import Simulator

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FUTURES = {"ltp", "mark_price", "index_price", "funding_rate", "funding_interval_hours", "open_interest_value",
           "best_bid", "best_ask", "bid_size", "ask_size", "volume_24h", "turnover_24h", "high_24h", "low_24h",
           "price_change_percent", "timestamp", "recv_ts", "original_symbol"}
OPTIONS = {"mark_price", "mark_price_usd", "best_bid", "best_ask", "best_bid_usd", "best_ask_usd", "bid_size", "ask_size",
           "option_type", "underlying", "strike_price", "expiry_date", "expiry", "settle_coin", "delta", "gamma", "vega",
           "theta", "rho", "implied_volatility", "bid_iv", "ask_iv", "underlying_price", "index_price", "open_interest",
           "timestamp", "recv_ts", "original_symbol"}
FAST = {"discovery_interval": 0.5}
CHAIN = {"underlyings": ["BTC"], "expiries": 1, "strike_range_pct": 3}  # 1000-wide strikes within ±3 % of ~65000


def _status(r, sid: str) -> dict:
    return r.hgetall(f"service:status:{sid}")


def test_both_feeds_fill_the_contract(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"deribit_futures": {**FAST, "symbols": ["BTC-PERPETUAL", "NOSUCH-PERPETUAL"]},
                                    "deribit_options": {**FAST, "selection": CHAIN}})
    r = redis_server.client()
    for sid in ("deribit_futures", "deribit_options"):
        assert "started" in sv.ctl("start", sid)

    fut = wait_for(lambda: (h := r.hgetall("deribit_futures:BTC-PERPETUAL")) and FUTURES <= h.keys() and h, 20)
    assert fut["original_symbol"] == "BTC-PERPETUAL" and ISO_MS.match(fut["timestamp"])
    assert fut["funding_rate"] == "0.0000211" and fut["funding_interval_hours"] == "8"
    assert "next_funding_time" not in fut and "open_interest" not in fut  # perpetual OI is USD: open_interest_value
    assert float(fut["best_bid"]) < float(fut["best_ask"]) and 50_000 < float(fut["index_price"]) < 80_000
    rejected = wait_for(lambda: json.loads(_status(r, "deribit_futures").get("rejected") or "{}"), 10)
    assert "NOSUCH-PERPETUAL" in rejected

    n = wait_for(lambda: (k := r.scard("ltp:symbols:deribit_options")) >= 8 and k, 20)
    keys = sorted(r.smembers("ltp:symbols:deribit_options"))
    assert len(keys) == n and len({k.split("-")[1] for k in keys}) == 1  # one expiry
    key = keys[0]
    opt = wait_for(lambda: (h := r.hgetall(f"deribit_options:{key}")) and OPTIONS <= h.keys() and h, 10)
    coin, code, strike, kind = key.split("-")
    assert opt["option_type"] == {"C": "CALL", "P": "PUT"}[kind] and opt["underlying"] == coin == "BTC"
    assert opt["strike_price"] == strike and opt["settle_coin"] == "BTC"
    assert opt["expiry"] == dt.datetime.strptime(code, "%d%b%y").date().isoformat()
    assert 0.05 < float(opt["implied_volatility"]) < 3  # a fraction, not percent
    assert float(opt["mark_price"]) < 1  # in BTC
    usd = float(opt["mark_price"]) * float(opt["index_price"])
    assert abs(float(opt["mark_price_usd"]) - usd) <= 0.0001 + usd * 1e-12
    # Options trade now and then: ltp only from a trade.
    wait_for(lambda: any(r.hget(f"deribit_options:{k}", "ltp") for k in keys), 10)
    for sid in ("deribit_futures", "deribit_options"):
        # The status hash is published once a second: data can reach Redis before the state it reports.
        st = wait_for(lambda s=sid: (x := _status(r, s)) and x.get("state") == "subscribed" and x, 5)
        assert st["state"] == "subscribed" and st["parse_errors"] == "0", st


def test_refused_subscription_disconnect_and_heartbeat(redis_server, sim, make_supervisor):
    dsim = sim.exchanges["deribit"]
    dsim.faults.reject_symbols = {"ETH-PERPETUAL"}
    dsim.heartbeat_interval_s = 0.3  # test_request every 0.3 s, unanswered for 0.3 s -> closed
    sv = make_supervisor(overrides={"deribit_futures": {**FAST, "symbols": ["BTC-PERPETUAL", "ETH-PERPETUAL"]}})
    r = redis_server.client()
    sv.ctl("start", "deribit_futures")

    wait_for(lambda: r.hget("deribit_futures:BTC-PERPETUAL", "ltp"), 20)
    # Listed over REST, refused on the socket: left out of the subscribe result, reported with the reason.
    rejected = wait_for(lambda: json.loads(_status(r, "deribit_futures").get("rejected") or "{}"), 10)
    assert set(rejected) == {"ticker.ETH-PERPETUAL.100ms", "trades.ETH-PERPETUAL.100ms"}
    assert "left out of public/subscribe's result" in rejected["ticker.ETH-PERPETUAL.100ms"]
    assert not r.exists("deribit_futures:ETH-PERPETUAL")

    # Heartbeats answered: many test_requests, never a close, one connection.
    wait_for(lambda: dsim.tests_answered >= 5, 10)
    assert dsim.heartbeat_closes == 0 and dsim.connects == 1 and "public/set_heartbeat" in dsim.requests

    before = r.hget("deribit_futures:BTC-PERPETUAL", "recv_ts")
    sim.drop("deribit")
    wait_for(lambda: int(_status(r, "deribit_futures").get("reconnects") or 0) >= 1, 10)
    wait_for(lambda: dsim.connects >= 2 and r.hget("deribit_futures:BTC-PERPETUAL", "recv_ts") != before, 15)
    assert dsim.heartbeat_closes == 0 and dsim.too_many_requests == 0
    st = wait_for(lambda: (s := _status(r, "deribit_futures")) and s["state"] == "subscribed" and s, 5)  # refreshed each second
    assert st["parse_errors"] == "0", st


@pytest.fixture
def tls_sim(tls_certs):
    sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    yield sim
    sim.stop()


def test_over_tls(redis_server, tls_sim, tls_certs):
    sv = Supervisor(sim_config(redis_server.url, tls_sim.port, tls=True, overrides={
        "deribit_options": {**FAST, "selection": CHAIN}}), redis_server.url,
        tls_certs.trust_env("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")).start()
    try:
        r = redis_server.client()
        assert "started" in sv.ctl("start", "deribit_options")
        wait_for(lambda: r.scard("ltp:symbols:deribit_options") >= 8, 20)
        key = sorted(r.smembers("ltp:symbols:deribit_options"))[0]
        wait_for(lambda: r.hget(f"deribit_options:{key}", "mark_price_usd"), 10)
        st = _status(r, "deribit_options")
        assert st["last_error"] == "" and st["reconnects"] == "0", st
        assert tls_sim.exchanges["deribit"].rest_requests >= 2
    finally:
        sv.stop()
