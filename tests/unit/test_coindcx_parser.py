"""CoinDCX protocol module on the shared samples (tests/samples/coindcx), socket.io framing edge
cases, the field contract, and property-based fuzzing of every parser."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.exchanges import coindcx as c
from workers.runtime.fields import PARSER_FIELDS
from workers.runtime.model import IGNORED, PONG, RECONNECT, REPLY, SUBSCRIBED, Control, ParseError, Update

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "coindcx"
RT = "rest_futures_current_prices_rt_response_docs"
DECIMAL = re.compile(r"-?\d+(\.\d+)?")
NON_NUMERIC = {"original_symbol", "funding_timestamp"}
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str):
    return json.loads(raw(f"{name}.json"))


def event(name: str, payload) -> bytes:
    return b"42" + json.dumps([name, payload]).encode()


def stream(*pairs: str) -> c.SpotTradesStream:
    s = c.SpotTradesStream("spot", "ws://127.0.0.1:1/coindcx", pairs or ("B-BTC_USDT", "G-PEIPEI_USDT"))
    assert s.on_connect() == []
    return s


def well_formed(updates: list[Update]) -> None:
    for u in updates:
        assert isinstance(u, Update) and isinstance(u.symbol, str) and type(u.event_ts_ms) is int
        assert set(u.fields) <= PARSER_FIELDS, set(u.fields) - PARSER_FIELDS
        for k, v in u.fields.items():
            if v is None:  # a field deleted from the hash: only an emptied book side
                assert k in ("best_bid", "best_ask"), k
                continue
            assert isinstance(v, str)
            if k == "funding_timestamp":
                assert ISO_MS.fullmatch(v), v
            elif k not in NON_NUMERIC:
                assert DECIMAL.fullmatch(v), (k, v)  # finite, no exponent, no NaN
        if "ltp" in u.fields:
            assert float(u.fields["ltp"]) > 0


# -- endpoints -------------------------------------------------------------------------------


def test_endpoints_and_limits_are_the_documented_ones():
    assert c.socketio_url("wss://stream.coindcx.com") == "wss://stream.coindcx.com/socket.io/?EIO=4&transport=websocket"
    assert c.socketio_url("ws://127.0.0.1:9/coindcx/") == "ws://127.0.0.1:9/coindcx/socket.io/?EIO=4&transport=websocket"
    assert c.socketio_url(c.socketio_url("ws://h")) == c.socketio_url("ws://h")
    assert c.RT_PRICES_PATH == "/market_data/v3/current_prices/futures/rt"
    assert c.active_instruments_params() == {"margin_currency_short_name[]": "USDT"}
    assert c.instrument_details_params("B-BTC_USDT") == {"pair": "B-BTC_USDT", "margin_currency_short_name": "USDT"}
    assert (c.RATE_LIMIT_PER_S, c.RATE_LIMIT_PER_MIN) == (16, 960)


@pytest.mark.parametrize("value, sign, expected", [
    (5e-05, c.ANY, "0.00005"), (-9.115e-05, c.ANY, "-0.00009115"), ("5e-5", c.ANY, "0.00005"), ("7.009e-9", c.ANY, "0.000000007009"),
    (0.1 + 0.2, c.ANY, "0.3"), (358042914.374195, c.NONNEG, "358042914.374195"), (8, c.POSITIVE, "8"),
    ("81090.88000000", c.POSITIVE, "81090.88000000"), ("+1.5", c.ANY, "1.5"), (".5", c.ANY, "0.5"), ("-0", c.NONNEG, "-0"),
    ("0.00000000", c.NONNEG, "0.00000000"),
])
def test_dec_writes_plain_decimals(value, sign, expected):
    assert c.dec(value, "x", sign) == expected


@pytest.mark.parametrize("value, sign", [
    ("NaN", c.ANY), ("inf", c.ANY), (float("nan"), c.ANY), (float("inf"), c.ANY), ("1_000", c.ANY), (" 1", c.ANY), ("", c.ANY),
    ("0x10", c.ANY), (True, c.ANY), (None, c.ANY), ([1], c.ANY), ("1e400", c.ANY), (1e-300, c.ANY), (10**50, c.ANY),
    (-1, c.NONNEG), ("-0.1", c.NONNEG), (0, c.POSITIVE), ("0.0", c.POSITIVE), ("9" * 41, c.ANY),
])
def test_dec_refuses_what_would_corrupt_a_hash(value, sign):
    with pytest.raises(ParseError):
        c.dec(value, "x", sign)


def test_ticker_time_in_seconds_or_milliseconds():
    assert c.ticker_ms(1788461211, "t") == 1788461211000  # what the wire sends [U]
    assert c.ticker_ms(1783424912907, "t") == 1783424912907  # what the docs say
    assert c.epoch_ms(1705516416271.6133, "RT") == 1705516416271  # fractional ms
    for bad in (0, -5, "1788461211", None, True, 10**15):
        with pytest.raises(ParseError):
            c.ticker_ms(bad, "t")


# -- futures REST ----------------------------------------------------------------------------


def test_rt_docs_sample():
    fp = c.FuturesPrices(["B-NTRN_USDT", "B-1000SHIB_USDT", "B-BTC_USDT"])
    res = fp.parse(sample(RT))
    assert res.errors == [] and res.missing == ["B-BTC_USDT"] and fp.version == 54009972
    ntrn, shib = res.updates
    assert ntrn.symbol == "B-NTRN_USDT" and ntrn.event_ts_ms == 1720429586000  # max(btST, bmST)
    assert ntrn.fields == {
        "ltp": "0.4012", "mark_price": "0.40114525", "current_funding_rate": "0.00005", "estimated_funding_rate": "0.00005",
        "funding_rate": "0.00005", "high_24h": "0.4027", "low_24h": "0.3525", "volume_24h": "18568384.9349",
        "price_change_percent": "4.834", "funding_timestamp": "2024-07-08T09:06:26.580Z", "original_symbol": "B-NTRN_USDT",
    }
    assert shib.event_ts_ms == 1720429586359  # btST is the later one here
    assert shib.fields["estimated_funding_rate"] == shib.fields["funding_rate"] == "-0.00009115"
    assert shib.fields["current_funding_rate"] == "-0.00011894"
    well_formed(res.updates)
    assert fp.parse(raw(f"{RT}.json")).updates == []  # bytes accepted; nothing changed: nothing written


def test_rt_emits_on_change_or_newer_time_only():
    fp = c.FuturesPrices(["B-NTRN_USDT", "B-1000SHIB_USDT"])
    body = sample(RT)
    fp.parse(body)
    body = copy.deepcopy(body)
    body["ts"] += 1000  # a new reply, same per-pair times and values: an edge-cached repeat
    assert fp.parse(body).updates == []
    body["prices"]["B-NTRN_USDT"]["ls"] = 0.4013
    [u] = fp.parse(body).updates
    assert u.symbol == "B-NTRN_USDT" and u.fields["ltp"] == "0.4013" and u.fields["funding_timestamp"] == "2024-07-08T09:06:27.580Z"
    body["prices"]["B-1000SHIB_USDT"]["btST"] += 5
    [u] = fp.parse(body).updates
    assert u.symbol == "B-1000SHIB_USDT" and u.event_ts_ms == 1720429586364


def test_rt_funding_interval_goes_out_with_the_next_reply():
    fp = c.FuturesPrices(["B-NTRN_USDT"])
    fp.parse(sample(RT))
    fp.set_funding_interval("B-NTRN_USDT", 4)
    [u] = fp.parse(sample(RT)).updates
    assert u.fields["funding_interval_hours"] == "4"
    assert fp.parse(sample(RT)).updates == []
    with pytest.raises(ParseError):
        fp.set_funding_interval("B-NTRN_USDT", 0)


def test_rt_missing_keys_and_no_ltp_before_a_trade():
    fp = c.FuturesPrices(["B-UNI_USDT"])
    body = {"ts": 1707384027242, "vs": 1, "prices": {"B-UNI_USDT": {"mp": 2.875, "bmST": 1707384027000}}}
    [u] = fp.parse(body).updates  # no `ls` yet: no ltp, but the mark is real and written
    assert u.fields == {"mark_price": "2.875", "original_symbol": "B-UNI_USDT"}
    body["prices"]["B-UNI_USDT"] = {"ls": 2.9, "btST": 1707384028000}
    [u] = fp.parse(body).updates
    assert u.fields == {"ltp": "2.9", "original_symbol": "B-UNI_USDT"}  # no funding values: no funding_timestamp
    body["prices"]["B-UNI_USDT"] = {"mp": 2.876, "bmST": 1707384029000}
    [u] = fp.parse(body).updates
    assert u.fields == {"mark_price": "2.876", "original_symbol": "B-UNI_USDT"}
    body["prices"]["B-UNI_USDT"] = {"ls": 0, "mp": 0, "h": 0, "l": 0, "v": 0, "btST": 1707384030000}  # zero prices = none
    [u] = fp.parse(body).updates
    assert u.fields == {"volume_24h": "0", "original_symbol": "B-UNI_USDT"}
    body["prices"]["B-UNI_USDT"] = {}
    assert fp.parse(body).updates == []


def test_rt_bad_instrument_is_reported_and_the_others_kept():
    fp = c.FuturesPrices(["B-NTRN_USDT", "B-1000SHIB_USDT", "B-X_USDT", "B-Y_USDT"])
    body = copy.deepcopy(sample(RT))
    body["prices"]["B-NTRN_USDT"]["ls"] = "NaN"
    body["prices"]["B-X_USDT"] = [1, 2]
    body["prices"]["B-Y_USDT"] = {"ls": 1.0, "btST": "soon"}
    res = fp.parse(body)
    assert [u.symbol for u in res.updates] == ["B-1000SHIB_USDT"]
    assert sorted((e.kind, e.detail.split(":")[0]) for e in res.errors) == [
        ("bad_frame", "B-X_USDT"), ("bad_value", "B-NTRN_USDT"), ("bad_value", "B-Y_USDT")]


@pytest.mark.parametrize("body", [b"not json", [], {"ts": 1720429586580}, {"prices": {}}, {"prices": [], "ts": 1720429586580},
                                  {"prices": {}, "ts": "now"}, None])
def test_rt_unusable_reply_is_one_parse_error(body):
    with pytest.raises(ParseError):
        c.FuturesPrices(["B-BTC_USDT"]).parse(body)


def test_active_instruments_sample():
    ids = c.parse_active_instruments(sample("rest_futures_active_instruments_USDT_response_docs"))
    assert len(ids) == 12 and "B-BTCDOM_USDT" in ids
    for bad in ({"a": 1}, [], ["B-BTC_USDT", 5], [""], b"<html>"):
        with pytest.raises(ParseError):
            c.parse_active_instruments(bad)


def test_instrument_details_sample_and_the_wrong_pair_quirk():
    body = sample("rest_futures_instrument_response_docs")
    assert c.parse_instrument_details(body, "B-AAVE_USDT") == c.InstrumentDetails("B-AAVE_USDT", "active", "8")
    with pytest.raises(ParseError) as exc:
        c.parse_instrument_details(body, "B-NOPE_USDT")  # the answer of an unknown pair: another pair's details [U]
    assert exc.value.kind == c.WRONG_PAIR
    no_freq = copy.deepcopy(body)
    del no_freq["instrument"]["funding_frequency"]
    for bad in (no_freq, {}, [], {"instrument": []}):
        with pytest.raises(ParseError):
            c.parse_instrument_details(bad, "B-AAVE_USDT")


# -- spot REST -------------------------------------------------------------------------------


def test_markets_details_sample_keeps_the_swapped_naming_straight():
    markets = c.parse_markets_details(sample("rest_markets_details_response_docs"))
    assert markets == {"B-XTZ_BTC": c.SpotMarket("B-XTZ_BTC", "XTZBTC", base="XTZ", quote="BTC", status="active")}
    for bad in ({}, [], [{"pair": 1}]):
        with pytest.raises(ParseError):
            c.parse_markets_details(bad)


def test_ticker_docs_sample_with_ltp_before_the_first_trade():
    t = c.SpotTicker({"REQBTC": "B-REQ_BTC"})
    [u] = t.parse(sample("rest_ticker_response_docs"), ltp_for={"B-REQ_BTC"}).updates
    assert u.symbol == "B-REQ_BTC" and u.event_ts_ms == 1783424912907
    assert u.fields == {"ltp": "0.00002663", "best_bid": "0.00002663", "best_ask": "0.00002669", "high_24h": "0.00002799",
                        "low_24h": "0.00002626", "turnover_24h": "14.10", "price_change_percent": "-1.621",
                        "original_symbol": "B-REQ_BTC"}
    assert t.parse(sample("rest_ticker_response_docs"), ltp_for={"B-REQ_BTC"}).updates == []  # unchanged


def test_ticker_capture_seconds_empty_book_and_no_ltp_after_trades():
    t = c.SpotTicker({"BTCUSDT": "B-BTC_USDT", "ALGOBTC": "B-ALGO_BTC", "ETHUSDT": "B-ETH_USDT"})
    res = t.parse(raw("rest_ticker_response_live_3rows_thirdparty_capture.json"), ltp_for={"B-ALGO_BTC"})
    assert res.errors == [] and res.missing == ["B-ETH_USDT"]
    algo, btc = res.updates
    assert algo.event_ts_ms == btc.event_ts_ms == 1788461211000  # seconds on the wire
    assert algo.fields["best_bid"] is None and algo.fields["best_ask"] is None  # "0.00000000": an empty book, deleted
    assert algo.fields["ltp"] == "0.00000127"
    assert "ltp" not in btc.fields and btc.fields["best_bid"] == "81024.45000000"  # its trades come from the socket
    assert btc.fields["turnover_24h"] == "1343065162.46099860"
    well_formed(res.updates)


def test_ticker_writes_a_pair_that_never_traded_without_ltp_and_reports_bad_rows():
    t = c.SpotTicker({"AUSDT": "B-A_USDT", "BUSDT": "B-B_USDT"})
    rows = [{"market": "AUSDT", "last_price": "0.00000000", "bid": "1", "timestamp": 1788461211},
            {"market": "BUSDT", "last_price": "1", "bid": "-1", "timestamp": 1788461211},
            "junk", {"market": 5}]
    res = t.parse(rows, ltp_for={"B-A_USDT", "B-B_USDT"})
    [a] = res.updates
    assert a.fields == {"best_bid": "1", "original_symbol": "B-A_USDT"}  # its quote is real; no trade, no ltp
    assert [e.detail.split(":")[0] for e in res.errors] == ["B-B_USDT"]
    with pytest.raises(ParseError):
        t.parse({"market": "AUSDT"})


# -- socket.io stream ------------------------------------------------------------------------


def wire_frames() -> list[tuple[str, str]]:
    out = []
    for line in raw("ws_wire_frames_eio4_thirdparty_capture.txt").decode().splitlines():
        if line[:3] in ("S> ", "C> "):
            out.append((line[0], line[3:]))
    return out


def test_replays_the_captured_eio4_session():
    s = stream("B-ETH_USDT")
    frames = wire_frames()
    server = [f for who, f in frames if who == "S"]
    client = [f for who, f in frames if who == "C"]
    ctl = s.parse(server[0].encode())
    assert ctl == Control(REPLY, ctl.detail, frames=(client[0],)) and client[0] == "40"
    assert s.silence_timeout == 45.0 and s.sid == "cJ0PfU62v2igyWOtAbjK"  # pingInterval + pingTimeout
    ctl = s.parse(server[1].encode())
    assert ctl.kind == SUBSCRIBED and ctl.frames == ('42["join",{"channelName":"B-ETH_USDT@trades"}]',)
    assert json.loads(ctl.frames[0][2:])[1].keys() == sample("join_request").keys()
    assert json.loads(client[1][2:])[1].keys() == sample("join_request").keys()  # the capture's join, same shape
    assert s.parse(server[2].encode()) == Control(IGNORED)  # a depth snapshot: not ours
    assert s.parse(server[3].encode()) == Control(PONG, "server ping", frames=("3",))
    assert client[2] == "3"
    assert s.ping_frame() is None and s.ping_interval is None  # never ping first: it kills the socket [U]
    assert s.on_connect() == [] and s.silence_timeout is None  # the next connection starts from the configured window


def test_spot_host_heartbeat_window():
    s = stream()
    s.parse(b'0{"sid":"x","upgrades":[],"pingInterval":45000,"pingTimeout":60000,"maxPayload":1000000}')
    assert s.silence_timeout == 105.0


def test_new_trade_capture_and_docs_forms():
    s = stream()
    [u] = s.parse(b'42["new-trade",' + raw("ws_envelope_new_trade_spot_thirdparty_capture.json").strip() + b"]")
    assert u == Update("B-BTC_USDT", {"ltp": "81090.88000000", "original_symbol": "B-BTC_USDT"}, 1788457449084)
    doc = sample("ws_spot_new_trade_docs")  # the docs print `data` as an object
    [u] = s.parse(event(doc["event"], doc))
    assert u == Update("G-PEIPEI_USDT", {"ltp": "0.000000007037", "original_symbol": "G-PEIPEI_USDT"}, 1783426736551)
    assert s.traded == {"B-BTC_USDT", "G-PEIPEI_USDT"}


@pytest.mark.parametrize("name", ["ws_spot_price_change_docs", "ws_spot_depth_snapshot_docs", "ws_spot_depth_update_docs",
                                  "ws_spot_currentPrices_update_docs", "ws_spot_priceStats_update_docs"])
def test_other_documented_spot_events_are_ignored(name):
    doc = sample(name)
    assert stream().parse(event(doc["event"], doc)) == Control(IGNORED)


@pytest.mark.parametrize("frame", [
    b"41", b"1", b'44{"message":"Not authorized"}', b"42nope", b"42{}", b"42[]", b"42[1]", b"", b"x", b"4", b"49",
    b"\xff\xfe", b"0{}", b'0{"pingInterval":"25000","pingTimeout":20000}', b"0nope", b'42["new-trade",',
])
def test_broken_or_closing_packets_drop_the_connection(frame):
    assert stream().parse(frame).kind == RECONNECT


@pytest.mark.parametrize("frame", [b"3", b"6", b"5", b'43["ok"]', b'42/other,["new-trade",{}]', b"44/x,{}"])
def test_packets_with_nothing_to_do(frame):
    assert stream().parse(frame) == Control(IGNORED)


def test_ping_probe_is_echoed_and_acks_ids_are_skipped():
    s = stream()
    assert s.parse(b"2probe").frames == ("3probe",)
    doc = sample("ws_spot_new_trade_docs")
    [u] = s.parse(b"4212" + json.dumps(["new-trade", doc]).encode())  # an event with an ack id
    assert u.symbol == "G-PEIPEI_USDT"


@pytest.mark.parametrize("payload, kind", [
    (["mystery", {}], "unknown_event"),
    (["new-trade", {"data": json.dumps({"T": 1788457449084, "p": "1", "s": "B-ETH_USDT", "pr": "spot"})}], "unexpected_pair"),
    (["new-trade", {"data": json.dumps({"T": 1705516361108, "p": "0.3473", "s": "B-BTC_USDT", "pr": "f"})}], "unexpected_product"),
    (["new-trade", {"data": json.dumps({"T": 1788457449084, "p": "-1", "s": "B-BTC_USDT"})}], "bad_value"),
    (["new-trade", {"data": json.dumps({"T": 1788457449084, "p": "NaN", "s": "B-BTC_USDT"})}], "bad_value"),
    (["new-trade", {"data": json.dumps({"T": "now", "p": "1", "s": "B-BTC_USDT"})}], "bad_value"),
    (["new-trade", {"data": "{not json"}], "bad_json"),
    (["new-trade", {"data": 5}], "bad_frame"),
    (["new-trade"], "bad_frame"),
])
def test_bad_events_are_parse_errors(payload, kind):
    with pytest.raises(ParseError) as exc:
        stream().parse(b"42" + json.dumps(payload).encode())
    assert exc.value.kind == kind


def test_framing_helpers_round_trip():
    frame = c.join_frame("B-BTC_USDT@trades")
    assert frame == '42["join",{"channelName":"B-BTC_USDT@trades"}]'
    assert c.decode_packet(frame) == c.Packet("4", "2", "/", ["join", {"channelName": "B-BTC_USDT@trades"}], frame[2:])
    assert c.leave_frame("x") == '42["leave",{"channelName":"x"}]'
    assert c.decode_packet("40").data is None and c.decode_packet('40{"sid":"a"}').data == {"sid": "a"}
    assert c.decode_packet('42/admin,7["a"]').nsp == "/admin"
    info = c.parse_open({"sid": "s", "pingInterval": 25000, "pingTimeout": 20000})
    assert info == c.OpenInfo("s", 25.0, 20.0)


# -- the field contract ----------------------------------------------------------------------


def all_sample_updates() -> list[Update]:
    fp = c.FuturesPrices(["B-NTRN_USDT", "B-1000SHIB_USDT"])
    fp.set_funding_interval("B-NTRN_USDT", 8)
    out = list(fp.parse(sample(RT)).updates)
    t = c.SpotTicker({"REQBTC": "B-REQ_BTC", "BTCUSDT": "B-BTC_USDT", "ALGOBTC": "B-ALGO_BTC", "0GUSDT": "B-0G_USDT"})
    out += t.parse(sample("rest_ticker_response_docs"), ltp_for={"B-REQ_BTC"}).updates
    out += t.parse(sample("rest_ticker_response_live_3rows_thirdparty_capture"), ltp_for={"B-ALGO_BTC", "B-0G_USDT"}).updates
    s = stream()
    out += s.parse(b'42["new-trade",' + raw("ws_envelope_new_trade_spot_thirdparty_capture.json").strip() + b"]")
    return out


def test_every_field_written_is_in_the_contract():
    updates = all_sample_updates()
    written = {k for u in updates for k in u.fields}
    assert written <= PARSER_FIELDS, written - PARSER_FIELDS
    assert {"ltp", "mark_price", "funding_rate", "current_funding_rate", "estimated_funding_rate", "funding_timestamp",
            "funding_interval_hours", "best_bid", "best_ask", "turnover_24h", "price_change_percent"} <= written
    well_formed(updates)
    assert {c.FUTURES_VOLUME_FIELD, c.SPOT_VOLUME_FIELD} <= PARSER_FIELDS


# -- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.integers()
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["5e-5", "-9.115e-05", "0", "0.00000000", "1e400", "NaN", "-0", "81090.88000000", "1_0", ".5"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                           max_leaves=12)


def mostly(good, bad):
    """`good` four times in five, `bad` otherwise (a plain `|` would weigh every leaf strategy alike)."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda i: bad if i == 0 else good)


