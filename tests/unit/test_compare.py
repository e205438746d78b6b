"""The comparison's rules without Redis: underlying mapping, funding normalisation, INR conversion, basis, highlights."""

from __future__ import annotations

import math

import pytest
import yaml

from controlpanel.compare import (
    CompareError,
    CompareSettings,
    Listed,
    build_row,
    build_underlying,
    convert_inr,
    funding,
    funding_interval,
    fx_status,
    normalise_funding,
    parse_usdtinr,
)
from controlpanel.markets import Market, classify, feed_kind
from tests.harness import ROOT
from workers.registry import feeds
from workers.runtime.config import parse_config

FEEDS = feeds()

CONFIG = parse_config(yaml.safe_load((ROOT / "exchanges.yaml").read_text()))
NOW = 1_800_000_000.0


# -- underlying mapping ---------------------------------------------------------------------------

@pytest.mark.parametrize("feed, symbol, expected", [
    # bybit
    ("bybit_spot", "BTCUSDT", Market("BTC", "USDT", "spot")),
    ("bybit_spot", "ETHUSDC", Market("ETH", "USDC", "spot")),
    ("bybit_spot", "ETHBTC", Market("ETH", "BTC", "spot")),
    ("bybit_spot_testnet_spot", "SOLUSDT", Market("SOL", "USDT", "spot")),
    ("bybit_futures_orderbook", "BTCUSDT", Market("BTC", "USDT", "perpetual")),
    ("bybit_futures_orderbook", "BTCPERP", Market("BTC", "USDC", "perpetual")),
    ("bybit_futures_orderbook", "1000PEPEUSDT", Market("PEPE", "USDT", "perpetual", None, 1000)),
    ("bybit_futures_orderbook", "BTCUSDT-26DEC25", Market("BTC", "USDT", "future", "2025-12-26")),
    ("bybit_futures_orderbook", "ETH-3JAN26", Market("ETH", "USDC", "future", "2026-01-03")),
    ("bybit_futures_orderbook", "BTC-26DEC25-100000-C", None),   # an option name
    ("bybit_futures_orderbook", "BTC-31FEB25", None),            # no such day
    ("bybit_spot", "USDT", None),                                # nothing before the quote
    # delta
    ("delta_futures_ltp", "BTCUSD", Market("BTC", "USD", "perpetual")),
    ("delta_futures_ltp", "ETHUSDT", Market("ETH", "USDT", "perpetual")),
    ("delta_futures_ltp", "BTCUSD_27Jun25", Market("BTC", "USD", "future", "2025-06-27")),
    ("delta_futures_ltp", "BTCUSD_270625", Market("BTC", "USD", "future", "2025-06-27")),
    ("delta_futures_ltp", "C-BTC-90000-310125", None),
    ("delta_spot", "BTCUSD", Market("BTC", "USD", "spot")),      # a spot index pair (index_price only)
    ("delta_spot", "BTC_USDT", Market("BTC", "USDT", "spot")),
    ("delta_spot", ".DEXBTUSD", None),
    # coindcx
    ("coindcx_spot", "B-BTC_USDT", Market("BTC", "USDT", "spot")),
    ("coindcx_spot", "I-BTC_INR", Market("BTC", "INR", "spot")),
    ("coindcx_spot", "I-USDT_INR", Market("USDT", "INR", "spot")),
    ("coindcx_futures_rest", "B-ETH_USDT", Market("ETH", "USDT", "perpetual")),
    ("coindcx_futures_rest", "B-1000SHIB_USDT", Market("SHIB", "USDT", "perpetual", None, 1000)),
    ("coindcx_spot", "BTCINR", None),
    # hyperliquid
    ("hyperliquid_perpetual", "BTC", Market("BTC", "USDC", "perpetual")),
    ("hyperliquid_perpetual", "kPEPE", Market("PEPE", "USDC", "perpetual", None, 1000)),
    ("hyperliquid_spot", "HYPE/USDC", Market("HYPE", "USDC", "spot")),
    ("hyperliquid_spot", "UBTC/USDC", Market("BTC", "USDC", "spot")),
    ("hyperliquid_spot", "@107", None),
    ("okx_spot", "BTC-USDT", Market("BTC", "USDT", "spot")),
    ("okx_swap", "BTC-USDT-SWAP", Market("BTC", "USDT", "perpetual")),
    ("okx_swap", "BTC-USD-SWAP", Market("BTC", "USD", "perpetual")),
    # options are never compared
    ("bybit_options", "BTC-26DEC25-100000-C", None),
    ("delta_options", "C-BTC-90000-310125", None),
])
def test_one_mapping_per_exchange(feed, symbol, expected):
    assert classify(feed, symbol) == expected


