"""OKX parsers against the sample frames of the official v5 docs (tests/samples/okx, SOURCES.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from workers.exchanges import okx
from workers.runtime.config import ConfigError
from workers.runtime.declare import DERIVATIVE, SPOT
from workers.runtime.markets import FUTURE, PERPETUAL, Market
from workers.runtime.model import IGNORED, PLANNED_RECONNECT, PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError
from workers.runtime.poll import RestError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "okx"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def doc(name: str) -> dict:
    return json.loads(sample(name))


def push(channel: str, inst: str, row: dict) -> bytes:
    return json.dumps({"arg": {"channel": channel, "instId": inst}, "data": [row]}).encode()


def spot_stream(*symbols: str) -> okx.OkxStream:
    s = okx.OkxStream("spot#0", "ws://x", SPOT, list(symbols) or ["BTC-USDT"])
    s.on_connect()
    return s


def swap_stream(*symbols: str, info: dict | None = None) -> okx.OkxStream:
    s = okx.OkxStream("swap#0", "ws://x", DERIVATIVE, list(symbols), info=info)
    s.on_connect()
    return s


INVERSE = {"BTC-USD-SWAP": okx.SwapInfo("BTC-USD", True, 100.0), "LTC-USD-SWAP": okx.SwapInfo("LTC-USD", True, 10.0)}
LINEAR = {"BTC-USDT-SWAP": okx.swap_info(doc("instruments_swap_record_thirdparty.json"))}


def only(result: object):
    assert isinstance(result, list) and len(result) == 1, result
    return result[0]


# -- data pushes ---------------------------------------------------------------------------


def test_spot_ticker_gives_book_top_and_24h_stats_in_base_and_quote_but_no_ltp():
    upd = only(spot_stream().parse(sample("tickers_spot_docs.json")))
    assert upd.symbol == "BTC-USDT" and upd.event_ts_ms == 1597026383085
    assert upd.fields == {
        "best_bid": "8888.88", "bid_size": "5", "best_ask": "9999.99", "ask_size": "11",
        "high_24h": "10000", "low_24h": "8888.88", "prev_price_24h": "9000", "price_change_percent": "11.111",
        "volume_24h": "2222", "turnover_24h": "2222",  # SPOT: vol24h base, volCcy24h quote
        "original_symbol": "BTC-USDT",
    }


def test_trade_is_the_ltp():
    upd = only(spot_stream().parse(sample("trades_docs.json")))
    assert (upd.symbol, upd.fields["ltp"], upd.event_ts_ms) == ("BTC-USDT", "42219.9", 1630048897897)


def test_swap_ticker_volume_is_base_coin_never_contracts_and_inverse_turnover_is_contracts_times_ct_val():
    rows = doc("tickers_swap_rest_docs.json")["data"]  # the docs have no WS SWAP ticker: the REST rows, same fields
    stream = swap_stream("LTC-USD-SWAP", "BTC-USD-SWAP", info=INVERSE)
    for row in rows:
        upd = only(stream.parse(push("tickers", row["instId"], row)))
        assert upd.fields["volume_24h"] == row["volCcy24h"]  # base coin; vol24h (contracts) is not written
        ct_val = INVERSE[row["instId"]].ct_val
        assert upd.fields["turnover_24h"] == f"{float(row['vol24h']) * ct_val:.2f}"  # USD, exact
        assert "ltp" not in upd.fields and upd.fields["best_bid"] == "8888.88"


def test_linear_swap_turnover_is_estimated_from_base_volume_and_last():
    row = dict(doc("tickers_swap_rest_docs.json")["data"][1], instId="BTC-USDT-SWAP")
    assert LINEAR["BTC-USDT-SWAP"] == okx.SwapInfo("BTC-USDT", False, 0.01)
    upd = only(swap_stream("BTC-USDT-SWAP", info=LINEAR).parse(push("tickers", "BTC-USDT-SWAP", row)))
    assert upd.fields["volume_24h"] == "2222" and upd.fields["turnover_24h"] == f"{2222 * 9999.99:.2f}"


def test_mark_price():
    upd = only(swap_stream("LTC-USD-190628").parse(sample("mark_price_docs.json")))
    assert upd.fields == {"mark_price": "0.1", "original_symbol": "LTC-USD-190628"}


def test_index_ticker_is_routed_by_channel_to_every_swap_on_that_index():
    stream = swap_stream("BTC-USDT-SWAP", "BTC-USD-SWAP", "ETH-USDT-SWAP", info={**LINEAR, **INVERSE})
    out = stream.parse(sample("index_tickers_docs.json"))
    assert isinstance(out, list) and [(u.symbol, u.fields["index_price"]) for u in out] == [("BTC-USDT-SWAP", "0.1")]
    # The same id on a spot connection's tickers is the spot market, not the index.
    spot = spot_stream("BTC-USDT")
    assert "index_price" not in only(spot.parse(sample("tickers_spot_docs.json"))).fields
    with pytest.raises(ParseError):
        spot.parse(sample("index_tickers_docs.json"))  # not subscribed on a spot connection


@pytest.mark.parametrize("name", ["funding_rate_docs.json", "funding_rate_rest_docs.json"])
def test_funding_time_is_the_next_settlement_and_the_interval_their_difference(name):
    row = doc(name)["data"][0]
    stream = swap_stream(row["instId"], info={**LINEAR, **INVERSE})
    upd = only(stream.parse(push("funding-rate", row["instId"], row)))
    assert upd.fields["funding_rate"] == row["fundingRate"]
    assert upd.fields["funding_interval_hours"] == "8"
    assert int(row["ts"]) < int(row["fundingTime"])  # the docs' sample: fundingTime is still ahead
    assert upd.fields["next_funding_time"] == {"funding_rate_docs.json": "2023-11-23T08:00:00.000Z",
                                               "funding_rate_rest_docs.json": "2025-04-02T16:00:00.000Z"}[name]


def test_funding_times_may_be_empty():
    row = dict(doc("funding_rate_docs.json")["data"][0], nextFundingTime="")
    upd = only(swap_stream("BTC-USD-SWAP").parse(push("funding-rate", "BTC-USD-SWAP", row)))
    assert "funding_interval_hours" not in upd.fields and upd.fields["next_funding_time"] == "2023-11-23T08:00:00.000Z"
    row |= {"fundingTime": "", "fundingRate": ""}
    assert swap_stream("BTC-USD-SWAP").parse(push("funding-rate", "BTC-USD-SWAP", row)) == []


def test_open_interest_is_the_coin_figure_and_its_usd_value():
    upd = only(swap_stream("BTC-USDT-SWAP").parse(sample("open_interest_docs.json")))
    assert upd.fields["open_interest"] == "22161.1301000000309"  # oiCcy (coin); oi is contracts
    assert upd.fields["open_interest_value"] == "1939251795.54769270396321"  # oiUsd
    row = doc("open_interest_rest_docs.json")["data"][0]
    assert only(swap_stream("BTC-USDT-SWAP").parse(push("open-interest", "BTC-USDT-SWAP", row))).fields["open_interest"] == "555.55"


def test_an_emptied_book_side_is_deleted():
    row = dict(doc("tickers_spot_docs.json")["data"][0], bidPx="", bidSz="")
    fields = only(spot_stream().parse(push("tickers", "BTC-USDT", row))).fields
    assert fields["best_bid"] is None and fields["bid_size"] is None and fields["best_ask"] == "9999.99"


def test_original_symbol_once_per_connection():
    stream = spot_stream()
    assert "original_symbol" in only(stream.parse(sample("trades_docs.json"))).fields
    assert "original_symbol" not in only(stream.parse(sample("trades_docs.json"))).fields
    stream.on_connect()
    assert "original_symbol" in only(stream.parse(sample("trades_docs.json"))).fields


@pytest.mark.parametrize("name", ["bbo_tbt_docs.json", "books5_docs.json"])
def test_book_channels_are_not_subscribed_so_not_parsed(name):
    with pytest.raises(ParseError, match="unknown_channel"):
        swap_stream("BCH-USDT-SWAP").parse(sample(name))


@pytest.mark.parametrize("raw", [
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"-1","ts":"1"}]}',
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1","ts":1630048897897}]}',  # ts must be a string
    b'{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[{"px":"1","ts":"1"}]}',  # not this connection's
    b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":{"px":"1"}}',
    b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"bidPx":"NaN","ts":"1"}]}',
    b'{"data":[]}', b"[1]", b"not json",
])
def test_malformed_frames_are_parse_errors(raw):
    with pytest.raises(ParseError):
        spot_stream().parse(raw)


# -- control frames --------------------------------------------------------------------------


def test_subscribe_request_has_the_docs_shape():
    frames = spot_stream().on_connect()
    req = doc("subscribe_request_docs.json")
    assert len(frames) == 1
    ours = json.loads(frames[0])
    assert ours["op"] == req["op"] and req["args"][0] in ours["args"]
    assert ours["args"] == [{"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "BTC-USDT"}]


def test_swap_subscribes_each_index_once():
    stream = okx.OkxStream("s", "ws://x", DERIVATIVE, ["BTC-USDT-SWAP", "BTC-USDC-SWAP", "ETH-USDT-SWAP"],
                           info={"BTC-USDC-SWAP": okx.SwapInfo("BTC-USDT", False, 0.0001)})
    args = json.loads(stream.on_connect()[0])["args"]
    assert [a["instId"] for a in args if a["channel"] == "index-tickers"] == ["BTC-USDT", "ETH-USDT"]
    assert len(args) == 3 * 5 + 2


def test_acks_make_one_subscribed_event_per_connection():
    stream = spot_stream()
    first = stream.parse(sample("subscribe_ack_docs.json"))
    assert first == Control(IGNORED)  # tickers acked; trades not yet
    done = stream.parse(json.dumps({"event": "subscribe", "arg": {"channel": "trades", "instId": "BTC-USDT"}}).encode())
    assert isinstance(done, Control) and done.kind == SUBSCRIBED
    assert stream.parse(sample("tickers_subscribe_ack_docs.json")).kind == IGNORED  # a repeat says nothing new
    assert stream.parse(sample("unsubscribe_ack_docs.json")).kind == IGNORED


def test_60018_names_the_refused_instrument_in_msg_only():
    stream = spot_stream("LTC-USD", "BTC-USDT")
    ctl = stream.parse(sample("error_60018_issue.json"))  # {"event":"error", "msg":"channel:tickers,instId:LTC-USD ..."}
    assert isinstance(ctl, Control) and ctl.kind == SUB_REJECTED and ctl.items == ("LTC-USD",)
    args = json.loads(stream.on_connect()[0])["args"]  # not asked again on the next connection
    assert {a["instId"] for a in args} == {"BTC-USDT"}
    newer = {"event": "error", "code": "60018", "connId": "a4d3ae55",
             "msg": "Wrong URL or channel:index-tickers,instId:BTC-USDT doesn't exist. Please use the correct URL, "
                    "channel and parameters referring to API document."}
    swap = swap_stream("BTC-USDT-SWAP")
    ctl = swap.parse(json.dumps(newer).encode())
    assert ctl.kind == SUB_REJECTED and ctl.items == ("index-tickers:BTC-USDT",) and "BTC-USDT-SWAP" in ctl.detail
    assert [a["channel"] for a in json.loads(swap.on_connect()[0])["args"]] == list(okx.SWAP_CHANNELS)


def test_an_error_naming_no_instrument_is_a_counted_exchange_error():
    with pytest.raises(ParseError, match="exchange_error") as err:
        spot_stream().parse(sample("error_60012_docs.json"))
    assert "60012" in str(err.value)


def test_notice_64008_is_a_planned_reconnect():
    ctl = spot_stream().parse(sample("notice_64008_docs.json"))
    assert isinstance(ctl, Control) and ctl.kind == PLANNED_RECONNECT and "64008" in ctl.detail


def test_text_ping_and_pong():
    stream = spot_stream()
    assert stream.ping_frame() == sample("ping_request_docs.txt").decode().strip()
    assert stream.parse(sample("pong_reply_docs.txt").strip()) == Control(PONG)


def test_args_are_batched_under_64_kb_per_request():
    symbols = [f"COIN{i:05d}-USDT-SWAP" for i in range(2000)]
    args = okx.subscribe_args(symbols, DERIVATIVE, {})
    frames = okx.subscribe_frames(args)
    assert len(frames) > 1
    assert all(len(json.dumps(json.loads(f)["args"], separators=(",", ":"))) <= 64 * 1024 for f in frames)
    assert [a for f in frames for a in json.loads(f)["args"]] == args


def test_connections_are_sharded_within_the_channel_cap():
    plan = okx.connection_plan([f"C{i}-USDT-SWAP" for i in range(120)], DERIVATIVE)
    assert [len(p) for p in plan] == [50, 50, 20]  # 6 channels a symbol, 300 a connection
    assert okx.connection_plan(["BTC-USDT"], SPOT) == [["BTC-USDT"]]


# -- REST ----------------------------------------------------------------------------------------


def test_instruments_reply_keeps_live_instruments():
    rows = okx.rows_of(doc("instruments_spot_rest_docs.json"), okx.INSTRUMENTS_PATH)
    assert list(okx.live_instruments(rows)) == ["BTC-USDT"]
    suspended = dict(rows[0], instId="ETH-USDT", state="suspend")
    assert list(okx.live_instruments([*rows, suspended])) == ["BTC-USDT"]


def test_instruments_rate_limit_reply_is_a_rest_error_with_a_wait():
    with pytest.raises(RestError) as err:  # 50011 may come with HTTP 200: the round waits as told
        okx.rows_of({"code": "50011", "msg": "Too Many Requests", "data": []}, okx.INSTRUMENTS_PATH)
    assert err.value.retry_after == 2.0


@pytest.mark.parametrize("body", [{"code": "51001", "msg": "Instrument ID doesn't exist.", "data": []}, [], {"code": "0"}])
def test_instruments_error_replies_are_unusable_answers(body):
    with pytest.raises(ParseError, match="bad_reply"):  # poll.get_parsed turns it into a RestError (counted, backed off)
        okx.rows_of(body, okx.INSTRUMENTS_PATH)


def test_swap_info_from_instrument_records():
    assert okx.swap_info({"instId": "BTC-USD-SWAP", "uly": "BTC-USD", "ctType": "inverse", "ctVal": "100", "ctMult": "1"}) \
        == okx.SwapInfo("BTC-USD", True, 100.0)
    assert okx.swap_info({"instId": "BTC-USD_UM-SWAP", "uly": "", "instFamily": "BTC-USD_UM", "ctType": "linear",
                          "ctVal": "0.01"}).index_id == "BTC-USD_UM"
    assert okx.swap_info({"instId": "ETH-USD-SWAP", "ctVal": "x"}) == okx.SwapInfo("ETH-USD", True, 0.0)


# -- markets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol,kind,want", [
    ("BTC-USDT", SPOT, Market("BTC", "USDT", SPOT)),
    ("BTC-USDT-SWAP", DERIVATIVE, Market("BTC", "USDT", PERPETUAL)),
    ("BTC-USD-SWAP", DERIVATIVE, Market("BTC", "USD", PERPETUAL)),
    ("BTC-USD_UM-SWAP", DERIVATIVE, Market("BTC", "USD", PERPETUAL)),
    ("BTC-USD-250627", DERIVATIVE, Market("BTC", "USD", FUTURE, "2025-06-27")),
    ("BTC-USD-250627-100000-C", DERIVATIVE, None),
    ("BTC-USDT-SWAP", SPOT, None),
    ("BTCUSDT", SPOT, None),
])
def test_market_rule(symbol, kind, want):
    assert okx.market_of(symbol, kind) == want


def test_a_refused_swap_gets_nothing_from_its_index_and_an_index_nobody_uses_is_not_asked_again():
    stream = swap_stream("ETH-USDT-SWAP", "BTC-USDT-SWAP")
    refusal = {"event": "error", "code": "60018", "msg": "Wrong URL or channel:tickers,instId:ETH-USDT-SWAP doesn't exist."}
    assert stream.parse(json.dumps(refusal).encode()).items == ("ETH-USDT-SWAP",)
    index = {"instId": "ETH-USDT", "idxPx": "3000", "ts": "1597026383085"}
    assert stream.parse(push("index-tickers", "ETH-USDT", index)) == []
    args = json.loads(stream.on_connect()[0])["args"]
    assert {a["instId"] for a in args} == {"BTC-USDT-SWAP", "BTC-USDT"}


@pytest.mark.parametrize("builder", [okx.spot, okx.swap])
def test_a_ping_interval_the_server_would_not_wait_for_is_a_config_error(builder):
    svc = SimpleNamespace(ping_interval=30.0, path="exchanges.okx.services.okx_spot")
    with pytest.raises(ConfigError, match=r"okx_spot\.ping_interval.*30 s"):
        builder(SimpleNamespace(service=svc))


@pytest.mark.timing
def test_connections_start_apart_and_a_stop_before_the_start_cancels_it():
    """The feed spaces its connections CONNECT_SPACING_S apart (ctx.connection's start_delay): the first connect
    waits the delay, and a stop during the delay ends the connection without a connect."""
    from workers.runtime.sink import RedisSink
    from workers.runtime.stats import FeedStats
    from workers.runtime.ws import WsConnection

    def conn(delay: float) -> tuple[WsConnection, FeedStats]:
        stats = FeedStats("okx_spot")
        stream = okx.OkxStream("spot#0", "ws://127.0.0.1:1/ws/v5/public", okx.SPOT, ["BTC-USDT"])
        return WsConnection(stream, RedisSink("redis://127.0.0.1:1/0", "okx_spot", stats), stats, start_delay=delay), stats

    later, later_stats = conn(0.6)
    cancelled, cancelled_stats = conn(0.6)
    t0 = time.monotonic()
    later.start()
    cancelled.start()
    time.sleep(0.3)
    assert "connect_failed" not in later_stats.errors_by_kind  # still waiting out its delay
    cancelled.stop()
    cancelled.join(1)
    while "connect_failed" not in later_stats.errors_by_kind and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert time.monotonic() - t0 >= 0.6 and "connect_failed" in later_stats.errors_by_kind
    assert "connect_failed" not in cancelled_stats.errors_by_kind
    later.stop()
    later.join(1)
