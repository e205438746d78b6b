from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.exchanges import bybit
from workers.runtime.model import PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError, Update

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "bybit"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def stream(symbols=("BTCUSDT",), book_top=True) -> bybit.SpotStream:
    s = bybit.SpotStream("spot#0", "ws://x", list(symbols), book_top=book_top)
    s.on_connect()
    return s


def test_spot_ticker_sample_maps_to_the_contract():
    [upd] = stream().parse(sample("ticker_spot_snapshot.json"))
    assert isinstance(upd, Update)
    assert upd.symbol == "BTCUSDT" and upd.event_ts_ms == 1672305380595
    assert upd.fields == {
        "ltp": "16363.78", "original_symbol": "BTCUSDT", "high_24h": "16566.64", "low_24h": "16009.19",
        "volume_24h": "5865.470182", "turnover_24h": "95949815.680875", "prev_price_24h": "16443.66",
        "price_change_percent": "-0.49",
    }


def test_book_top_is_written_before_a_ticker_and_names_its_symbol():
    s = stream()
    book = json.loads(sample("orderbook_snapshot.json"))
    book["topic"] = "orderbook.1.BTCUSDT"
    [first] = s.parse(json.dumps(book).encode())  # no trade known yet: no ltp, but the quotes are real
    assert first.fields == {"best_bid": "16493.50", "bid_size": "0.006", "best_ask": "16611.00", "ask_size": "0.029",
                            "original_symbol": "BTCUSDT"}
    s.parse(sample("ticker_spot_snapshot.json"))
    [upd] = s.parse(json.dumps(book).encode())
    assert upd.fields == {"best_bid": "16493.50", "bid_size": "0.006", "best_ask": "16611.00", "ask_size": "0.029"}
    delta = {"topic": "orderbook.1.BTCUSDT", "type": "delta", "ts": 1672304484999,
             "data": {"s": "BTCUSDT", "b": [["16493.50", "0"], ["16494.00", "1.5"]], "a": [], "u": 18521289, "seq": 1}}
    [upd] = s.parse(json.dumps(delta).encode())
    assert upd.fields["best_bid"] == "16494.00" and upd.fields["bid_size"] == "1.5"


@pytest.mark.parametrize("name", ["subscribe_ack_spot.json", "subscribe_ack_linear.json", "subscribe_ack_option.json"])
def test_acks_are_subscribed(name):
    assert stream().parse(sample(name)).kind == SUBSCRIBED


@pytest.mark.parametrize("name", ["pong_spot.json", "pong_linear.json", "pong_option.json"])
def test_pongs(name):
    assert stream().parse(sample(name)).kind == PONG


def test_a_refused_topic_is_dropped_and_the_rest_of_its_request_resent():
    s = bybit.SpotStream("spot#0", "ws://x", ["BTCUSDT", "NOPEUSDT", "ETHUSDT"], book_top=False)
    [frame] = s.on_connect()
    req = json.loads(frame)
    ack = {"success": False, "ret_msg": "error:handler not found,topic:tickers.NOPEUSDT", "conn_id": "c",
           "req_id": req["req_id"], "op": "subscribe"}
    ctl = s.parse(json.dumps(ack).encode())
    assert isinstance(ctl, Control) and ctl.kind == SUB_REJECTED
    assert ctl.items == ("tickers.NOPEUSDT",)
    [resend] = ctl.frames
    assert json.loads(resend)["args"] == ["tickers.BTCUSDT", "tickers.ETHUSDT"]
    # A reconnect no longer asks for the refused topic.
    assert "NOPEUSDT" not in "".join(s.on_connect())


def test_option_fail_topics_are_rejections():
    msg = {"success": True, "conn_id": "x", "type": "COMMAND_RESP",
           "data": {"failTopics": ["tickers.BTC-1JAN30-1-C"], "successTopics": []}}
    ctl = stream().parse(json.dumps(msg).encode())
    assert ctl.kind == SUB_REJECTED and ctl.items == ("tickers.BTC-1JAN30-1-C",)


def test_subscribe_requests_respect_spot_limit_of_10_args():
    s = bybit.SpotStream("spot#0", "ws://x", [f"S{i}USDT" for i in range(12)], book_top=True)
    frames = [json.loads(f) for f in s.on_connect()]
    assert all(len(f["args"]) <= 10 for f in frames)
    assert sum(len(f["args"]) for f in frames) == 24
    assert len({f["req_id"] for f in frames}) == len(frames)


def test_many_symbols_are_sharded_within_21000_chars_per_connection_with_their_topics_together():
    symbols = [f"S{i:04d}USDT" for i in range(1200)]
    streams = bybit.spot_streams("ws://x", symbols, book_top=True)
    assert len(streams) == 3
    assert sum(len(s.topics) for s in streams) == 2400
    for s in streams:
        assert len(json.dumps(s.topics, separators=(",", ":"))) <= bybit.MAX_ARGS_CHARS_PER_CONNECTION
        mine = {t.rsplit(".", 1)[1] for t in s.topics}
        assert all(f"tickers.{sym}" in s.topics and f"orderbook.1.{sym}" in s.topics for sym in mine)
    assert len(bybit.spot_streams("ws://x", symbols[:500], book_top=False)) == 1


def ticker(**data) -> bytes:
    d = {"symbol": "BTCUSDT", "lastPrice": "100.5"} | data
    return json.dumps({"topic": "tickers.BTCUSDT", "ts": 1, "type": "snapshot", "data": d}).encode()


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b'{"topic": "tickers.BTCUSDT", "ts": 1, "data": {', "bad_json"),
        (b"[1, 2, 3]", "bad_frame"),
        (b'"just a string"', "bad_frame"),
        (ticker(lastPrice=100.5), "bad_type"),
        (ticker(lastPrice="NaN"), "bad_value"),
        (ticker(lastPrice="-1"), "bad_value"),
        (ticker(lastPrice="0"), "bad_value"),
        (ticker(lastPrice=""), "bad_value"),
        (ticker(lastPrice="abc"), "bad_value"),
        (ticker(highPrice24h=["x"]), "bad_type"),
        (ticker(symbol="ETHUSDT"), "bad_frame"),
        (b'{"topic": "tickers.BTCUSDT", "ts": "soon", "data": {}}', "bad_type"),  # a digit string is fine (docs)
        (b'{"topic": "tickers.BTCUSDT", "ts": "1.5", "data": {}}', "bad_type"),
        (b'{"topic": "tickers.BTCUSDT", "ts": 1, "data": []}', "bad_frame"),
        (b'{"topic": "kline.1.BTCUSDT", "ts": 1, "data": {}}', "unknown_topic"),
        (b'{"topic": 5, "ts": 1, "data": {}}', "bad_type"),
        (b'{"hello": "world"}', "unknown_frame"),
        (b'{"topic": "orderbook.1.BTCUSDT", "ts": 1, "type": "delta", "data": {"s": "BTCUSDT", "b": [], "a": [], "u": 2}}',
         "book_not_ready"),
        (b'{"topic": "orderbook.1.BTCUSDT", "ts": 1, "type": "snapshot", "data": {"s": "BTCUSDT", "b": [["x", "1"]], "a": [], "u": 2}}',
         "bad_book"),
    ],
)
def test_malformed_frames_raise_parse_error_with_a_kind(raw, kind):
    with pytest.raises(ParseError) as exc:
        stream().parse(raw)
    assert exc.value.kind == kind