def test_feed_kinds_come_from_the_registry():
    kinds = {f: feed_kind(f) for f in FEEDS}
    assert kinds["bybit_options"] == kinds["delta_options"] == "option"
    assert {f for f, k in kinds.items() if k == "spot"} == {"bybit_spot", "bybit_spot_testnet_spot", "delta_spot", "coindcx_spot",
                                                            "hyperliquid_spot", "binance_spot", "okx_spot"}
    assert {f for f, k in kinds.items() if k == "derivative"} == {"bybit_futures_orderbook", "delta_futures_ltp",
                                                                  "coindcx_futures_rest", "hyperliquid_perpetual", "binance_futures",
                                                                  "deribit_futures", "okx_swap"}
    assert feed_kind("nope") is None


def test_every_configured_symbol_maps():
    """Every symbol of every spot and derivative feed in exchanges.yaml has an underlying."""
    for sid, svc in CONFIG.services.items():
        if feed_kind(sid) in ("spot", "derivative"):
            for sym in svc.symbols:
                assert classify(sid, sym) is not None, (sid, sym)


# -- funding --------------------------------------------------------------------------------------

@pytest.mark.parametrize("exchange, field, rate, hours, rate_8h, annual", [
    ("bybit", None, 0.0001, 8.0, 0.0001, 0.0001 * 1095),
    ("bybit", "4", 0.0001, 4.0, 0.0002, 0.0001 * 2190),           # fundingIntervalHour wins over the default
    ("delta", None, 0.0001, 8.0, 0.0001, 0.0001 * 1095),
    ("delta", "8", -0.0002, 8.0, -0.0002, -0.0002 * 1095),
    ("coindcx", "4", 0.00005, 4.0, 0.0001, 0.00005 * 2190),
    ("coindcx", "1", 0.00005, 1.0, 0.0004, 0.00005 * 8760),
    ("hyperliquid", None, 0.0000125, 1.0, 0.0001, 0.0000125 * 8760),
    ("hyperliquid", "1", 0.0000125, 1.0, 0.0001, 0.0000125 * 8760),
])
def test_funding_normalised_to_8h_and_a_year(exchange, field, rate, hours, rate_8h, annual):
    f = funding(exchange, {"funding_rate": repr(rate), "funding_interval_hours": field})
    assert f["rate"] == rate and f["interval_hours"] == hours
    assert f["interval_source"] == ("field" if field else "default")
    assert math.isclose(f["rate_8h"], rate_8h, rel_tol=1e-12) and math.isclose(f["annualised"], annual, rel_tol=1e-12)


def test_coindcx_has_no_default_interval():
    assert funding_interval("coindcx", None) == (None, None)
    f = funding("coindcx", {"funding_rate": "0.0001", "current_funding_rate": "0.00009"})
    assert f["rate"] == 0.0001 and f["interval_hours"] is None and f["rate_8h"] is None and f["annualised"] is None
    assert f["current_rate"] == 0.00009
    assert normalise_funding(None, 8) == (None, None) and normalise_funding(0.0001, 0) == (None, None)
    assert funding_interval("bybit", "garbage") == (8.0, "default")


# -- rows, INR, basis, highlights -----------------------------------------------------------------

def _row(feed: str, symbol: str, **fields: str) -> dict:
    svc = CONFIG.services[feed]
    market = classify(feed, symbol)
    assert market is not None
    raw = {"recv_ts": str(int((NOW - 1) * 1000)), **fields}
    row = build_row(Listed(svc, symbol, market), raw, NOW)
    assert row is not None
    return row