# Mostly plausible values, so that fuzzing reaches the update paths, with hostile ones mixed in.
good_times = st.integers(min_value=1_700_000_000_000, max_value=1_900_000_000_000) | st.floats(min_value=1.7e12, max_value=1.9e12)
times = mostly(good_times, st.integers(min_value=-1, max_value=10**15) | st.floats() | st.none() | st.text(max_size=5))
good_numbers = (st.floats(min_value=1e-9, max_value=1e7) | st.integers(min_value=0, max_value=10**9)
                | st.decimals(min_value=-10**7, max_value=10**7, allow_nan=False, places=8).map(str) | st.floats(min_value=-1, max_value=1))
numbers = mostly(good_numbers, scalars)
PAIRS = ["B-BTC_USDT", "B-ETH_USDT", "G-PEIPEI_USDT", "B-X_USDT"]

rt_entry = mostly(st.fixed_dictionaries({"ls": numbers, "btST": times}, optional={
    k: numbers for k in ("mp", "fr", "efr", "h", "l", "v", "pc", "skw", "mkt")} | {"bmST": times}), json_values)
rt_body = mostly(st.fixed_dictionaries({"ts": times, "prices": st.dictionaries(st.sampled_from(PAIRS), rt_entry, max_size=4)},
                                       optional={"vs": json_values}), json_values)


