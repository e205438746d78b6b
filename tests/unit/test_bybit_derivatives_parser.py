from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.exchanges import bybit
from workers.runtime.chain import Contract
from workers.runtime.limiter import Limiter
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


@pytest.mark.parametrize("make", [lambda syms: bybit.LinearStream("linear#0", "ws://x", syms, depth=50),
                                  lambda syms: bybit.SpotStream("spot#0", "ws://x", syms)], ids=["linear", "spot"])
def test_a_subscribed_ticker_topic_parses_as_one_not_subscribed(make):
    """Subscribed ticker topics go straight to their handler (`_handlers`); any other ticker topic takes
    the general route (`on_data`): the same updates and the same errors either way."""
    snap = sample("ticker_linear_snapshot.json")
    frames = [enc(snap), enc(snap | {"data": []}), enc(snap | {"data": snap["data"] | {"lastPrice": "NaN"}})]
    fast, general = make(["BTCUSDT"]), make(["ETHUSDT"])
    assert "tickers.BTCUSDT" in fast._handlers and "tickers.BTCUSDT" not in general._handlers

    def outcome(s, raw):
        try:
            return s.parse(raw)
        except ParseError as exc:
            return exc.kind, exc.detail

    for raw in frames:
        assert outcome(fast, raw) == outcome(general, raw)
    assert outcome(fast, frames[1]) == ("bad_frame", "data of tickers.BTCUSDT is not an object")
    assert outcome(fast, frames[2])[0] == "bad_value"


def test_book_snapshot_deltas_and_top_levels():
    s = linear(levels=2)
    s.parse(enc(sample("ticker_linear_snapshot.json")))
    [u1] = s.parse(book("snapshot", 10, [["100", "1"], ["99", "2"], ["98", "3"]], [["101", "1"], ["102", "2"]]))
    assert json.loads(u1.fields["bids"]) == [["100", "1"], ["99", "2"]]
    assert (u1.fields["best_bid"], u1.fields["best_ask"], u1.fields["spread"], u1.fields["update_id"]) == ("100", "101", "1", "10")
    [u2] = s.parse(book("delta", 11, [["100", "0"], ["99.5", "4"]], [["100.5", "1"]]))
    assert json.loads(u2.fields["bids"]) == [["99.5", "4"], ["99", "2"]]
    assert u2.fields["best_ask"] == "100.5" and u2.fields["ask_size"] == "1"


class Clock:
    """A hand-driven monotonic clock for the resync limiter."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def linear_with_clock(depth: int = 50) -> tuple[bybit.LinearStream, Clock]:
    clock = Clock()
    s = bybit.LinearStream("linear#0", "ws://x", ["BTCUSDT"], depth=depth, levels=5, limiter=Limiter(clock=clock))
    s.on_connect()
    return s, clock


def doc_delta_on_its_own_levels() -> tuple[dict, dict]:
    """The docs' delta example, and a snapshot of the levels it touches (u 7 below its own)."""
    delta = sample("orderbook_delta.json")
    snap = {"topic": delta["topic"], "type": "snapshot", "ts": delta["ts"] - 5,
            "data": {"s": "BTCUSDT", "b": [["30247.20", "1"], ["30240.00", "2"]], "a": [["30248.70", "3"], ["30249.60", "1"]],
                     "u": delta["data"]["u"] - 7, "seq": delta["data"]["seq"] - 9}}
    return snap, delta


def test_update_ids_are_not_a_sequence_a_jump_is_applied():
    s = linear(levels=3)
    snap, delta = doc_delta_on_its_own_levels()
    s.parse(enc(snap))
    [upd] = s.parse(enc(delta))  # u jumps by 7: no resync ("Is a sequence" left the docs on 2024-10-22)
    assert json.loads(upd.fields["bids"]) == [["30247.20", "30.028"], ["30245.40", "0.224"], ["30242.10", "1.593"]]
    assert json.loads(upd.fields["asks"]) == [["30249.30", "0.892"], ["30249.50", "1.778"], ["30251.90", "2.947"]]
    assert upd.fields["update_id"] == "177400507" and upd.event_ts_ms == 1687940967466
    # The docs' snapshot example then their delta example: ids 18521288 -> 177400507, still one book.
    s = linear()
    s.parse(enc(sample("orderbook_snapshot.json")))
    later = sample("orderbook_delta.json")
    later["data"]["b"], later["data"]["a"] = [["16494.00", "1"]], [["16611.00", "0"]]
    [upd] = s.parse(enc(later))
    assert (upd.fields["best_bid"], upd.fields["best_ask"], upd.fields["update_id"]) == ("16494.00", "16612.00", "177400507")


