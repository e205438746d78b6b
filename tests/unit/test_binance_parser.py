"""Binance parsers and REST readers on the docs' sample frames (tests/samples/binance, see its SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.exchanges import binance
from workers.runtime.declare import DERIVATIVE, SPOT
from workers.runtime.markets import PERPETUAL, Market
from workers.runtime.model import IGNORED, PLANNED_RECONNECT, SUB_REJECTED, SUBSCRIBED, Control, ParseError
from workers.runtime.timefmt import iso_ms, now_ms

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "binance"


def raw(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def doc(name: str) -> object:
    return json.loads(raw(name))


def spot_stream(symbols=("BNBBTC", "BNBUSDT")) -> binance.BinanceStream:
    [s] = binance.spot_streams("ws://x", list(symbols))
    s.on_connect()
    return s


def futures_stream(symbols=("BTCUSDT", "BNBUSDT")) -> binance.BinanceStream:
    s = binance.futures_streams("ws://x", list(symbols))[0]
    s.on_connect()
    return s


def test_spot_trade_is_the_ltp():
    s = spot_stream()
    [u] = s.parse(raw("spot_trade_docs"))
    assert u.symbol == "BNBBTC" and u.event_ts_ms == 1672515782136
    assert u.fields == {"ltp": "0.001", "original_symbol": "BNBBTC"}
    [again] = s.parse(raw("spot_trade_docs"))
    assert again.fields == {"ltp": "0.001"}  # the symbol is named once per connection


def test_spot_book_ticker_has_no_time_and_no_event_type():
    before = now_ms()
    [u] = spot_stream().parse(raw("spot_bookticker_docs"))
    assert u.symbol == "BNBUSDT" and before <= u.event_ts_ms <= now_ms()
    assert u.fields == {"best_bid": "25.35190000", "bid_size": "31.21000000", "best_ask": "25.36520000",
                        "ask_size": "40.66000000", "original_symbol": "BNBUSDT"}


def test_spot_ticker_24h_fields_and_no_ltp():
    [u] = spot_stream().parse(raw("spot_ticker24hr_docs"))
    assert u.fields == {"volume_24h": "10000", "turnover_24h": "18", "high_24h": "0.0025", "low_24h": "0.0010",
                        "prev_price_24h": "0.0010", "price_change_percent": "250.00", "original_symbol": "BNBBTC"}
    assert "ltp" not in u.fields  # `c` is a last price, but ltp comes from trades only


@pytest.mark.parametrize("name", ["futures_aggtrade_docs", "futures_aggtrade_sdk"])
def test_futures_agg_trade_is_the_ltp(name):
    [u] = futures_stream().parse(raw(name))
    assert u.fields["ltp"] == "0.001" and u.event_ts_ms == 123456789


def test_futures_book_ticker_and_ticker():
    s = futures_stream()
    [book] = s.parse(raw("futures_bookticker_sdk"))
    assert book.event_ts_ms == 1568014460893 and book.fields["best_ask"] == "25.36520000" and book.fields["ask_size"] == "40.66000000"
    [tick] = s.parse(raw("futures_ticker24hr_sdk"))
    assert tick.fields == {"volume_24h": "10000", "turnover_24h": "18", "high_24h": "0.0025", "low_24h": "0.0010",
                           "prev_price_24h": "0.0010", "price_change_percent": "250.00"}


@pytest.mark.parametrize("name", ["futures_markprice_docs", "futures_markprice_sdk"])
def test_mark_price_update(name):
    [u] = futures_stream().parse(raw(name))
    assert u.event_ts_ms == 1562305380000
    assert u.fields == {"mark_price": "11794.15000000", "index_price": "11784.62659091", "funding_rate": "0.00038167",
                        "next_funding_time": iso_ms(1562306400000), "original_symbol": "BTCUSDT"}


def test_delivery_contract_mark_has_no_funding():
    frame = dict(doc("futures_markprice_docs"), r="", T=0)  # type: ignore[arg-type]
    [u] = futures_stream().parse(json.dumps(frame))
    assert "funding_rate" not in u.fields and "next_funding_time" not in u.fields


def test_acks_errors_and_notices():
    s = spot_stream()
    assert s.parse(raw("subscribe_reply_docs")).kind == SUBSCRIBED  # request 1 is the first SUBSCRIBE
    assert s.parse(raw("futures_subscribe_reply_docs")).kind == SUBSCRIBED
    assert s.parse(raw("unsubscribe_reply_docs")).kind == IGNORED
    assert s.parse(raw("list_subscriptions_reply_docs")).kind == IGNORED
    for name in ("ws_error_missing_method_docs", "ws_error_unknown_property_docs"):
        with pytest.raises(ParseError) as exc:
            s.parse(raw(name))
        assert exc.value.kind == "error_reply"
    refused = s.parse(b'{"code":2,"msg":"Invalid request: too many parameters","id":1}')
    assert isinstance(refused, Control) and refused.kind == SUB_REJECTED and "bnbbtc@trade" in refused.items
    for name in ("spot_servershutdown_raw_docs", "combined_stream_wrapper_docs"):
        assert s.parse(raw(name)).kind == PLANNED_RECONNECT


def test_combined_wrapper_is_unwrapped():
    s = spot_stream()
    [u] = s.parse(json.dumps({"stream": "bnbbtc@trade", "data": doc("spot_trade_docs")}))
    assert u.fields["ltp"] == "0.001"


@pytest.mark.parametrize("frame, kind", [
    (b'{"e":"trade","E":1,"s":"ETHUSDT","p":"1"}', "unknown_symbol"),
    (b'{"e":"trade","E":1,"s":"BNBBTC","p":"-1"}', "bad_value"),
    (b'{"e":"trade","E":1,"s":"BNBBTC","p":1}', "bad_type"),
    (b'{"e":"trade","E":"1","s":"BNBBTC","p":"1"}', "bad_type"),
    (b'{"e":"depthUpdate","E":1,"s":"BNBBTC"}', "unknown_event"),
    (b'{"stream":"x","data":[]}', "bad_frame"),
    (b'{"hello":1}', "unknown_frame"),
    (b"[1]", "bad_frame"),
    (b"{", "bad_json"),
])
def test_bad_frames_are_parse_errors(frame, kind):
    with pytest.raises(ParseError) as exc:
        spot_stream().parse(frame)
    assert exc.value.kind == kind


def test_an_empty_book_side_is_deleted():
    [u] = spot_stream().parse(b'{"u":1,"s":"BNBBTC","b":"0.00000000","B":"0.0","a":"2","A":"1"}')
    assert u.fields["best_bid"] is None and u.fields["bid_size"] is None and u.fields["best_ask"] == "2"


def test_subscribe_frames_follow_the_docs_shape_and_are_paced():
    want = doc("subscribe_request_docs")
    frame = json.loads(binance.subscribe_frame(1, ["btcusdt@aggTrade", "btcusdt@depth"]))
    assert frame == want
    symbols = [f"C{i:03d}USDT" for i in range(200)]  # 600 streams: 6 frames of 100
    [s] = binance.spot_streams("ws://x", symbols)
    clock = [0.0]
    s.clock = lambda: clock[0]
    first = s.on_connect()
    assert len(first) == binance.SUBSCRIBE_BURST and s.due_frames() == []
    sent = list(first)
    while len(sent) < 6:
        clock[0] += binance.SUBSCRIBE_INTERVAL_S
        due = s.due_frames()
        assert len(due) == 1
        sent += due
    params = [p for f in sent for p in json.loads(f)["params"]]
    assert params == s.streams and len(params) == 600 and all(p == p.lower() or p.endswith("@bookTicker") for p in params)
    assert s.parse(json.dumps({"result": None, "id": 6})).kind == SUBSCRIBED


def test_limits_shard_connections():
    spot = binance.spot_streams("wss://stream.binance.com:9443", [f"C{i:03d}USDT" for i in range(400)])
    assert [len(s.streams) for s in spot] == [1023, 177] and spot[0].url == "wss://stream.binance.com:9443/ws"
    fut = binance.futures_streams("wss://fstream.binance.com/", [f"C{i:03d}USDT" for i in range(80)])
    assert [(s.url, len(s.streams)) for s in fut] == [
        ("wss://fstream.binance.com/market/ws", 198), ("wss://fstream.binance.com/market/ws", 42),
        ("wss://fstream.binance.com/public/ws", 80)]
    assert all(s.ping_interval is None and s.max_connection_age_s == binance.MAX_CONNECTION_AGE_S for s in fut)
    assert binance.MAX_CONNECTION_AGE_S < binance.CONNECTION_LIFETIME_S


def test_rest_readers():
    assert binance.spot_listing(doc("spot_exchangeinfo_excerpt_docs")) == {"ETHBTC": "TRADING"}
    listing = binance.futures_listing(doc("futures_exchangeinfo_excerpt_sdk"))
    assert listing == {"BLZUSDT": "PERPETUAL TRADING"}
    ok, refused = binance.selection(["BLZUSDT", "NOPEUSDT"], listing | {"OLDUSDT": "PERPETUAL SETTLING"}, binance.FUTURES_LIVE, "x")
    assert ok == ["BLZUSDT"] and "not listed" in refused["NOPEUSDT"]
    assert binance.funding_intervals(doc("futures_fundinginfo_docs")) == {"BLZUSDT": "8"}
    assert binance.open_interest(doc("futures_openinterest_docs"), "BTCUSDT") == ("10659.509", 1589437530011)
    for bad in (doc("rest_error_invalid_symbol_docs"), [], {"symbols": 5}):
        with pytest.raises(ParseError):
            binance.open_interest(bad, "BTCUSDT")
        with pytest.raises(ParseError):
            binance.futures_listing(bad)


def test_open_interest_period_keeps_far_under_the_weight_budget():
    assert binance.open_interest_period(3, 5.0) == 5.0
    assert binance.open_interest_period(200, 5.0) == 50.0  # 240 weight a minute: a tenth of 2400


def test_market_rule():
    assert binance.market_of("BTCUSDT", SPOT) == Market("BTC", "USDT", SPOT)
    assert binance.market_of("1000PEPEUSDT", DERIVATIVE) == Market("PEPE", "USDT", PERPETUAL, None, 1000)
    assert binance.market_of("BTCUSDT_260925", DERIVATIVE) is None
