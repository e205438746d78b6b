"""Fault 3, property-based: no input makes an exchange parser raise anything but ParseError.

Every stream kind the feeds use is fuzzed with arbitrary bytes, arbitrary JSON
and structured-but-wrong frames (the right envelope with hostile field values).
Whatever a parser returns must be usable by the runtime: a list of Updates with
string fields and an int event time, or a Control.
"""

from __future__ import annotations

import json
import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.exchanges import binance, bybit, delta, deribit, okx
from workers.runtime.declare import DERIVATIVE, SPOT
from workers.runtime.model import Control, ParseError, Update

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Parser state (books, merged tickers) deliberately carries over between examples, as it does on a live socket.

SYM = "BTCUSDT"
OPT = "BTC-27DEC24-65000-C"
DOPT = "C-BTC-65000-271224"
ROPT = "BTC-27DEC26-100000-C"


def bybit_streams():
    spot = bybit.SpotStream("spot", "ws://x", [SYM, "ETHUSDT"], book_top=True)
    linear = bybit.LinearStream("linear", "ws://x", [SYM], depth=50, levels=5)
    linear1 = bybit.LinearStream("linear1", "ws://x", [SYM], depth=1, levels=1)
    option = bybit.OptionStream("option", "ws://x", [OPT])
    return {"bybit_spot": spot, "bybit_linear": linear, "bybit_linear_l1": linear1, "bybit_option": option}


def delta_streams():
    return {
        "delta_spot": delta.DeltaStream("s", "ws://x", "spot", {"ticker": ["BTC_USDT"], "trades": ["BTC_USDT"],
                                                                "index": [".DEXBTUSD"]}, keys={".DEXBTUSD": "BTCUSD"}),
        "delta_futures": delta.DeltaStream("f", "ws://x", "futures", {"ticker": ["BTCUSD"], "trades": ["BTCUSD"],
                                                                      "funding": ["BTCUSD"]}),
        "delta_options": delta.DeltaStream("o", "ws://x", "options", {"ticker": [DOPT], "trades": [DOPT]}),
    }


def binance_streams():
    return {"binance_spot": binance.spot_streams("ws://x", [SYM, "ETHUSDT"])[0],
            "binance_futures_market": binance.futures_streams("ws://x", [SYM])[0],
            "binance_futures_public": binance.futures_streams("ws://x", [SYM])[1]}


def okx_streams():
    return {
        "okx_spot": okx.OkxStream("s", "ws://x", SPOT, ["BTC-USDT", "ETH-USDT"]),
        "okx_swap": okx.OkxStream("w", "ws://x", DERIVATIVE, ["BTC-USDT-SWAP", "BTC-USD-SWAP"],
                                  info={"BTC-USD-SWAP": okx.SwapInfo("BTC-USD", True, 100.0)}),
    }


def deribit_streams():
    return {
        "deribit_options": deribit.DeribitStream("o", "ws://x", [ROPT, "XRP_USDC-30JUN23-0d625-C"]),
        "deribit_futures": deribit.DeribitStream("f", "ws://x", ["BTC-PERPETUAL", "BTC-27DEC26", "BTC_USDC-PERPETUAL"]),
    }


STREAMS = {**bybit_streams(), **delta_streams(), **binance_streams(), **deribit_streams(), **okx_streams()}


DELETABLE = {"best_bid", "best_ask", "bid_size", "ask_size", "bid_iv", "ask_iv", "spread", "best_bid_usd", "best_ask_usd"}


def check(stream, raw: bytes) -> None:
    """The contract: ParseError or a well-formed result."""
    try:
        result = stream.parse(raw)
    except ParseError:
        return
    if isinstance(result, Control):
        assert all(isinstance(f, str) for f in result.frames)
        return
    assert isinstance(result, list), type(result)
    for upd in result:
        assert isinstance(upd, Update)
        assert isinstance(upd.symbol, str) and type(upd.event_ts_ms) is int
        # None deletes a field: only quotes that no longer exist (an emptied book side, its IV, the spread).
        assert all(isinstance(k, str) and (isinstance(v, str) or (v is None and k in DELETABLE))
                   for k, v in upd.fields.items()), upd.fields
        if "ltp" in upd.fields:  # NaN, infinite or negative prices never reach Redis
            ltp_text = upd.fields["ltp"]
            assert ltp_text is not None
            ltp = float(ltp_text)
            assert math.isfinite(ltp) and ltp >= 0 and not ltp_text.startswith("-"), upd.fields