def test_stale_update_ids_are_skipped_and_counted():
    s = linear()
    snap, delta = doc_delta_on_its_own_levels()
    s.parse(enc(snap))
    s.parse(enc(delta))
    for u in (177400507, 177400100):  # the same id again, and an older one
        old = sample("orderbook_delta.json")
        old["data"]["u"], old["data"]["b"] = u, [["99999", "1"]]
        with pytest.raises(ParseError) as exc:
            s.parse(enc(old))
        assert exc.value.kind == "stale_book_update"
    nxt = sample("orderbook_delta.json")
    nxt["data"].update(u=177400600, b=[["30247.20", "0"]], a=[])
    [upd] = s.parse(enc(nxt))
    assert upd.fields["best_bid"] == "30245.40"  # the stale frames left the book as it was


def test_u_1_is_the_restart_snapshot_even_typed_delta():
    s = linear(levels=3)
    s.parse(enc(sample("orderbook_snapshot.json")))  # u = 18521288
    restart = sample("orderbook_delta.json")  # typed "delta"; u = 1: "overwrite your local orderbook"
    restart["data"].update(u=1, b=[["16400.00", "2"]], a=[["16420.00", "3"]])
    [upd] = s.parse(enc(restart))
    assert json.loads(upd.fields["bids"]) == [["16400.00", "2"]] and json.loads(upd.fields["asks"]) == [["16420.00", "3"]]
    assert upd.fields["update_id"] == "1"
    restart["data"].update(u=2, b=[["16401.00", "1"]], a=[])
    [upd] = s.parse(enc(restart))  # deltas go on from the restarted ids
    assert upd.fields["best_bid"] == "16401.00" and upd.fields["update_id"] == "2"


def test_ts_as_a_digit_string_as_the_docs_reminder_shows():
    frame = sample("orderbook_snapshot.json")
    frame["topic"], frame["ts"] = "orderbook.1.BTCUSDT", "1772694601512"  # the reminder's example
    for s in (bybit.LinearStream("l", "ws://x", ["BTCUSDT"], depth=1), bybit.SpotStream("s", "ws://x", ["BTCUSDT"])):
        s.on_connect()
        [upd] = s.parse(enc(frame))
        assert upd.event_ts_ms == 1772694601512 and upd.fields["best_bid"] == "16493.50"
    for bad in ("", "17726946015x", "1.5", "-1", "²", "1" * 16):
        frame["ts"] = bad
        with pytest.raises(ParseError):
            linear().parse(enc(frame | {"topic": "orderbook.50.BTCUSDT"}))


def test_crossed_level1_snapshot_is_not_written_and_never_resubscribed():
    s, clock = linear_with_clock(depth=1)
    crossed = sample("orderbook_snapshot.json")
    crossed["topic"] = "orderbook.1.BTCUSDT"
    crossed["data"].update(b=[["16620.00", "1"]], a=[["16611.00", "1"]])
    for _ in range(10):  # re-pushed every 3 s with the same u while unchanged (docs)
        with pytest.raises(ParseError) as exc:
            s.parse(enc(crossed))
        assert exc.value.kind == "crossed_book"
        clock.now += 3
    assert s.limiter.allowed_total == 0 and s.limiter.suppressed_total == 0
    crossed["data"].update(b=[["16600.00", "1"]], u=18521289)
    [upd] = s.parse(enc(crossed))
    assert (upd.fields["best_bid"], upd.fields["best_ask"]) == ("16600.00", "16611.00")


def test_crossed_snapshot_is_kept_until_a_delta_uncrosses_it():
    s, _ = linear_with_clock()
    snap = sample("orderbook_snapshot.json")
    snap["data"]["b"].insert(0, ["16620.00", "1"])
    with pytest.raises(ParseError, match="crossed"):
        s.parse(enc(snap))
    delta = sample("orderbook_delta.json")
    delta["data"].update(b=[["16619.00", "1"]], a=[])  # still crossed: the exchange's own state, no resync
    with pytest.raises(ParseError, match="crossed"):
        s.parse(enc(delta))
    delta["data"].update(u=177400508, b=[["16620.00", "0"], ["16619.00", "0"]])
    [upd] = s.parse(enc(delta))
    assert (upd.fields["best_bid"], upd.fields["best_ask"]) == ("16493.50", "16611.00")
    assert s.limiter.allowed_total == 0