def check_result(result) -> None:
    if isinstance(result, Control):
        assert all(isinstance(f, str) for f in result.frames)
        return
    if isinstance(result, c.PollResult):
        assert all(isinstance(e, ParseError) for e in result.errors)
        result = result.updates
    assert isinstance(result, list)
    well_formed(result)


FP = c.FuturesPrices(PAIRS[:3])  # state carries over between examples, as it does between polls


@FUZZ
@given(body=rt_body)
def test_fuzz_futures_prices(body):
    try:
        check_result(FP.parse(body))
    except ParseError:
        pass


TICKER = c.SpotTicker({"BTCUSDT": "B-BTC_USDT", "ETHUSDT": "B-ETH_USDT"})
ticker_time = mostly(st.integers(min_value=1_700_000_000, max_value=1_900_000_000), times)  # seconds, as on the wire, or ms
ticker_row = st.fixed_dictionaries({"market": st.sampled_from(["BTCUSDT", "ETHUSDT", "XUSDT"]), "timestamp": ticker_time}, optional={
    k: numbers for k in ("change_24_hour", "high", "low", "volume", "last_price", "bid", "ask")})


@FUZZ
@given(rows=st.lists(ticker_row | json_values, max_size=5) | json_values, ltp_for=st.sets(st.sampled_from(PAIRS)))
def test_fuzz_spot_ticker(rows, ltp_for):
    try:
        check_result(TICKER.parse(rows, ltp_for=ltp_for))
    except ParseError:
        pass