ORDER = {sid: i for i, sid in enumerate(CONFIG.services)}


def _fx(rate: float | None, reason: str | None = None) -> dict:
    return {"rate": rate, "available": rate is not None, "reason": reason}


def test_inr_converted_at_the_rate_and_compared():
    inr = _row("coindcx_spot", "I-BTC_INR", ltp="5720000", best_bid="5719000", best_ask="5721000")
    usdt = _row("bybit_spot", "BTCUSDT", ltp="65100", best_bid="65099.9", best_ask="65100.1")
    u = build_underlying("BTC", [inr, usdt], _fx(88.0), None, ORDER)
    assert [r["symbol"] for r in u["rows"]] == ["BTCUSDT", "I-BTC_INR"] and u["apart"] == []
    conv = next(r for r in u["rows"] if r["symbol"] == "I-BTC_INR")["converted"]
    assert conv["quote"] == "USDT" and conv["rate"] == 88.0
    assert math.isclose(conv["ltp"], 65000.0) and math.isclose(conv["best_bid"], 5719000 / 88)
    spread = u["highlights"]["ltp_spread"]
    assert spread["high"]["symbol"] == "BTCUSDT" and spread["low"]["symbol"] == "I-BTC_INR"
    assert math.isclose(spread["bps"], (65100 - 65000) / 65000 * 1e4)
    assert convert_inr({"ltp": 88.0, "mark_price": None}, 88.0) == {"ltp": 1.0, "mark_price": None}


def test_inr_shown_apart_without_a_rate():
    inr = _row("coindcx_spot", "I-BTC_INR", ltp="5720000")
    usdt = _row("bybit_spot", "BTCUSDT", ltp="65100")
    u = build_underlying("BTC", [inr, usdt], _fx(None, "coindcx_spot has no I-USDT_INR"), None, ORDER)
    assert [r["symbol"] for r in u["rows"]] == ["BTCUSDT"]
    assert [r["symbol"] for r in u["apart"]] == ["I-BTC_INR"]
    assert u["apart"][0]["reason"] == "no USDT/INR rate: coindcx_spot has no I-USDT_INR"
    assert "converted" not in u["apart"][0]
    assert u["highlights"]["ltp_spread"] is None  # one comparable row


def test_fx_status_default_only_when_listed_and_configurable():
    listed = {"coindcx_spot": {"I-USDT_INR"}}
    raw = {"ltp": "88.12", "recv_ts": str(int((NOW - 2) * 1000))}
    fx = fx_status(CompareSettings(), listed, raw, CONFIG, NOW)
    assert fx["available"] and fx["rate"] == 88.12 and fx["origin"] == "default" and fx["age_s"] == 2.0 and not fx["stale"]
    missing = fx_status(CompareSettings(), {"coindcx_spot": set()}, raw, CONFIG, NOW)
    assert not missing["available"] and missing["reason"] == "coindcx_spot has no I-USDT_INR"
    off = fx_status(CompareSettings(usdtinr=("", ""), origin="env"), listed, raw, CONFIG, NOW)
    assert not off["available"] and off["reason"] == "conversion switched off"
    mid = fx_status(CompareSettings(usdtinr=("coindcx_spot", "X"), origin="query"), {}, {"best_bid": "87", "best_ask": "89",
                                                                                         "stale": "stopped 2026"}, CONFIG, NOW)
    assert mid["rate"] == 88.0 and mid["rate_source"] == "mid" and mid["stale"] and mid["origin"] == "query"


