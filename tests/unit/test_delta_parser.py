"""Delta parser, symbol parsing and chain selection on documented sample frames (tests/samples/delta)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from workers.exchanges import delta
from workers.runtime.chain import Contract
from workers.runtime.model import IGNORED, PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "delta"


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def stream(kind: str = "futures", **channels: list[str]) -> delta.DeltaStream:
    s = delta.DeltaStream("t", "ws://x", kind, channels or {"ticker": ["BTCUSD", "ETHUSD"], "trades": ["BTCUSD", "ETHUSD"]})
    s.on_connect()
    return s


def test_on_connect_enables_heartbeat_and_subscribes_like_the_doc():
    s = delta.DeltaStream("t", "ws://x", "futures", {"ticker": ["BTCUSD", "ETHUSD"], "trades": ["BTCUSD", "ETHUSD"],
                                                      "funding": ["BTCUSD"]})
    frames = [json.loads(f) for f in s.on_connect()]
    assert frames[0] == json.loads(sample("enable_heartbeat"))
    doc = json.loads(sample("subscribe_request"))  # the doc's shape (its example names a legacy channel)
    assert frames[1]["type"] == doc["type"] and list(frames[1]["payload"]) == ["channels"]
    assert frames[1]["payload"]["channels"] == [{"name": "ticker", "symbols": ["BTCUSD", "ETHUSD"]},
                                                {"name": "trades", "symbols": ["BTCUSD", "ETHUSD"]},
                                                {"name": "funding_rate", "symbols": ["BTCUSD"]}]
    assert s.ping_frame() is None  # the server's heartbeat plus the silence watchdog keep the link honest


def test_legacy_channels_are_not_spoken():
    assert set(delta.CHANNELS.values()) == {"ticker", "trades", "funding_rate", "spot_price"}
    assert not hasattr(delta, "LEGACY") and not hasattr(delta, "protocol_of")
    with pytest.raises(ValueError):
        delta.DeltaStream("t", "ws://x", "futures", {"v2/ticker": ["BTCUSD"]})
    legacy = (b'{"type":"v2/ticker","symbol":"BTCUSD","close":72123.5,"mark_price":"72124.5","timestamp":1595242187705121}',
              b'{"symbol":"BTCUSD","close":72123.5,"mark_price":"72124.5","timestamp":1595242187705121}',  # the old doc's, untyped
              b'{"s":".DEETHUSD","p":1349.3412141,"type":"v2/spot_price"}')
    for raw in legacy:
        with pytest.raises(ParseError) as exc:
            stream().parse(raw)
        assert exc.value.kind == "unknown_frame"


def test_compact_ticker_sample_futures_has_no_ltp():
    s = stream()
    [u] = s.parse(sample("ticker_public"))
    assert u.symbol == "BTCUSD" and u.event_ts_ms == 1775801092453
    f = u.fields
    # ohlc's close is the last trade as of a push every 5 s: ltp comes from `trades` only.
    assert "ltp" not in f
    assert f["mark_price"] == "72124.53970358" and f["index_price"] == "72154.6"
    assert f["best_bid"] == "72100" and f["best_ask"] == "72101" and f["open_interest"] == "537395"  # oi_contracts
    assert f["high_24h"] == "73135.5" and f["low_24h"] == "70495" and f["original_symbol"] == "BTCUSD"
    assert "delta" not in f  # greeks only for options
    [again] = s.parse(sample("ticker_public"))
    assert "original_symbol" not in again.fields  # once per connection; Redis keeps it


def test_trades_sample_is_the_ltp():
    s = stream()
    [u] = s.parse(sample("trades_public"))
    assert u.symbol == "BTCUSD" and u.event_ts_ms == 1775800366578  # t, the trade's own time
    assert u.fields == {"ltp": "72141.5", "original_symbol": "BTCUSD"}
    [tick] = s.parse(sample("ticker_public"))  # a later ticker push does not move ltp back to its ohlc close
    assert "ltp" not in tick.fields


def test_each_trade_frame_is_the_latest_ltp_in_arrival_order():
    s = stream()
    doc = json.loads(sample("trades_public"))
    s.parse(json.dumps(doc))
    same_time = doc | {"p": "72142"}  # two fills in the same microsecond: the later frame wins
    [u] = s.parse(json.dumps(same_time))
    assert u.fields == {"ltp": "72142"}
    clock_back = doc | {"p": "72150", "t": doc["t"] - 60_000_000}  # the exchange's clock stepped back a minute
    [u] = s.parse(json.dumps(clock_back))  # still the newest trade on the socket; the sink holds `timestamp`
    assert u.fields == {"ltp": "72150"} and u.event_ts_ms == 1775800306578


def test_trades_of_a_chain_we_did_not_ask_for_are_skipped_and_bad_ones_refused():
    s = stream("options", ticker=["C-BTC-108200-211025"], trades=["C-BTC-108200-211025"])
    doc = json.loads(sample("trades_public"))
    assert s.parse(json.dumps(doc | {"sy": "C-BTC-108000-211025"})) == []
    [u] = s.parse(json.dumps(doc | {"sy": "C-BTC-108200-211025", "p": "1250"}))
    assert u.fields["ltp"] == "1250" and u.fields["option_type"] == "CALL" and u.fields["expiry"] == "2025-10-21"
    for bad, kind in (({"p": "-1"}, "bad_value"), ({"p": "0"}, "bad_value"), ({"p": "NaN"}, "bad_value"),
                      ({"p": None}, "bad_type"), ({"t": "soon"}, "bad_type"), ({"t": 5}, "bad_value"), ({"sy": 1}, "bad_type")):
        with pytest.raises(ParseError) as exc:
            s.parse(json.dumps(doc | {"sy": "C-BTC-108200-211025"} | bad))
        assert exc.value.kind == kind, bad


@pytest.mark.parametrize("name", ["product_updates_market_disruption", "product_updates_start_auction",
                                  "product_updates_finish_auction"])
def test_product_updates_are_known_and_ignored(name):
    for kind in ("futures", "options", "spot"):
        ctl = stream(kind, ticker=["BTCUSD"]).parse(sample(name))
        assert isinstance(ctl, Control) and ctl.kind == IGNORED and "NEOUSDQ" in ctl.detail


def test_compact_ticker_as_option_has_greeks_and_symbol_fields():
    raw = json.loads(sample("ticker_public"))
    raw["d"][0]["s"] = "C-BTC-108200-211025"
    s = stream("options", ticker=["C-BTC-108200-211025"])
    [u] = s.parse(json.dumps(raw))
    f = u.fields
    assert (f["delta"], f["gamma"], f["rho"], f["theta"], f["vega"]) == ("0.01939861", "0.00006382", "0.00718630",
                                                                          "-81.48397021", "0.72486575")
    assert (f["ask_iv"], f["bid_iv"], f["implied_volatility"]) == ("0.25", "0.25", "-0.37846136")
    assert f["option_type"] == "CALL" and f["strike_price"] == "108200" and f["expiry"] == "2025-10-21"


def test_funding_is_written_at_once_as_a_fraction():
    s = stream("futures", funding=["BTCUSD"], ticker=["BTCUSD"])
    [u] = s.parse(sample("funding_rate_public"))  # no ltp to wait for: the hash is named by its first write
    assert u.fields == {"funding_rate": "0.0001", "original_symbol": "BTCUSD"} and u.event_ts_ms == 1775817617666
    [u] = s.parse(sample("funding_rate_public"))
    assert u.fields == {"funding_rate": "0.0001"}  # Delta sends percent; stored as a fraction like Bybit


def test_index_price_is_written_under_the_pair_name():
    s = delta.DeltaStream("t", "ws://x", "spot", {"index": [".DEUSDTUSD"]}, keys={".DEUSDTUSD": "USDTUSD"})
    s.on_connect()
    [u] = s.parse(sample("spot_price_public"))
    # An index is not a trade: it is written as index_price, and no ltp is made up from it.
    assert u.symbol == "USDTUSD" and u.fields == {"index_price": "1", "source": "index", "original_symbol": ".DEUSDTUSD"}
    assert u.event_ts_ms == 1775818505952


def test_spot_market_ticker_has_no_open_interest():
    s = stream("spot", ticker=["BTC_USDT"], trades=["BTC_USDT"])
    raw = json.loads(sample("ticker_public"))
    raw["d"][0]["s"] = "BTC_USDT"
    [u] = s.parse(json.dumps(raw))
    assert u.fields["source"] == "spot" and "open_interest" not in u.fields and "ltp" not in u.fields


def test_rest_ticker_doc_example_seeds_ltp_and_open_interest_in_contracts():
    body = json.loads(sample("rest_tickers_response"))
    [row] = delta.rows_of(body, delta.TICKERS_PATH)
    f = delta.rest_ticker_fields(row, "futures")
    assert f["ltp"] == "67321"  # "the closing price of the last trade"
    assert f["open_interest"] == "15000"  # "the number of outstanding contracts"
    assert (f["mark_price"], f["index_price"], f["volume_24h"], f["best_bid"]) == ("67000.00", "67000.00", "25000", "148.00")
    assert delta.epoch_ms(row["timestamp"], "timestamp") == 1609459200000  # the example's seconds
    live = row | {"oi": "469.9190", "oi_contracts": "469919"}  # a live row: coin-denominated oi beside oi_contracts
    assert delta.rest_ticker_fields(live, "futures")["open_interest"] == "469919"
    coins_only = row | {"oi": "812.6100"}  # not a count of contracts: not written
    assert "open_interest" not in delta.rest_ticker_fields(coins_only, "futures")
    assert "ltp" not in delta.rest_ticker_fields(row | {"close": 0}, "futures")  # never traded


def test_acks_heartbeat_and_channel_errors():
    s = stream("futures", ticker=["BTCUSD", "ETHUSD"])
    assert s.parse(sample("subscriptions_ack")).kind == SUBSCRIBED
    assert s.parse(sample("heartbeat")) == Control(PONG)
    ctl = s.parse(sample("subscriptions_error"))  # a channel we never asked for is named as such
    assert ctl.kind == SUB_REJECTED and ctl.items == ("trading_notifications",) and "Unauthorized" in ctl.detail


def test_channel_error_naming_a_symbol_rejects_it_and_resubscribes_the_rest():
    s = stream(ticker=["BTCUSD", "NOSUCHUSD", "ETHUSD"])
    ctl = s.parse(json.dumps({"type": "subscriptions", "channels": [
        {"name": "ticker", "error": "subscription forbidden on ticker. Invalid symbols: NOSUCHUSD."}]}))
    assert ctl.kind == SUB_REJECTED and ctl.items == ("NOSUCHUSD",)
    assert json.loads(ctl.frames[0])["payload"]["channels"] == [{"name": "ticker", "symbols": ["BTCUSD", "ETHUSD"]}]
    assert "NOSUCHUSD" not in s.on_connect()[1]  # not retried on the next connection
    ctl = s.parse(b'{"channels":[{"name":"ticker","error":"limit"}],"type":"subscriptions"}')
    assert ctl.items == ("BTCUSD", "ETHUSD") and ctl.frames == ()  # nothing named: the whole channel


def test_trades_channel_error_drops_only_that_channel():
    s = stream(ticker=["BTCUSD", "ETHUSD"], trades=["BTCUSD", "ETHUSD"])
    ctl = s.parse(json.dumps({"type": "subscriptions", "channels": [
        {"name": "ticker", "symbols": ["BTCUSD", "ETHUSD"]},
        {"name": "trades", "error": "subscription forbidden on trades. Invalid symbols: ETHUSD"}]}))
    assert ctl.kind == SUB_REJECTED and ctl.items == ("ETHUSD",)
    assert json.loads(ctl.frames[0])["payload"]["channels"] == [{"name": "trades", "symbols": ["BTCUSD"]}]
    channels = json.loads(s.on_connect()[1])["payload"]["channels"]
    assert channels == [{"name": "ticker", "symbols": ["BTCUSD", "ETHUSD"]}, {"name": "trades", "symbols": ["BTCUSD"]}]


@pytest.mark.parametrize("raw, kind", [
    (b"not json", "bad_json"),
    (b"[1]", "bad_frame"),
    (b'{"type":"mystery"}', "unknown_frame"),
    (b'{"type":"ticker","d":[{"s":"BTCUSD"}],"ts":"soon"}', "bad_type"),
    (b'{"type":"ticker","d":{"s":"BTCUSD"},"ts":1775801092453559}', "bad_frame"),
    (b'{"type":"ticker","d":[{"s":"BTCUSD","ohlc":[1,2]}],"ts":1775801092453559}', "bad_frame"),
    (b'{"type":"ticker","d":[{"s":"BTCUSD","m":"NaN"}],"ts":1775801092453559}', "bad_value"),
    (b'{"type":"ticker","d":[{"s":"BTCUSD","m":[]}],"ts":1775801092453559}', "bad_type"),
    (b'{"type":"subscriptions","channels":"all"}', "bad_frame"),
    (b'{"type":"spot_price","p":"1","sy":5,"ts":1}', "bad_type"),
    (b'{"type":"spot_price","p":"1","sy":".DEXBTUSD","ts":1}', "bad_value"),
    (b'{"type":"funding_rate","fr":0.01,"sy":"BTCUSD","ts":"x"}', "bad_type"),
    (b'{"type":"trades","p":"1","sy":"BTCUSD"}', "bad_type"),
])
def test_malformed_frames(raw, kind):
    with pytest.raises(ParseError) as exc:
        stream().parse(raw)
    assert exc.value.kind == kind


def test_string_timestamp_and_other_symbols_are_tolerated():
    s = stream()
    [u] = s.parse(b'{"type":"ticker","d":[{"s":"BTCUSD","m":"1"},{"s":"SOLUSD","m":"2"}],"ts":"1775801092453559"}')
    assert u.symbol == "BTCUSD" and u.event_ts_ms == 1775801092453 and "ltp" not in u.fields


@pytest.mark.parametrize("symbol, expected", [
    ("C-BTC-108200-211025", {"option_type": "CALL", "underlying": "BTC", "strike_price": "108200",
                             "expiry_date": "211025", "expiry": "2025-10-21"}),
    ("P-ETH-3200-010126", {"option_type": "PUT", "underlying": "ETH", "strike_price": "3200",
                           "expiry_date": "010126", "expiry": "2026-01-01"}),
    ("P-XRP-0.55-310126", {"option_type": "PUT", "underlying": "XRP", "strike_price": "0.55",
                           "expiry_date": "310126", "expiry": "2026-01-31"}),
])
def test_option_symbols(symbol, expected):
    assert delta.parse_option_symbol(symbol) == expected


@pytest.mark.parametrize("symbol", ["BTCUSD", "X-BTC-1-211025", "C-BTC-1-321025", "C-BTC-abc-211025", "C-BTC-1-2110"])
def test_not_option_symbols(symbol):
    assert delta.parse_option_symbol(symbol) is None


def test_index_symbols():
    assert delta.index_symbol("BTCUSD") == ".DEXBTUSD"
    assert delta.index_symbol("ETHUSD") == ".DEETHUSD"
    assert delta.index_symbol(".DESOLUSDT") == ".DESOLUSDT"


def _opt(sym: str, state: str = "live") -> dict:
    day = dt.datetime.strptime(sym.rsplit("-", 1)[1], "%d%m%y").date()
    return {"symbol": sym, "state": state, "settlement_time": f"{day.isoformat()}T12:00:00Z"}


def test_option_contracts_from_products():
    [c] = delta.option_contracts([_opt("C-BTC-95000-261126")])
    assert c == Contract("C-BTC-95000-261126", "BTC", int(dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC).timestamp() * 1000), 95000.0)
    [c] = delta.option_contracts([{"symbol": "P-ETH-3000-261126"}])  # no settlement_time: the symbol's date
    assert c.expiry_ms == int(dt.datetime(2026, 11, 26, tzinfo=dt.UTC).timestamp() * 1000)
    assert delta.option_contracts([{"symbol": "BTCUSD"}]) == []


@pytest.mark.parametrize("value, ms", [
    (1609459200, 1609459200000),              # seconds, as the REST tickers example shows
    (1609459200123, 1609459200123),           # milliseconds
    (1609459200123456, 1609459200123),        # microseconds, as the sockets send
    ("1609459200123456789", 1609459200123),   # nanoseconds, as a string
])
def test_epoch_time_unit_is_told_by_magnitude(value, ms):
    assert delta.epoch_ms(value, "timestamp") == ms


@pytest.mark.parametrize("value", [0, -5, "12ab", 12, 10**25, None, 1.5])
def test_implausible_epoch_times_are_parse_errors(value):
    with pytest.raises(ParseError):
        delta.epoch_ms(value, "timestamp")