def test_untrusted_book_resubscribes_that_topic_at_most_once_per_interval():
    s, clock = linear_with_clock()
    s.parse(enc(sample("orderbook_snapshot.json")))
    crossing = sample("orderbook_delta.json")
    crossing["data"].update(b=[["16700.00", "1"]], a=[])
    ctl = s.parse(enc(crossing))  # crossed after a delta: the local book is wrong
    assert isinstance(ctl, Control) and ctl.kind == SEND and "crossed" in ctl.detail
    unsub, sub = (json.loads(f) for f in ctl.frames)
    assert unsub == {"req_id": "unsub-BTCUSDT", "op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]}
    assert sub["op"] == "subscribe" and sub["args"] == ["orderbook.50.BTCUSDT"]
    assert s.parse(enc(crossing | {"data": crossing["data"] | {"u": 177400508}})) == []  # waiting for the snapshot

    clock.now += 1
    s.parse(enc(sample("orderbook_snapshot.json")))  # the fresh snapshot
    bad = sample("orderbook_delta.json")
    bad["data"].update(u=18521300, b=[["abc", "1"]], a=[])
    with pytest.raises(ParseError) as exc:  # a second reason within the interval: suppressed, counted
        s.parse(enc(bad))
    assert exc.value.kind == "resync_suppressed" and "bad level" in exc.value.detail
    assert s.limiter.suppressed == {"orderbook.50.BTCUSDT": 1}
    quiet = sample("orderbook_delta.json")
    for u in range(18521301, 18521305):  # the book is gone: frames skipped, no resubscribe yet
        clock.now += 0.5
        assert s.parse(enc(quiet | {"data": quiet["data"] | {"u": u}})) == []
    clock.now += 2.1  # 5 s after the first resubscribe: the due one goes out
    ctl = s.parse(enc(quiet | {"data": quiet["data"] | {"u": 18521306}}))
    assert isinstance(ctl, Control) and ctl.kind == SEND and "bad level" in ctl.detail
    assert s.limiter.allowed_total == 2
    [upd] = s.parse(enc(sample("orderbook_snapshot.json")))
    assert upd.fields["best_bid"] == "16493.50"


def test_resync_limit_is_per_topic_and_reset_by_a_new_connection_for_books():
    s = bybit.LinearStream("linear#0", "ws://x", ["BTCUSDT", "ETHUSDT"], depth=50, limiter=Limiter(clock=Clock()))
    s.on_connect()
    for sym in ("BTCUSDT", "ETHUSDT"):
        snap = sample("orderbook_snapshot.json")
        snap["topic"], snap["data"]["s"] = f"orderbook.50.{sym}", sym
        s.parse(enc(snap))
        crossing = sample("orderbook_delta.json")
        crossing["topic"], crossing["data"]["s"] = f"orderbook.50.{sym}", sym
        crossing["data"].update(b=[["16700.00", "1"]], a=[])
        assert s.parse(enc(crossing)).kind == SEND  # each topic has its own budget
    s.on_connect()  # a new connection subscribes afresh: no resync is owed
    delta = sample("orderbook_delta.json")
    assert s.parse(enc(delta)) == []


def test_option_ticker_sample_maps_greeks_and_contract_fields():
    s = bybit.OptionStream("option#0", "ws://x", ["BTC-6JAN23-17500-C"])
    s.on_connect()
    [upd] = s.parse(enc(sample("ticker_option_snapshot.json")))
    f = upd.fields
    # bidPrice "0": no bid; best_bid, bid_size and bid_iv are deleted (None), not written as 0.
    assert (f["ltp"], f["mark_price"], f["best_bid"], f["bid_size"], f["best_ask"]) == ("10", "7.86976724", None, None, "10")
    assert (f["delta"], f["gamma"], f["vega"], f["theta"]) == ("0.047831", "0.00021453", "0.81351067", "-19.9115368")
    assert (f["implied_volatility"], f["bid_iv"], f["ask_iv"], f["underlying_price"]) == ("0.4896", None, "0.514", "16815.1")
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