def test_settings_from_env_and_query():
    assert CompareSettings.from_env({}) == CompareSettings()
    s = CompareSettings.from_env({"LTP_COMPARE_USDTINR": "coindcx_spot:I-USDT_INR", "LTP_COMPARE_REFERENCE": "coindcx_spot"})
    assert s.usdtinr == ("coindcx_spot", "I-USDT_INR") and s.reference == "coindcx_spot" and s.origin == "env"
    assert CompareSettings.from_env({"LTP_COMPARE_USDTINR": "none"}).usdtinr == ("", "")
    q = s.with_query({"usdtinr": "off"})
    assert q.usdtinr == ("", "") and q.reference == "coindcx_spot" and q.origin == "query"
    assert s.with_query({}) is s
    with pytest.raises(CompareError) as err:
        parse_usdtinr("coindcx_spot")
    assert err.value.status == 400 and "none" in err.value.extra["allowed"]
    with pytest.raises(CompareError) as err:
        CompareSettings(reference="bybit_futures_orderbook").check(CONFIG)
    assert err.value.code == "bad_reference" and "bybit_spot" in err.value.extra["allowed"]
    with pytest.raises(CompareError):
        CompareSettings(usdtinr=("nope", "X")).check(CONFIG)
    CompareSettings(usdtinr=("", ""), reference="delta_spot").check(CONFIG)  # conversion off: nothing to check


def test_basis_against_the_first_spot_feed_or_the_configured_one():
    rows = [
        _row("bybit_spot", "BTCUSDT", ltp="65000"),
        _row("coindcx_spot", "B-BTC_USDT", ltp="65100"),
        _row("bybit_futures_orderbook", "BTCUSDT", ltp="65065", mark_price="65060", funding_rate="0.0001"),
        _row("hyperliquid_perpetual", "BTC", ltp="65130", funding_rate="0.0000125"),
    ]
    u = build_underlying("BTC", [dict(r) for r in rows], _fx(None, "off"), None, ORDER)
    perp = next(r for r in u["rows"] if r["feed"] == "bybit_futures_orderbook")
    assert perp["basis"]["reference"]["feed"] == "bybit_spot" and math.isclose(perp["basis"]["bps"], 10.0)
    assert all("basis" not in r for r in u["rows"] if r["kind"] == "spot")
    u2 = build_underlying("BTC", [dict(r) for r in rows], _fx(None, "off"), "coindcx_spot", ORDER)
    perp2 = next(r for r in u2["rows"] if r["feed"] == "bybit_futures_orderbook")
    assert perp2["basis"]["reference"]["feed"] == "coindcx_spot" and math.isclose(perp2["basis"]["bps"], -35 / 65100 * 1e4)
    # rows ordered spot first, then perpetuals, in exchanges.yaml order
    assert [(r["kind"], r["feed"]) for r in u["rows"]] == [("spot", "bybit_spot"), ("spot", "coindcx_spot"),
                                                          ("perpetual", "bybit_futures_orderbook"),
                                                          ("perpetual", "hyperliquid_perpetual")]
    diff = u["highlights"]["funding_diff"]
    # both 0.0001 per 8 h equivalent: 0.0001 x 1095 = 0.0000125 x 8760
    assert math.isclose(diff["annualised"], 0.0, abs_tol=1e-12)


def test_highlights_skip_stale_testnet_and_dated_futures():
    fresh = _row("bybit_spot", "BTCUSDT", ltp="65000")
    stale = _row("coindcx_spot", "B-BTC_USDT", ltp="60000", stale="stopped 2026-11-29T20:01:02.123Z")
    old = _row("delta_futures_ltp", "BTCUSD", ltp="61000", recv_ts=str(int((NOW - 3600) * 1000)), funding_rate="0.001")
    testnet = _row("bybit_spot_testnet_spot", "BTCUSDT", ltp="10000")
    dated = _row("bybit_futures_orderbook", "BTCUSDT-26DEC25", ltp="67000")
    perp = _row("hyperliquid_perpetual", "BTC", ltp="65065", funding_rate="-0.00001")
    perp2 = _row("bybit_futures_orderbook", "BTCUSDT", ltp="65010", funding_rate="0.0001", funding_interval_hours="4")
    assert stale["stale"] and stale["stale_reason"].startswith("stopped")
    assert old["stale"] and old["stale_reason"] == "no update for more than 60 s" and testnet["testnet"]
    u = build_underlying("BTC", [fresh, stale, old, testnet, dated, perp, perp2], _fx(None, "off"), None, ORDER)
    hl = u["highlights"]
    assert (hl["ltp_spread"]["high"]["feed"], hl["ltp_spread"]["low"]["feed"]) == ("hyperliquid_perpetual", "bybit_spot")
    assert math.isclose(hl["ltp_spread"]["bps"], 10.0)
    fd = hl["funding_diff"]
    assert fd["high"]["feed"] == "bybit_futures_orderbook" and fd["low"]["feed"] == "hyperliquid_perpetual"
    assert math.isclose(fd["annualised"], 0.0001 * 2190 + 0.00001 * 8760)
    # the testnet spot is never the default basis reference
    assert next(r for r in u["rows"] if r["symbol"] == "BTCUSDT-26DEC25")["basis"]["reference"]["feed"] == "bybit_spot"