@pytest.fixture(params=sorted(STREAMS))
def stream(request):
    s = STREAMS[request.param]
    s.on_connect()  # the runtime always connects before it parses
    return s


# -- strategies ---------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
numbers_as_text = st.sampled_from(["NaN", "nan", "inf", "-inf", "-1", "0", "", " ", "1e999", "1e-999", "0x10", "1_000",
                                   "²", "١٢٣", "１２", "1.5", "-0", "9" * 400, "12abc", "null"])
hostile = scalars | numbers_as_text | st.lists(scalars, max_size=5) | st.dictionaries(st.text(max_size=5), scalars, max_size=4)
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=8), kids, max_size=6),
                           max_leaves=30)


def levels():
    return st.lists(st.lists(hostile | numbers_as_text, min_size=0, max_size=3) | hostile, max_size=4) | hostile


@st.composite
def bybit_frames(draw):
    """Bybit envelopes (data, acks, pongs) whose fields take hostile values."""
    kind = draw(st.sampled_from(["ticker", "book", "book1", "option", "ack", "cmd", "pong"]))
    if kind in ("ack", "cmd", "pong"):
        msg = {"op": draw(st.sampled_from(["subscribe", "ping", "pong", "unsubscribe", "auth"]) | hostile),
               "success": draw(hostile), "ret_msg": draw(hostile | st.just("error:handler not found,topic:tickers.X")),
               "req_id": draw(hostile | st.sampled_from(["sub-0", "sub-1"])),
               "data": draw(st.fixed_dictionaries({"failTopics": hostile, "successTopics": hostile}) | hostile)}
        if kind == "cmd":
            msg["type"] = "COMMAND_RESP"
        return msg
    topic = {"ticker": f"tickers.{SYM}", "book": f"orderbook.50.{SYM}", "book1": f"orderbook.1.{SYM}",
             "option": f"tickers.{OPT}"}[kind]
    fields = ["symbol", "s", "lastPrice", "markPrice", "indexPrice", "fundingRate", "nextFundingTime", "price24hPcnt",
              "highPrice24h", "volume24h", "bidPrice", "delta", "u", "b", "a"]
    data = {f: draw(hostile) for f in draw(st.lists(st.sampled_from(fields), unique=True))}
    if draw(st.booleans()):
        data["symbol" if kind != "book" and kind != "book1" else "s"] = OPT if kind == "option" else SYM
    if kind.startswith("book"):
        data["b"], data["a"] = draw(levels()), draw(levels())
        data["u"] = draw(st.integers(-2, 5) | st.integers(1, 2**63) | hostile)  # 1: the restart snapshot
    ts = draw(st.integers(1, 2**63) | st.integers(1, 10**16).map(str) | hostile)  # the docs also show ts as a string
    return {"topic": draw(st.just(topic) | hostile), "type": draw(st.sampled_from(["snapshot", "delta"]) | hostile),
            "ts": ts, "data": draw(st.just(data) | hostile)}


