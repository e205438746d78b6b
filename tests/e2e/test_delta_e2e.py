"""Delta feeds end to end: real supervisord, real Redis, the Delta simulator (public-socket channels)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FUTURES = {"ltp", "mark_price", "index_price", "funding_rate", "open_interest", "volume_24h", "turnover_24h",
           "best_bid", "best_ask", "high_24h", "low_24h", "timestamp", "recv_ts", "original_symbol"}
OPTIONS = {"ltp", "mark_price", "option_type", "underlying", "strike_price", "expiry_date", "expiry", "delta", "gamma",
           "vega", "theta", "rho", "implied_volatility", "bid_iv", "ask_iv", "best_bid", "best_ask", "open_interest",
           "index_price", "timestamp", "recv_ts"}
FAST = {"discovery_interval": 0.5}


def _status(r, sid: str) -> dict:
    return r.hgetall(f"service:status:{sid}")


def test_three_feeds_fill_the_contract_and_report_unknown_symbols(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={
        "delta_futures_ltp": {**FAST, "symbols": ["BTCUSD", "NOSUCHUSD", "ETHUSD"]},
        "delta_spot": {**FAST, "symbols": ["BTCUSD", "ETHUSD", "BTC_USDT"]},
        "delta_options": {**FAST, "symbols": ["C-BTC-108200-211025"],
                          "selection": {"underlyings": ["BTC"], "expiries": 2, "strike_range_pct": 5}},
    })
    r = redis_server.client()
    for sid in ("delta_futures_ltp", "delta_spot", "delta_options"):
        assert "started" in sv.ctl("start", sid)

    fut = wait_for(lambda: (h := r.hgetall("delta_futures:BTCUSD")) and FUTURES <= h.keys() and h, 20)
    assert fut["original_symbol"] == "BTCUSD" and ISO_MS.match(fut["timestamp"])
    assert float(fut["best_bid"]) < float(fut["best_ask"]) and float(fut["funding_rate"]) == 0.0001
    wait_for(lambda: r.hget("delta_futures:ETHUSD", "ltp"), 10)
    rejected = wait_for(lambda: json.loads(_status(r, "delta_futures_ltp").get("rejected") or "{}"), 10)
    assert "NOSUCHUSD" in rejected and not r.exists("delta_futures:NOSUCHUSD")
    assert _status(r, "delta_futures_ltp")["state"] == "subscribed"

    idx = wait_for(lambda: (h := r.hgetall("delta_spot:BTCUSD")) and "index_price" in h and h, 10)
    assert idx["source"] == "index" and idx["original_symbol"] == ".DEXBTUSD" and 60000 < float(idx["index_price"]) < 70000
    assert "ltp" not in idx  # an index is not a trade
    spot = wait_for(lambda: (h := r.hgetall("delta_spot:BTC_USDT")) and "ltp" in h and h, 10)
    assert spot["source"] == "spot"

    # 7 strikes (62000..68000 within ±5% of ~65000) x call/put x 2 expiries; the expired seed symbol is only reported.
    wait_for(lambda: r.scard("ltp:symbols:delta_options") == 28, 20)
    key = sorted(r.smembers("ltp:symbols:delta_options"))[0]
    opt = wait_for(lambda: (h := r.hgetall(f"delta_options:{key}")) and OPTIONS <= h.keys() and h, 10)
    kind, und, strike, ddmmyy = key.split("-")
    assert opt["option_type"] == {"C": "CALL", "P": "PUT"}[kind] and opt["underlying"] == und == "BTC"
    assert opt["strike_price"] == strike and opt["expiry_date"] == ddmmyy
    assert opt["expiry"] == dt.datetime.strptime(ddmmyy, "%d%m%y").date().isoformat()
    # The status hash is published once a second: the keys can be there before the refusal is published.
    status = wait_for(lambda: (st := _status(r, "delta_options")) and "C-BTC-108200-211025" in json.loads(st.get("rejected") or "{}")
                      and st, 5)
    assert "C-BTC-108200-211025" in json.loads(status["rejected"]) and status["state"] == "subscribed"


def test_option_roll_over_follows_without_restart(redis_server, sim, make_supervisor):
    delta = sim.exchanges["delta"]
    sv = make_supervisor(overrides={"delta_options": {
        **FAST, "selection": {"underlyings": ["BTC", "ETH"], "expiries": 2, "strike_range_pct": 5}}})
    r = redis_server.client()
    sv.ctl("start", "delta_options")
    pid = wait_for(lambda: sv.info("delta_options")["pid"], 10)

    def expiries() -> set[str]:
        return {s.rsplit("-", 1)[1] for s in r.smembers("ltp:symbols:delta_options")}

    first = [dt.date.fromisoformat(d).strftime("%d%m%y") for d in delta.live_expiries("BTC")]
    wait_for(lambda: expiries() == set(first[:2]) and r.hget(f"delta_options:C-BTC-65000-{first[0]}", "ltp"), 20)

    gone, _new = sim.call(delta.roll, "BTC")
    assert dt.date.fromisoformat(gone).strftime("%d%m%y") == first[0]
    # The nearest expiry leaves Redis; the next one (BTC's third, ETH's still the first two) comes in.
    wait_for(lambda: first[0] not in {s.rsplit("-", 1)[1] for s in r.smembers("ltp:symbols:delta_options") if "-BTC-" in s}, 15)
    assert not r.exists(f"delta_options:C-BTC-65000-{first[0]}")
    wait_for(lambda: r.hget(f"delta_options:C-BTC-65000-{first[2]}", "ltp"), 15)
    assert r.hget(f"delta_options:C-ETH-3200-{first[0]}", "ltp")
    assert sv.info("delta_options")["pid"] == pid  # no restart
    assert "instrument set" in sv.log("delta_options")


def test_ltp_comes_from_trades_only_and_product_updates_are_ignored(redis_server, sim, make_supervisor):
    dsim = sim.exchanges["delta"]
    sv = make_supervisor(overrides={"delta_futures_ltp": {**FAST, "symbols": ["BTCUSD"]},
                                    "delta_spot": {**FAST, "symbols": ["BTC_USDT"]}})
    r = redis_server.client()
    for sid in ("delta_futures_ltp", "delta_spot"):
        sv.ctl("start", sid)
    for key in ("delta_futures:BTCUSD", "delta_spot:BTC_USDT"):
        wait_for(lambda key=key: r.hget(key, "ltp") and r.hget(key, "mark_price"), 20)
    try:
        dsim.trades_paused = True  # tickers go on (new ohlc close, new mark), trades stop
        time.sleep(0.5)
        held = {k: r.hget(k, "ltp") for k in ("delta_futures:BTCUSD", "delta_spot:BTC_USDT")}
        marks = {k: r.hget(k, "mark_price") for k in held}
        wait_for(lambda: all(r.hget(k, "mark_price") != v for k, v in marks.items()), 10)
        assert {k: r.hget(k, "ltp") for k in held} == held  # a ticker's close is no trade
    finally:
        dsim.trades_paused = False
    wait_for(lambda: all(r.hget(k, "ltp") != v for k, v in held.items()), 10)

    errors_before = {sid: int(_status(r, sid).get("parse_errors") or 0) for sid in ("delta_futures_ltp", "delta_spot")}
    for event in ("market_disruption", "start_auction", "finish_auction"):
        assert sim.call(dsim.product_update, event, "BTCUSD") >= 2  # sent to every client, unasked
    time.sleep(2.5)  # the status hash is refreshed every second
    for sid, before in errors_before.items():
        st = _status(r, sid)
        assert int(st.get("parse_errors") or 0) == before and "unknown_frame" not in st.get("errors_by_kind", ""), st
