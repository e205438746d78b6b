from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.exchanges import bybit
from workers.runtime.chain import Contract
from workers.runtime.model import SEND, Control, ParseError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "bybit"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def enc(obj: dict) -> bytes:
    return json.dumps(obj).encode()


def linear(levels=2) -> bybit.LinearStream:
    s = bybit.LinearStream("linear#0", "ws://x", ["BTCUSDT"], depth=50, levels=levels)
    s.on_connect()
    return s


def book(kind: str, u: int, b, a) -> bytes:
    return enc({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1672304484978 + u,
                "data": {"s": "BTCUSDT", "b": b, "a": a, "u": u, "seq": u}})


def test_linear_ticker_snapshot_then_delta_only_writes_what_changed():
    s = linear()
    [snap] = s.parse(enc(sample("ticker_linear_snapshot.json")))
    f = snap.fields
    assert (f["ltp"], f["mark_price"], f["index_price"], f["funding_rate"]) == ("17216.00", "17217.33", "17227.36", "-0.000212")
    assert f["next_funding_time"] == "2023-01-09T16:00:00.000Z"
    assert f["open_interest"] == "68744.761" and f["price_change_percent"] == "1.7103"
    delta = sample("ticker_linear_delta.json")
    delta["data"]["markPrice"] = "79120.1"
    [upd] = s.parse(enc(delta))
    assert upd.fields == {"mark_price": "79120.1"}  # bid1/ask1 come from the book, not the ticker


def test_linear_delta_before_snapshot_and_empty_funding_of_dated_futures():
    s = linear()
    with pytest.raises(ParseError) as exc:
        s.parse(enc(sample("ticker_linear_delta.json")))
    assert exc.value.kind == "delta_before_snapshot"
    snap = sample("ticker_linear_snapshot.json")
    snap["data"]["fundingRate"] = ""
    snap["data"]["nextFundingTime"] = ""
    [upd] = s.parse(enc(snap))
    assert "funding_rate" not in upd.fields and "next_funding_time" not in upd.fields


def test_book_snapshot_deltas_and_top_levels():
    s = linear(levels=2)
    s.parse(enc(sample("ticker_linear_snapshot.json")))
    [u1] = s.parse(book("snapshot", 10, [["100", "1"], ["99", "2"], ["98", "3"]], [["101", "1"], ["102", "2"]]))
    assert json.loads(u1.fields["bids"]) == [["100", "1"], ["99", "2"]]
    assert (u1.fields["best_bid"], u1.fields["best_ask"], u1.fields["spread"], u1.fields["update_id"]) == ("100", "101", "1", "10")
    [u2] = s.parse(book("delta", 11, [["100", "0"], ["99.5", "4"]], [["100.5", "1"]]))
    assert json.loads(u2.fields["bids"]) == [["99.5", "4"], ["99", "2"]]
    assert u2.fields["best_ask"] == "100.5" and u2.fields["ask_size"] == "1"