@FUZZ
@given(body=json_values | st.binary(max_size=40), pair=st.sampled_from(PAIRS))
def test_fuzz_rest_helpers(body, pair):
    for fn in (c.parse_active_instruments, c.parse_markets_details, lambda b: c.parse_instrument_details(b, pair)):
        try:
            fn(body)
        except ParseError:
            pass


STREAM = c.SpotTradesStream("fuzz", "ws://x", PAIRS[:3])
trade_data = st.fixed_dictionaries({"T": times, "p": numbers, "s": st.sampled_from(PAIRS)}, optional={
    "q": numbers, "m": numbers, "pr": mostly(st.just("spot"), st.sampled_from(["f", "SPOT"]) | scalars)})
trade_data = mostly(trade_data, st.dictionaries(st.text(max_size=3), scalars))
trade_payload = st.fixed_dictionaries({"event": st.just("new-trade"), "data": mostly(trade_data.map(json.dumps), trade_data | json_values)})
events = st.tuples(mostly(st.just("new-trade"), st.sampled_from(["price-change", "join", "", "depth-update"])),
                   mostly(trade_payload, json_values)).map(lambda t: b"42" + json.dumps(list(t)).encode())
ms = mostly(st.integers(min_value=1, max_value=100_000), json_values)
socketio_frames = mostly(events, st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(str.encode),
    st.tuples(st.sampled_from(["", "0", "2", "3", "4", "40", "41", "42", "43", "44", "42/x,", "4212"]),
              json_values.map(json.dumps)).map(lambda t: (t[0] + t[1]).encode()),
    st.fixed_dictionaries({"sid": scalars, "pingInterval": ms, "pingTimeout": ms}).map(lambda d: b"0" + json.dumps(d).encode()),
))


@FUZZ
@given(frame=socketio_frames)
def test_fuzz_spot_trades_stream(frame):
    try:
        result = STREAM.parse(frame)
    except ParseError:
        return
    check_result(result)
    assert STREAM.silence_timeout is None or STREAM.silence_timeout > 0
