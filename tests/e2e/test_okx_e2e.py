"""OKX feeds end to end: real supervisord, real Redis, the OKX simulator (REST instruments + public WebSocket),
over ws:// and wss://, with a drop, a refused subscription, bad frames, the 64008 notice and the idle close."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest

from tests.harness import Supervisor, sim_config, wait_for
from tests.sim import Simulator

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SPOT = {"ltp", "best_bid", "bid_size", "best_ask", "ask_size", "volume_24h", "turnover_24h", "high_24h", "low_24h",
        "prev_price_24h", "price_change_percent", "timestamp", "recv_ts", "original_symbol"}
SWAP = SPOT | {"mark_price", "index_price", "funding_rate", "funding_interval_hours", "next_funding_time", "open_interest",
               "open_interest_value"}


def _status(r, sid: str) -> dict:
    return r.hgetall(f"service:status:{sid}")


def _full(r, key: str, fields: set[str], timeout: float = 20) -> dict:
    return wait_for(lambda: (h := r.hgetall(key)) and fields <= h.keys() and h, timeout)


def _advances(r, key: str, timeout: float = 20) -> None:
    recv = int(r.hget(key, "recv_ts"))
    wait_for(lambda: int(r.hget(key, "recv_ts")) > recv, timeout)


def _near(a: float, b: float, rel: float = 0.02) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def test_spot_fills_the_contract_unlisted_symbols_are_refused_and_a_drop_resubscribes(redis_server, sim, make_supervisor):
    okx = sim.exchanges["okx"]
    sv = make_supervisor(overrides={"okx_spot": {"symbols": ["BTC-USDT", "NOPE-USDT", "ETH-USDT"]}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "okx_spot")
    btc = _full(r, "okx_spot:BTC-USDT", SPOT)
    assert btc["original_symbol"] == "BTC-USDT" and ISO_MS.match(btc["timestamp"])
    assert float(btc["best_bid"]) < float(btc["best_ask"])
    # volume_24h is base, turnover_24h quote: their ratio is a price
    assert 0.9 * float(btc["ltp"]) < float(btc["turnover_24h"]) / float(btc["volume_24h"]) < 1.1 * float(btc["ltp"])
    _full(r, "okx_spot:ETH-USDT", {"ltp"})
    rejected = wait_for(lambda: json.loads(_status(r, "okx_spot").get("rejected") or "{}"), 20)
    assert "NOPE-USDT" in rejected and "not a live OKX SPOT instrument" in rejected["NOPE-USDT"]
    assert not r.exists("okx_spot:NOPE-USDT")
    assert _status(r, "okx_spot")["parse_errors"] == "0"

    connects = okx.connects
    sim.drop("okx")
    wait_for(lambda: okx.connects > connects, 20)
    for key in ("okx_spot:BTC-USDT", "okx_spot:ETH-USDT"):
        _advances(r, key)


def test_swap_fills_the_contract_in_base_coin_with_funding_from_the_docs_fields(redis_server, sim, make_supervisor):
    symbols = ["BTC-USDT-SWAP", "BTC-USD-SWAP", "SOL-USDT-SWAP", "DOGE-USDT-SWAP"]  # DOGE: listed, suspended
    sv = make_supervisor(overrides={"okx_swap": {"symbols": symbols}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "okx_swap")
    for sym in ("BTC-USDT-SWAP", "BTC-USD-SWAP", "SOL-USDT-SWAP"):
        h = _full(r, f"okx_swap:{sym}", SWAP)
        assert h["original_symbol"] == sym and ISO_MS.match(h["timestamp"])
        ltp, vol = float(h["ltp"]), float(h["volume_24h"])
        # Base coin, not contracts: turnover (quote) / volume (base) is a price, on linear and inverse swaps alike.
        assert _near(float(h["turnover_24h"]) / vol, ltp, 0.05), h
        assert _near(float(h["open_interest_value"]) / float(h["open_interest"]), ltp, 0.05), h
        assert _near(float(h["index_price"]), ltp, 0.05) and _near(float(h["mark_price"]), ltp, 0.05)
        nft = dt.datetime.fromisoformat(h["next_funding_time"].replace("Z", "+00:00"))
        hours = float(h["funding_interval_hours"])
        assert hours == (4 if sym == "SOL-USDT-SWAP" else 8), h
        assert dt.timedelta(0) < nft - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=hours)
        assert h["funding_rate"] == "0.0001"
    rejected = wait_for(lambda: json.loads(_status(r, "okx_swap").get("rejected") or "{}"), 20)
    assert "DOGE-USDT-SWAP" in rejected and not r.exists("okx_swap:DOGE-USDT-SWAP")


def test_a_refused_subscription_is_reported_and_the_rest_keeps_flowing(redis_server, sim, make_supervisor):
    okx = sim.exchanges["okx"]
    okx.faults.reject_symbols = {"ETH-USDT-SWAP"}  # listed over REST, refused on the socket with 60018
    sv = make_supervisor(overrides={"okx_swap": {"symbols": ["BTC-USDT-SWAP", "ETH-USDT-SWAP"], "discovery_interval": 0.5}})
    r = redis_server.client()
    sv.ctl("start", "okx_swap")
    rejected = wait_for(lambda: json.loads(_status(r, "okx_swap").get("rejected") or "{}").get("ETH-USDT-SWAP"), 20)
    assert "60018" in rejected and "doesn't exist" in rejected
    # Later discoveries (REST still lists it) neither clear the refusal from the status nor subscribe it again.
    rounds = okx.rest_requests
    wait_for(lambda: okx.rest_requests >= rounds + 4, 10)
    assert json.loads(_status(r, "okx_swap")["rejected"]).get("ETH-USDT-SWAP") == rejected
    assert okx.requests <= 2  # the first subscribe and at most one rebuilt connection's
    _full(r, "okx_swap:BTC-USDT-SWAP", {"ltp", "mark_price", "index_price"})
    _advances(r, "okx_swap:BTC-USDT-SWAP")
    assert not r.exists("okx_swap:ETH-USDT-SWAP")
    assert _status(r, "okx_swap")["reconnects"] == "0"  # a refusal keeps the connection

    # Bad frames: counted, nothing written, the connection kept.
    okx.faults.garbage = ["{not json", '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"px":"-5","ts":"1"}]}']
    wait_for(lambda: int(_status(r, "okx_swap")["parse_errors"]) >= 2, 10)
    _advances(r, "okx_swap:BTC-USDT-SWAP")
    assert float(r.hget("okx_swap:BTC-USDT-SWAP", "ltp")) > 0
    assert _status(r, "okx_swap")["reconnects"] == "0"


def test_the_upgrade_notice_reconnects_before_the_server_closes(redis_server, sim, make_supervisor):
    okx = sim.exchanges["okx"]
    okx.notice_close_s = 30.0  # the server would close 30 s after its notice; the feed must not wait for that
    sv = make_supervisor(overrides={"okx_spot": {"symbols": ["BTC-USDT"]}})
    r = redis_server.client()
    sv.ctl("start", "okx_spot")
    _full(r, "okx_spot:BTC-USDT", {"ltp"})
    connects = okx.connects
    assert sim.call(okx.notice) == 1
    t0 = time.monotonic()
    wait_for(lambda: okx.connects > connects and okx.stats()["connections"] == 1, 10)
    assert time.monotonic() - t0 < 5
    _advances(r, "okx_spot:BTC-USDT", 5)
    # A planned reconnect: no error, no `disconnected` mark, and the log says why.
    wait_for(lambda: _status(r, "okx_spot")["reconnects"] == "1", 5)  # the status hash is refreshed every second
    status = _status(r, "okx_spot")
    assert status["last_error"] == "" and status["state"] == "subscribed", status
    assert "stale" not in r.hgetall("okx_spot:BTC-USDT")
    assert "planned reconnect: notice 64008" in sv.log("okx_spot")


def test_text_pings_keep_a_quiet_connection_past_the_servers_idle_close(redis_server, sim, make_supervisor):
    okx = sim.exchanges["okx"]
    okx.idle_close_s = 2.0  # the real server: 30 s without data
    sv = make_supervisor(overrides={"okx_spot": {"symbols": ["BTC-USDT"], "ping_interval": 1}})
    r = redis_server.client()
    sv.ctl("start", "okx_spot")
    _full(r, "okx_spot:BTC-USDT", {"ltp"})
    okx.faults.no_data = True  # nothing but pongs from here on
    time.sleep(3 * okx.idle_close_s)
    assert okx.idle_closes == 0 and _status(r, "okx_spot")["reconnects"] == "0"
    okx.faults.no_data = False
    _advances(r, "okx_spot:BTC-USDT", 10)


@pytest.fixture
def tls_sim(tls_certs):
    sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    yield sim
    sim.stop()


def test_swap_over_wss_and_https_with_a_drop(redis_server, tls_sim, tls_certs):
    okx = tls_sim.exchanges["okx"]
    okx.faults.rest_errors = [429, "50011"]  # the first discoveries are throttled (HTTP 429, then code 50011 on 200)
    sv = Supervisor(sim_config(redis_server.url, tls_sim.port, tls=True, overrides={"okx_swap": {"symbols": ["BTC-USDT-SWAP"]}}),
                    redis_server.url, tls_certs.trust_env("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")).start()
    try:
        r = redis_server.client()
        sv.ctl("start", "okx_swap")
        _full(r, "okx_swap:BTC-USDT-SWAP", SWAP, 30)
        assert okx.rest_requests >= 3 and not okx.faults.rest_errors
        errors = json.loads(_status(r, "okx_swap")["errors_by_kind"])
        assert errors.get("rest_error", 0) >= 2, errors
        connects = okx.connects
        tls_sim.drop("okx")
        wait_for(lambda: okx.connects > connects, 20)
        _advances(r, "okx_swap:BTC-USDT-SWAP")
    finally:
        sv.stop()