def test_gap_crossed_and_bad_levels_resync_that_topic():
    s = linear()
    s.parse(enc(sample("ticker_linear_snapshot.json")))
    s.parse(book("snapshot", 10, [["100", "1"]], [["101", "1"]]))
    ctl = s.parse(book("delta", 12, [["100", "2"]], []))
    assert isinstance(ctl, Control) and ctl.kind == SEND and "gap" in ctl.detail
    unsub, sub = (json.loads(f) for f in ctl.frames)
    assert unsub == {"req_id": "unsub-BTCUSDT", "op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]}
    assert sub["op"] == "subscribe" and sub["args"] == ["orderbook.50.BTCUSDT"]
    assert s.parse(book("delta", 13, [["100", "2"]], [])) == []  # ignored until the new snapshot
    s.parse(book("snapshot", 1, [["100", "1"]], [["101", "1"]]))  # u=1: service restart snapshot
    assert s.parse(book("delta", 2, [["102", "1"]], [])).kind == SEND  # would cross: resync, never written
    s.parse(book("snapshot", 5, [["100", "1"]], [["101", "1"]]))
    assert "bad level" in s.parse(book("delta", 6, [["abc", "1"]], [])).detail
    s.parse(book("snapshot", 5, [["100", "1"]], [["101", "1"]]))
    with pytest.raises(ParseError, match="stale"):
        s.parse(book("delta", 5, [["100", "3"]], []))


def test_option_ticker_sample_maps_greeks_and_contract_fields():
    s = bybit.OptionStream("option#0", "ws://x", ["BTC-6JAN23-17500-C"])
    s.on_connect()
    [upd] = s.parse(enc(sample("ticker_option_snapshot.json")))
    f = upd.fields
    assert (f["ltp"], f["mark_price"], f["best_bid"], f["best_ask"]) == ("10", "7.86976724", "0", "10")
    assert (f["delta"], f["gamma"], f["vega"], f["theta"]) == ("0.047831", "0.00021453", "0.81351067", "-19.9115368")
    assert (f["implied_volatility"], f["bid_iv"], f["ask_iv"], f["underlying_price"]) == ("0.4896", "0", "0.514", "16815.1")
    assert (f["option_type"], f["underlying"], f["strike_price"], f["expiry_date"], f["expiry"]) == (
        "CALL", "BTC", "17500", "060123", "2023-01-06")
    assert f["price_change_percent"] == "-33.3333"  # change24h is a fraction; the contract stores percent
    [again] = s.parse(enc(sample("ticker_option_snapshot.json")))
    assert "option_type" not in again.fields  # static fields once per connection


@pytest.mark.parametrize("symbol, expect", [
    ("BTC-13FEB25-89000-P-USDT", {"option_type": "PUT", "underlying": "BTC", "strike_price": "89000",
                                  "expiry_date": "130225", "expiry": "2025-02-13", "settle_coin": "USDT"}),
    ("ETH-28FEB25-2800-C", {"option_type": "CALL", "underlying": "ETH", "strike_price": "2800",
                            "expiry_date": "280225", "expiry": "2025-02-28", "settle_coin": "USDC"}),
])
def test_option_symbols(symbol, expect):
    assert bybit.parse_option_symbol(symbol) == expect


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC-6XXX23-1-C", "BTC-6JAN23-abc-C", "BTC-6JAN23-100-X"])
def test_bad_option_symbols(symbol):
    with pytest.raises(ParseError):
        bybit.parse_option_symbol(symbol)


def test_option_without_a_trade_has_no_ltp_but_its_other_fields():
    s = bybit.OptionStream("option#0", "ws://x", ["BTC-6JAN23-17500-C"])
    s.on_connect()
    frame = sample("ticker_option_snapshot.json")
    frame["data"]["lastPrice"] = "0"  # Bybit's value until the contract first trades
    [upd] = s.parse(enc(frame))
    assert "ltp" not in upd.fields and upd.fields["mark_price"] == "7.86976724" and upd.fields["original_symbol"]


def test_option_contracts_read_instruments_info():
    rows = [
        {"symbol": "BTC-2JAN30-100-C", "deliveryTime": "2000", "status": "Trading", "baseCoin": "BTC", "settleCoin": "USDC"},
        {"symbol": "BTC-3JAN30-95-P", "deliveryTime": "3000", "status": "PreLaunch", "baseCoin": "BTC"},
        {"symbol": "BTCUSDT", "deliveryTime": "3000", "status": "Trading"},
        {"symbol": "BTC-3JAN30-95-P-USDT", "deliveryTime": "x", "status": "Trading"},
    ]
    assert bybit.option_contracts(rows) == [Contract("BTC-2JAN30-100-C", "BTC", 2000, 100.0, "USDC")]


def test_option_topics_shard_within_2000_args_and_21000_chars_per_connection():
    streams = bybit.option_streams("ws://x", [f"BTC-13FEB25-{100000 + i}-P-USDT" for i in range(4500)])
    assert sum(len(s.topics) for s in streams) == 4500 and len(streams) == 8  # the 21,000 chars bind first
    for s in streams:
        args = json.dumps(s.topics, separators=(",", ":"))
        assert len(s.topics) <= 2000 and len(args) <= bybit.MAX_ARGS_CHARS_PER_CONNECTION
