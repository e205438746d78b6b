"""Deribit protocol module on the documented sample frames (tests/samples/deribit, sources in SOURCES.md):
requests out, replies and pushes in, units, the market rule and the REST readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.exchanges import deribit as d
from workers.runtime.chain import Contract
from workers.runtime.fields import PARSER_FIELDS
from workers.runtime.markets import Market
from workers.runtime.model import IGNORED, PONG, RECONNECT, REPLY, SUB_REJECTED, SUBSCRIBED, Control, ParseError, Update

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "deribit"
OPT = "BTC-12MAR25-65000-C"
PERP = "BTC-PERPETUAL"


def sample(name: str):
    return json.loads((SAMPLES / f"{name}.json").read_text())


def push(channel: str, data) -> bytes:
    """The full notification frame around a docs `data` payload (the docs show the payload only)."""
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}).encode()


def stream(*symbols: str, heartbeat: int = 30) -> d.DeribitStream:
    s = d.DeribitStream("t#0", "ws://x", symbols or (OPT, PERP), heartbeat=heartbeat, pacer=d.SubscribePacer(burst=10))
    s.on_connect()
    return s


def reply(rid: int, **body) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, **body}).encode()


# -- requests out ----------------------------------------------------------------------------


def test_connect_sets_the_heartbeat_then_subscribes_every_channel_with_ids():
    s = d.DeribitStream("t#0", "ws://x", [PERP], heartbeat=30)
    frames = [json.loads(f) for f in s.on_connect()]
    want = sample("set_heartbeat_request_docs")
    assert frames[0] | {"id": 0} == want | {"id": 0}  # the docs' request, our id
    assert frames[1]["method"] == "public/subscribe" and frames[1]["jsonrpc"] == "2.0"
    assert frames[1]["params"] == {"channels": ["ticker.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms"]}
    assert sample("ticker_subscribe_request_docs")["params"]["channels"][0] in frames[1]["params"]["channels"]
    assert len({f["id"] for f in frames}) == 2 and all(type(f["id"]) is int for f in frames)
    assert s.ping_frame() is None and s.ping_interval is None and s.binary_ok is False


def test_heartbeat_below_ten_seconds_is_refused():
    with pytest.raises(ValueError, match="minimum is 10"):
        d.DeribitStream("t", "ws://x", [PERP], heartbeat=5)


def test_subscribes_are_batched_under_the_frame_cap_and_paced():
    symbols = [f"BTC-27DEC26-{k}-{t}" for k in range(20000, 220000, 500) for t in "CP"]  # 800 instruments
    clock = [0.0]
    pacer = d.SubscribePacer(clock=lambda: clock[0])
    s = d.DeribitStream("t", "ws://x", symbols, heartbeat=30, pacer=pacer)
    first = s.on_connect()
    subs = [json.loads(f) for f in first[1:]]
    assert len(first) == 1 + d.SUBSCRIBE_BURST  # set_heartbeat + the burst
    assert all(len(f) < 32 * 1024 for f in first)
    assert s.due_frames() == ()  # the pacer holds the rest back
    sent = list(first[1:])
    while len(sent) < 1 + len(d.batches(s.channels)) - 1:
        clock[0] += d.SUBSCRIBE_INTERVAL_S
        due = s.due_frames()
        assert len(due) == 1
        sent += due
    channels = [c for f in sent for c in json.loads(f)["params"]["channels"]]
    assert channels == s.channels and len(channels) == 1600 and subs[0]["params"]["channels"][0] == channels[0]


def test_one_pacer_is_shared_by_a_feeds_connections():
    clock = [0.0]
    pacer = d.SubscribePacer(clock=lambda: clock[0])
    many = [f"BTC-27DEC26-{k}-C" for k in range(20000, 620000, 100)]  # 6000 instruments: several connections
    conns = d.streams("ws://x", many, heartbeat=30, silence_timeout=None, pacer=pacer, kind="options")
    assert len(conns) == 24 and all(len(c.channels) <= d.MAX_CHANNELS_PER_CONNECTION for c in conns)
    subscribes = sum(len(c.on_connect()) - 1 for c in conns)
    assert subscribes == d.SUBSCRIBE_BURST  # every connection draws on the same burst


# -- replies -----------------------------------------------------------------------------------


def test_subscribe_result_is_diffed_against_the_request():
    s = stream()
    assert s.parse(reply(1, result="ok")).kind == IGNORED  # set_heartbeat (the docs' result)
    ok = s.parse(reply(2, result=s.channels))
    assert ok.kind == SUBSCRIBED
    sub_id = json.loads(s.on_connect()[1])["id"]  # ids go on counting across connections
    assert sub_id == 4
    refused = s.parse(reply(sub_id, result=[c for c in s.channels if "PERPETUAL" not in c]))
    assert refused.kind == SUB_REJECTED
    assert refused.items == ("ticker.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms")
    # Not asked again on the next connection.
    again = json.loads(s.on_connect()[1])["params"]["channels"]
    assert again == [f"ticker.{OPT}.100ms", f"trades.{OPT}.100ms"]


def test_subscribe_errors():
    s = stream()
    err = sample("error_reply_docs") | {"id": 2}
    assert s.parse(json.dumps(err).encode()) == Control(SUB_REJECTED, "public/subscribe error 11050 bad_request", tuple(s.channels))
    s = stream()
    limited = s.parse(reply(2, error={"code": 10028, "message": "too_many_requests"}))
    assert limited.kind == RECONNECT and "10028" in limited.detail and not s.refused
    with pytest.raises(ParseError, match="set_heartbeat: error -32602"):
        s.parse(reply(1, error={"code": -32602, "message": "Invalid params"}))


def test_replies_of_the_docs_and_unknown_ids():
    s = stream()
    assert s.parse(json.dumps(sample("subscribe_result_docs")).encode()).kind == IGNORED  # id 4235: not ours
    assert s.parse(json.dumps(sample("public_test_result_docs")).encode()).kind == IGNORED


def test_heartbeats():
    s = stream()
    answer = s.parse(json.dumps(sample("heartbeat_test_request_code")).encode())
    assert answer.kind == REPLY and len(answer.frames) == 1
    test = json.loads(answer.frames[0])
    assert test | {"id": 0} == sample("public_test_request_docs") | {"id": 0}
    assert s.parse(reply(test["id"], result={"version": "1.2.26"})).kind == IGNORED
    assert s.parse(json.dumps(sample("heartbeat_heartbeat_code")).encode()) == Control(PONG)


# -- pushes ------------------------------------------------------------------------------------


def only(result) -> Update:
    assert isinstance(result, list) and len(result) == 1, result
    return result[0]


def test_option_ticker_units():
    s = stream(OPT)
    u = only(s.parse(push(f"ticker.{OPT}.100ms", sample("ticker_option_data_code"))))
    f = u.fields
    assert u.symbol == OPT and u.event_ts_ms == 1741731610450
    assert f["mark_price"] == "0.2182" and f["best_bid"] == "0.1905" and f["best_ask"] == "0.2455"  # BTC, as quoted
    assert f["mark_price_usd"] == "18143.3169"  # 0.2182 × 83149.94
    assert f["best_bid_usd"] == "15840.0636" and f["best_ask_usd"] == "20413.3103"
    assert f["implied_volatility"] == "1.5947" and f["ask_iv"] == "8.6338"  # percent -> fraction
    assert f["bid_iv"] is None  # 0: no volatility fits the bid
    assert f["bid_size"] == f["ask_size"] == "6.9" and f["open_interest"] == "0" and "open_interest_value" not in f
    assert (f["delta"], f["gamma"], f["vega"], f["theta"], f["rho"]) == ("1", "0", "0.0002", "-0.01591", "0.71727")
    assert f["underlying_price"] == "83140.6237" and f["index_price"] == "83149.94"
    assert "ltp" not in f and "high_24h" not in f  # last_price and stats.high are null: no trade
    assert (f["option_type"], f["underlying"], f["strike_price"], f["expiry_date"], f["expiry"], f["settle_coin"]) == (
        "CALL", "BTC", "65000", "120325", "2025-03-12", "BTC")
    assert f["original_symbol"] == OPT
    again = only(s.parse(push(f"ticker.{OPT}.100ms", sample("ticker_option_data_code")))).fields
    assert "option_type" not in again and "original_symbol" not in again  # static fields once per connection
    assert set(f) <= PARSER_FIELDS


def test_option_side_without_a_quote_is_deleted():
    data = sample("ticker_option_data_code") | {"best_bid_price": 0, "best_bid_amount": 0, "best_ask_price": None}
    f = only(stream(OPT).parse(push(f"ticker.{OPT}.100ms", data))).fields
    for key in ("best_bid", "bid_size", "bid_iv", "best_bid_usd", "best_ask", "ask_size", "ask_iv", "best_ask_usd"):
        assert f[key] is None, key


def test_perpetual_ticker_units():
    f = only(stream(PERP).parse(push(f"ticker.{PERP}.100ms", sample("ticker_perpetual_data_docs")["data"]))).fields
    assert f["funding_rate"] == "0.0000211" and f["funding_interval_hours"] == "8" and "next_funding_time" not in f
    assert f["open_interest_value"] == "502097590" and "open_interest" not in f  # USD
    assert (f["best_bid"], f["bid_size"], f["best_ask"], f["ask_size"]) == ("36442.5", "5000", "36443", "100")
    assert f["mark_price"] == "36446.51" and f["index_price"] == "36441.64"
    assert (f["volume_24h"], f["turnover_24h"], f["high_24h"], f["low_24h"]) == ("7871.02139035", "284061480", "36824.5", "35213.5")
    assert f["price_change_percent"] == "0.7229"  # Deribit's figure is already percent
    assert "ltp" not in f and "mark_price_usd" not in f and set(f) <= PARSER_FIELDS
    rest = sample("public_ticker_perpetual_result_docs")["result"]  # the REST ticker is the same object
    assert only(stream(PERP).parse(push(f"ticker.{PERP}.100ms", rest))).fields["funding_rate"] == "0.00002203"


def test_dated_and_linear_futures():
    dated = sample("ticker_perpetual_data_docs")["data"] | {"instrument_name": "BTC-29SEP23"}
    for k in ("funding_8h", "current_funding", "interest_value"):
        dated.pop(k)
    f = only(stream("BTC-29SEP23").parse(push("ticker.BTC-29SEP23.100ms", dated))).fields
    assert "funding_rate" not in f and "funding_interval_hours" not in f and f["open_interest_value"] == "502097590"
    linear = sample("ticker_perpetual_data_docs")["data"] | {"instrument_name": "BTC_USDC-PERPETUAL", "open_interest": 12.5}
    f = only(stream("BTC_USDC-PERPETUAL").parse(push("ticker.BTC_USDC-PERPETUAL.100ms", linear))).fields
    assert f["open_interest"] == "12.5" and "open_interest_value" not in f  # linear: in the coin


def test_ltp_only_from_trades():
    s = stream(PERP)
    u = only(s.parse(push(f"trades.{PERP}.100ms", sample("trades_data_docs")["data"])))
    assert u.fields == {"ltp": "8950", "original_symbol": PERP, "funding_interval_hours": "8"}
    assert u.event_ts_ms == 1590484512188
    trades = [sample("trades_data_docs")["data"][0] | {"price": p, "timestamp": 1590484512188 + i} for i, p in enumerate((8950, 8951.5))]
    assert only(s.parse(push(f"trades.{PERP}.100ms", trades))).fields == {"ltp": "8951.5"}  # the last trade
    opt_trade = sample("last_trades_option_result_docs")["result"]["trades"]
    sym = opt_trade[0]["instrument_name"]
    assert only(stream(sym).parse(push(f"trades.{sym}.100ms", opt_trade))).fields["ltp"] == "0.0525"  # in BTC, as quoted


def test_pushes_for_other_instruments_write_nothing():
    s = stream(PERP)
    other = sample("ticker_perpetual_data_docs")["data"] | {"instrument_name": "ETH-PERPETUAL"}
    assert s.parse(push("ticker.ETH-PERPETUAL.100ms", other)) == []


@pytest.mark.parametrize("frame, kind", [
    (b"not json", "bad_json"),
    (b"[1]", "bad_frame"),
    (push(f"ticker.{PERP}.100ms", sample("ticker_perpetual_data_docs")["data"] | {"instrument_name": "X"}), "bad_frame"),
    (push(f"ticker.{PERP}.100ms", sample("ticker_perpetual_data_docs")["data"] | {"mark_price": "36446.51"}), "bad_type"),
    (push(f"ticker.{PERP}.100ms", sample("ticker_perpetual_data_docs")["data"] | {"index_price": -1}), "bad_value"),
    (push(f"ticker.{PERP}.100ms", sample("ticker_perpetual_data_docs")["data"] | {"timestamp": "x"}), "bad_type"),
    (push(f"trades.{PERP}.100ms", []), "bad_frame"),
    (push(f"trades.{PERP}.100ms", [sample("trades_data_docs")["data"][0] | {"price": 0}]), "bad_value"),
    (push("book.BTC-PERPETUAL.100ms", {}), "unknown_channel"),
    (json.dumps(sample("deribit_price_index_notification_docs")).encode(), "unknown_channel"),
    (b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"other"}}', "bad_frame"),
    (b'{"jsonrpc":"2.0","result":1}', "unknown_frame"),
])
def test_bad_frames_raise_parse_errors(frame, kind):
    with pytest.raises(ParseError) as err:
        stream(PERP).parse(frame)
    assert err.value.kind == kind


def test_numbers_and_percent():
    assert d.num(2.11e-05, "x") == "0.0000211" and d.num(36442.5, "x") == "36442.5" and d.num(5000, "x") == "5000"
    for bad in (True, None, "1", float("nan"), float("inf")):
        with pytest.raises(ParseError):
            d.num(bad, "x")
    assert [d.percent_to_fraction(t) for t in ("159.47", "45.91", "5", "0", "100", "0.5", "-3.2", "863.38")] == [
        "1.5947", "0.4591", "0.05", "0", "1", "0.005", "-0.032", "8.6338"]
    assert d.usd(0.0525, 66930.31) == "3513.8413" and d.usd(0.0, 1.0) == "0"


# -- names, markets, REST --------------------------------------------------------------------------


def test_option_names():
    assert d.option_fields("BTC-5AUG23-580-P") == {"option_type": "PUT", "underlying": "BTC", "strike_price": "580",
                                                   "expiry_date": "050823", "expiry": "2023-08-05", "settle_coin": "BTC"}
    assert d.option_fields("XRP_USDC-30JUN23-0d625-C")["strike_price"] == "0.625"
    assert d.option_fields("XRP_USDC-30JUN23-0d625-C")["settle_coin"] == "USDC"
    assert d.option_fields("BTC-31FEB25-1000-C") is None and d.option_fields("BTC-PERPETUAL") is None


def test_market_rule():
    m = d.market_of
    assert m("BTC-PERPETUAL", "derivative") == Market("BTC", "USD", "perpetual")
    assert m("ETH-27DEC26", "derivative") == Market("ETH", "USD", "future", "2026-12-27")
    assert m("BTC-5AUG23", "derivative") == Market("BTC", "USD", "future", "2023-08-05")
    assert m("SOL_USDC-PERPETUAL", "derivative") == Market("SOL", "USDC", "perpetual")
    assert m("BTC_USDC", "spot") == Market("BTC", "USDC", "spot")
    assert m("BTC-27DEC26-100000-C", "derivative") is None and m("BTC-31FEB25", "derivative") is None


def test_rest_readers():
    rows = d.instrument_rows(sample("get_instruments_future_result_docs"))
    assert [r["instrument_name"] for r in rows] == ["BTC-29SEP23", "BTC-PERPETUAL"]
    assert d.active_names(rows, 1695974400000 - 1) == {"BTC-29SEP23", "BTC-PERPETUAL"}
    assert d.active_names(rows, 1695974400000) == {"BTC-PERPETUAL"}  # expired
    option = sample("get_instrument_option_result_docs")["result"]
    assert d.option_contracts([option]) == [Contract("BTC-13JAN23-16000-P", "BTC", 1673596800000, 16000.0, "BTC")]
    assert d.option_contracts([option | {"is_active": False}, option | {"strike": None}]) == []
    assert d.index_price(sample("get_index_price_result_docs")) == 11628.81
    with pytest.raises(ParseError, match="bad_reply"):  # protocol readers raise ParseError; poll.get_parsed makes it a RestError
        d.instrument_rows(sample("error_reply_docs"))
    assert d.instruments_params("BTC", "future") | {"expired": "false"} == sample("get_instruments_future_request_docs")["params"] | {
        "expired": "false"}
    assert [d.currency_of(s) for s in ("BTC-PERPETUAL", "BTC_USDC-PERPETUAL", "NOSUCH-PERPETUAL")] == ["BTC", "USDC", None]


def test_only_changed_values_are_converted_and_written_until_the_next_connection():
    s = stream(OPT)
    data = sample("ticker_option_data_code")
    first = only(s.parse(push(f"ticker.{OPT}.100ms", data))).fields
    assert only(s.parse(push(f"ticker.{OPT}.100ms", data))).fields == {}  # the same ticker again: nothing new
    moved = only(s.parse(push(f"ticker.{OPT}.100ms", data | {"mark_price": 0.22, "timestamp": data["timestamp"] + 100}))).fields
    assert moved == {"mark_price": "0.22", "mark_price_usd": "18292.9868"}
    index = only(s.parse(push(f"ticker.{OPT}.100ms", data | {"mark_price": 0.22, "index_price": 83000}))).fields
    assert index == {"index_price": "83000", "mark_price_usd": "18260", "best_bid_usd": "15811.5", "best_ask_usd": "20376.5"}
    s.on_connect()  # a new connection: everything again
    assert only(s.parse(push(f"ticker.{OPT}.100ms", data))).fields == first