def test_multiplier_and_price_fallbacks():
    pepe = _row("bybit_futures_orderbook", "1000PEPEUSDT", ltp="0.0123")
    u = build_underlying("PEPE", [pepe], _fx(None, "off"), None, ORDER)
    assert u["rows"][0]["multiplier"] == 1000 and math.isclose(u["rows"][0]["ltp_usd"], 0.0000123)
    index = _row("delta_spot", "BTCUSD", index_price="65000.5", source="index")
    assert index["price"] == 65000.5 and index["price_source"] == "index_price" and index["ltp"] is None
    assert index["source"] == "index"
    book = _row("hyperliquid_spot", "HYPE/USDC", best_bid="20", best_ask="20.02")
    assert book["price_source"] == "mid" and math.isclose(book["spread_bps"], 0.02 / 20.01 * 1e4)
    assert build_row(Listed(CONFIG.services["bybit_spot"], "BTCUSDT", Market("BTC", "USDT", "spot")), {}, NOW) is None


def test_other_quotes_are_apart():
    eth_btc = _row("bybit_spot", "ETHBTC", ltp="0.05")
    u = build_underlying("ETH", [eth_btc], _fx(88.0), None, ORDER)
    assert u["rows"] == [] and u["apart"][0]["reason"] == "quote BTC is not compared with USD, USDT or USDC"


def test_inr_basis_in_inr_when_not_converted():
    spot = _row("coindcx_spot", "I-BTC_INR", ltp="5720000")
    perp = _row("coindcx_futures_rest", "B-BTC_INR", ltp="5725720", funding_rate="0.0001", funding_interval_hours="8")
    u = build_underlying("BTC", [spot, perp], _fx(None, "off"), None, ORDER)
    assert u["rows"] == [] and [r["symbol"] for r in u["apart"]] == ["I-BTC_INR", "B-BTC_INR"]
    basis = u["apart"][1]["basis"]
    assert basis["reference"]["symbol"] == "I-BTC_INR" and math.isclose(basis["bps"], 10.0)


def test_binance_spot_can_be_the_reference_spot():
    """LTP_COMPARE_REFERENCE=binance_spot: basis of every perpetual, the reference venues' included, against Binance spot."""
    assert CompareSettings.from_env({"LTP_COMPARE_REFERENCE": "binance_spot"}).reference == "binance_spot"
    CompareSettings(reference="binance_spot").check(CONFIG)  # a configured spot feed: accepted
    rows = [
        _row("bybit_spot", "BTCUSDT", ltp="65000"),
        _row("binance_spot", "BTCUSDT", ltp="65100"),
        _row("binance_futures", "BTCUSDT", ltp="65165", mark_price="65160", funding_rate="0.0001"),
        _row("okx_swap", "BTC-USDT-SWAP", ltp="65035", funding_rate="0.0001"),
    ]
    u = build_underlying("BTC", [dict(r) for r in rows], _fx(None, "off"), "binance_spot", ORDER)
    basis = {r["feed"]: r["basis"] for r in u["rows"] if r["kind"] == "perpetual"}
    assert {b["reference"]["feed"] for b in basis.values()} == {"binance_spot"}
    assert math.isclose(basis["binance_futures"]["bps"], 65 / 65100 * 1e4)
    assert math.isclose(basis["okx_swap"]["bps"], -65 / 65100 * 1e4)