@st.composite
def delta_frames(draw):
    """Delta public-socket envelopes (ticker, trades, funding, index, notices, acks) with hostile values."""
    kind = draw(st.sampled_from(["ticker", "trades", "funding_rate", "spot_price", "product_updates", "subscriptions",
                                 "heartbeat"]))
    sym = draw(st.sampled_from(["BTCUSD", "BTC_USDT", DOPT, ".DEXBTUSD"]) | hostile)
    ts = draw(st.integers(1, 2**63) | numbers_as_text | hostile)
    if kind == "ticker":
        entry = {"s": sym, "ohlc": draw(st.lists(hostile, max_size=5) | hostile), "m": draw(hostile),
                 "oi": draw(st.lists(hostile, max_size=2) | hostile), "q": draw(st.lists(hostile, max_size=5) | hostile),
                 "g": draw(st.lists(hostile, max_size=5) | hostile), "qiv": draw(st.lists(hostile, max_size=3) | hostile),
                 "to": draw(st.lists(hostile, max_size=2) | hostile), "sp": draw(hostile)}
        return {"type": "ticker", "sy": sym, "ts": ts, "sp": draw(hostile), "d": draw(st.just([entry]) | hostile)}
    if kind == "trades":
        return {"type": kind, "sy": sym, "p": draw(hostile), "s": draw(hostile), "r": draw(hostile),
                "t": draw(st.integers(1, 2**63) | numbers_as_text | hostile), "ts": ts}
    if kind == "funding_rate":
        return {"type": kind, "sy": sym, "fr": draw(hostile), "ts": ts}
    if kind == "spot_price":
        return {"type": kind, "sy": sym, "p": draw(hostile), "ts": ts}
    if kind == "product_updates":
        return {"type": kind, "event": draw(st.sampled_from(["market_disruption", "start_auction", "finish_auction"]) | hostile),
                "product": draw(st.fixed_dictionaries({"id": hostile, "symbol": hostile, "trading_status": hostile}) | hostile),
                "timestamp": ts}
    if kind == "subscriptions":
        chans = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["ticker", "trades", "funding_rate", "spot_price"])
                                                | hostile, "symbols": hostile, "error": hostile | st.text(string.printable)})
                         | hostile, max_size=3)
        return {"type": kind, "channels": draw(chans | hostile)}
    return {"type": draw(st.sampled_from(["heartbeat", "pong", "unsubscribed"]) | hostile)}


@st.composite
def binance_frames(draw):
    """Binance events (raw or in the combined wrapper), acks and error replies with hostile values."""
    kind = draw(st.sampled_from(["trade", "aggTrade", "bookTicker", "spotBook", "24hrTicker", "markPriceUpdate",
                                 "serverShutdown", "ack", "error"]))
    if kind == "ack":
        return {"result": draw(hostile), "id": draw(st.integers(-1, 3) | hostile)}
    if kind == "error":
        return {"code": draw(hostile), "msg": draw(hostile), "id": draw(st.integers(-1, 3) | hostile)}
    names = ["s", "E", "T", "p", "q", "b", "B", "a", "A", "u", "v", "h", "l", "o", "P", "i", "r"]
    msg = {f: draw(hostile) for f in draw(st.lists(st.sampled_from(names), unique=True))}
    if draw(st.booleans()):
        msg["s"] = draw(st.sampled_from([SYM, "ETHUSDT", "btcusdt"]))
    if kind != "spotBook":
        msg["e"] = kind
    else:
        msg["u"] = draw(st.integers(0, 2**63) | hostile)
    if draw(st.booleans()):
        return {"stream": draw(hostile), "data": msg}
    return msg


@st.composite
def deribit_frames(draw):
    """Deribit JSON-RPC frames (ticker and trades pushes, heartbeats, replies) with hostile values."""
    kind = draw(st.sampled_from(["ticker", "trades", "heartbeat", "reply"]))
    sym = draw(st.sampled_from([ROPT, "BTC-PERPETUAL", "BTC-27DEC26", "BTC_USDC-PERPETUAL"]) | hostile)
    if kind == "heartbeat":
        return {"jsonrpc": "2.0", "method": "heartbeat", "params": draw(st.fixed_dictionaries(
            {"type": st.sampled_from(["test_request", "heartbeat"]) | hostile}) | hostile)}
    if kind == "reply":
        body = draw(st.fixed_dictionaries({"result": hostile | st.lists(st.sampled_from(
            [f"ticker.{ROPT}.100ms", "ticker.BTC-PERPETUAL.100ms"]) | hostile, max_size=4)})
            | st.fixed_dictionaries({"error": st.fixed_dictionaries({"code": st.sampled_from([10028, 11050]) | hostile,
                                                                     "message": hostile}) | hostile}))
        return {"jsonrpc": "2.0", "id": draw(st.integers(0, 4) | hostile), **body}
    channel = draw(st.just(f"{kind}.{sym}.100ms") | hostile)
    if kind == "trades":
        trade = {f: draw(hostile) for f in draw(st.lists(st.sampled_from(["price", "timestamp", "amount"]), unique=True))}
        trade["instrument_name"] = draw(st.just(sym) | hostile)
        data = draw(st.lists(st.just(trade) | hostile, max_size=3) | hostile)
    else:
        fields = ["mark_price", "index_price", "best_bid_price", "best_ask_price", "best_bid_amount", "best_ask_amount",
                  "open_interest", "mark_iv", "bid_iv", "ask_iv", "underlying_price", "funding_8h", "stats", "greeks", "timestamp"]
        data = {f: draw(hostile | st.floats(allow_nan=False, allow_infinity=False, min_value=1e290, max_value=1e300))
                for f in draw(st.lists(st.sampled_from(fields), unique=True))}
        data["instrument_name"] = draw(st.just(sym) | hostile)
        data["timestamp"] = draw(st.integers(1, 2**63) | hostile)
        data["greeks"] = draw(st.fixed_dictionaries({g: hostile for g in ("delta", "gamma", "theta")}) | hostile)
        data["stats"] = draw(st.fixed_dictionaries({s: hostile for s in ("volume", "high", "price_change", "volume_usd")}) | hostile)
    return {"jsonrpc": "2.0", "method": "subscription", "params": draw(st.fixed_dictionaries(
        {"channel": st.just(channel), "data": st.just(data)}) | hostile)}


@st.composite
def okx_frames(draw):
    """OKX pushes ({"arg","data":[..]}) and events (acks, errors, notices) with hostile values."""
    kind = draw(st.sampled_from(["tickers", "trades", "mark-price", "index-tickers", "funding-rate", "open-interest",
                                 "event"]))
    if kind == "event":
        return {"event": draw(st.sampled_from(["subscribe", "error", "notice", "unsubscribe"]) | hostile),
                "arg": draw(st.fixed_dictionaries({"channel": hostile, "instId": hostile}) | hostile),
                "code": draw(st.sampled_from(["60018", "64008", "60012"]) | hostile),
                "msg": draw(st.sampled_from(["channel:tickers,instId:BTC-USDT doesn't exist",
                                             "Wrong URL or channel:index-tickers,instId:BTC-USD doesn't exist"])
                            | hostile | st.text(string.printable))}
    inst = draw(st.sampled_from(["BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-SWAP", "BTC-USD"]) | hostile)
    fields = ["instId", "last", "askPx", "askSz", "bidPx", "bidSz", "open24h", "high24h", "low24h", "vol24h", "volCcy24h",
              "px", "sz", "markPx", "idxPx", "fundingRate", "fundingTime", "nextFundingTime", "oi", "oiCcy", "oiUsd"]
    row = {f: draw(hostile | numbers_as_text) for f in draw(st.lists(st.sampled_from(fields), unique=True))}
    row["ts"] = draw(st.integers(1, 10**16).map(str) | numbers_as_text | hostile)
    return {"arg": draw(st.just({"channel": kind, "instId": inst}) | hostile),
            "data": draw(st.just([row]) | st.lists(hostile, max_size=2) | hostile)}


# -- properties ---------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(stream, raw):
    check(stream, raw)


@FUZZ
@given(value=json_values)
def test_arbitrary_json(stream, value):
    check(stream, json.dumps(value).encode())


@FUZZ
@given(frame=bybit_frames() | delta_frames() | binance_frames() | deribit_frames() | okx_frames())
def test_structured_but_wrong_frames(stream, frame):
    check(stream, json.dumps(frame).encode())


HOSTILE_EXAMPLES = [
    b"[" * 100_000,                                   # nesting deeper than the JSON decoder's recursion limit
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xff\xfe\x00garbage",                             # not UTF-8
    b'{"topic":"tickers.BTCUSDT","ts":1,"type":"snapshot","data":{"symbol":"BTCUSDT","lastPrice":"1' + b"0" * 400 + b'"}}',
    b'{"topic":"tickers.BTCUSDT","ts":1,"type":"snapshot","data":{"symbol":"BTCUSDT","lastPrice":"1","nextFundingTime":"1.5"}}',
    b'{"type":"ticker","sy":"BTCUSD","ts":"\xc2\xb2","d":[]}',  # a Unicode digit where epoch micros belong
    b'{"type":"funding_rate","sy":"BTCUSD","fr":1' + b"0" * 400 + b',"ts":1}',
    b'{"type":"spot_price","sy":".DEXBTUSD","p":1' + b"0" * 400 + b',"ts":1}',
    b'{"op":"subscribe","success":false,"ret_msg":"x","req_id":["unhashable"]}',
    b'{"op":"subscribe","success":true,"data":{"failTopics":5}}',
    b'{"type":"subscriptions","channels":[{"name":"ticker","symbols":5}]}',
    b'{"type":"ticker","sy":"BTCUSD","ts":1,"d":[{"s":"BTCUSD","ohlc":[1,1,1,-5]}]}',  # negative last price
    b'{"type":"ticker","sy":"C-BTC-65000-271224","ts":1,"d":[{"s":"C-BTC-65000-271224","ohlc":[1,1,1,"-0.5"]}]}',
    b'{"type":"trades","sy":"BTCUSD","p":"-5","t":1775800366578410,"ts":1}',  # negative trade price
    b'{"type":"trades","sy":"BTCUSD","p":"1","t":"1' + b"0" * 400 + b'","ts":1}',
    b'{"type":"product_updates","event":"start_auction","product":[{"symbol":"BTCUSD"}],"timestamp":{}}',
    b"pong",
    b'{"arg":{"channel":"tickers","instId":"BTC-USDT-SWAP"},"data":[{"last":"1e300","volCcy24h":"1e300","ts":"1"}]}',
    b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"last":"1","open24h":"1e-320","ts":"1"}]}',
    b'{"arg":{"channel":"funding-rate","instId":"BTC-USD-SWAP"},"data":[{"fundingTime":"9","nextFundingTime":"1'
    + b"0" * 30 + b'","ts":"1"}]}',
    b'{"event":"error","code":"60018","msg":"channel:index-tickers,instId:NOPE doesn\'t exist"}',
    b'{"topic":"orderbook.50.BTCUSDT","ts":"1772694601512","type":"delta","data":{"s":"BTCUSDT","b":[["1","1"]],"a":[],"u":1}}',
    b'{"topic":"orderbook.1.BTCUSDT","ts":"1772694601512","type":"snapshot","data":{"s":"BTCUSDT","b":[["2","1"]],"a":[["1","1"]],"u":9}}',
    b'{"e":"trade","E":1,"s":"BTCUSDT","p":"1' + b"0" * 400 + b'"}',
    b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1","i":"1","r":"","T":99999999999999999999}',
    b'{"u":1,"s":"BTCUSDT","b":"NaN","B":"1","a":"1","A":"1"}',
    b'{"stream":"btcusdt@trade","data":{"stream":"x","data":{"e":"trade"}}}',
    b'{"code":2,"msg":{"deep":[1]},"id":[1]}',
]


@pytest.mark.parametrize("raw", HOSTILE_EXAMPLES, ids=range(len(HOSTILE_EXAMPLES)))
def test_known_hostile_frames(stream, raw):
    check(stream, raw)


def test_option_symbol_with_unicode_digits_is_a_parse_error():
    for text in ("BTC-²JAN25-65000-C", "BTC-1JAN²5-65000-C"):
        with pytest.raises(ParseError):
            bybit.parse_option_symbol(text)
