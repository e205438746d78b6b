"""Every parser writes only names of the field contract (workers/runtime/fields.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.exchanges import binance, bybit, delta, deribit, okx
from workers.runtime.declare import DERIVATIVE, SPOT
from workers.runtime.fields import FIELDS, PARSER_FIELDS, unknown_fields
from workers.runtime.model import Update

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
README = Path(__file__).resolve().parents[2] / "README.md"


def frames(exchange: str, *names: str) -> list[bytes]:
    return [(SAMPLES / exchange / f"{n}.json").read_bytes() for n in names]


def updates(stream: object, raws: list[bytes]) -> list[Update]:
    stream.on_connect()  # type: ignore[attr-defined]
    out: list[Update] = []
    for raw in raws:
        result = stream.parse(raw)  # type: ignore[attr-defined]
        if isinstance(result, list):
            out.extend(result)
    return out


def book(topic: str) -> bytes:
    doc = json.loads((SAMPLES / "bybit" / "orderbook_snapshot.json").read_text())
    doc["topic"] = topic
    return json.dumps(doc).encode()


def deribit_push(channel: str, name: str) -> bytes:
    """A docs `data` payload in its notification frame (the docs show the payload only)."""
    doc = json.loads((SAMPLES / "deribit" / f"{name}.json").read_text())
    data = doc.get("data", doc)
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}).encode()


def okx_swap_ticker() -> bytes:
    """The docs have no WS SWAP ticker: their REST row (same fields) in the push envelope."""
    row = json.loads((SAMPLES / "okx" / "tickers_swap_rest_docs.json").read_text())["data"][1]
    return json.dumps({"arg": {"channel": "tickers", "instId": row["instId"]}, "data": [row]}).encode()


CASES = {
    "bybit spot": lambda: updates(bybit.SpotStream("s", "ws://x", ["BTCUSDT"]),
                                  [book("orderbook.1.BTCUSDT"), *frames("bybit", "ticker_spot_snapshot")]),
    "bybit linear": lambda: updates(bybit.LinearStream("l", "ws://x", ["BTCUSDT"], depth=50),
                                    [*frames("bybit", "ticker_linear_snapshot", "ticker_linear_delta"), book("orderbook.50.BTCUSDT")]),
    "bybit option": lambda: updates(bybit.OptionStream("o", "ws://x", ["BTC-6JAN23-17500-C"]),
                                    frames("bybit", "ticker_option_snapshot")),
    "delta futures": lambda: updates(delta.DeltaStream("f", "ws://x", "futures",
                                                       {"ticker": ["BTCUSD"], "trades": ["BTCUSD"], "funding": ["BTCUSD"]}),
                                     frames("delta", "funding_rate_public", "ticker_public", "trades_public")),
    "delta spot index": lambda: updates(delta.DeltaStream("s", "ws://x", "spot", {"index": [".DEUSDTUSD"]}, keys={".DEUSDTUSD": "USDTUSD"}),
                                        frames("delta", "spot_price_public")),
    "binance spot": lambda: updates(binance.spot_streams("ws://x", ["BNBBTC", "BNBUSDT"])[0],
                                    frames("binance", "spot_trade_docs", "spot_bookticker_docs", "spot_ticker24hr_docs")),
    "binance futures": lambda: updates(binance.futures_streams("ws://x", ["BTCUSDT", "BNBUSDT"])[0],
                                       frames("binance", "futures_markprice_sdk", "futures_aggtrade_sdk", "futures_bookticker_sdk",
                                              "futures_ticker24hr_sdk")),
    "binance REST": lambda: [Update("BTCUSDT", {"open_interest": binance.open_interest(json.loads(raw), "BTCUSDT")[0],
                                                "funding_interval_hours": "8"}, 0)
                             for raw in frames("binance", "futures_openinterest_docs")],
    "deribit option": lambda: updates(deribit.DeribitStream("o", "ws://x", ["BTC-12MAR25-65000-C"]),
                                      [deribit_push("ticker.BTC-12MAR25-65000-C.100ms", "ticker_option_data_code")]),
    "deribit futures": lambda: updates(deribit.DeribitStream("f", "ws://x", ["BTC-PERPETUAL"]),
                                       [deribit_push("ticker.BTC-PERPETUAL.100ms", "ticker_perpetual_data_docs"),
                                        deribit_push("trades.BTC-PERPETUAL.100ms", "trades_data_docs")]),


    "okx spot": lambda: updates(okx.OkxStream("s", "ws://x", SPOT, ["BTC-USDT"]),
                                frames("okx", "tickers_spot_docs", "trades_docs")),
    "okx swap": lambda: updates(okx.OkxStream("w", "ws://x", DERIVATIVE, ["BTC-USD-SWAP", "BTC-USDT-SWAP", "LTC-USD-190628"],
                                              info={"BTC-USD-SWAP": okx.SwapInfo("BTC-USD", True, 100.0)}),
                                [okx_swap_ticker(), *frames("okx", "funding_rate_docs", "open_interest_docs",
                                                            "index_tickers_docs", "mark_price_docs")]),
    "delta REST ticker": lambda: [Update("BTCUSD", delta.rest_ticker_fields(row, kind), 0)
                                  for raw in frames("delta", "rest_tickers_response") for row in json.loads(raw)["result"]
                                  for kind in ("futures", "options", "spot")],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parsers_write_only_contract_names(case):
    written = CASES[case]()
    assert written, f"{case}: the samples produced no update"
    for upd in written:
        assert unknown_fields(upd.fields) == [], f"{case}: {upd.symbol} writes names outside the contract"


def test_first_write_of_a_symbol_names_it():
    for case in ("bybit spot", "bybit linear", "bybit option", "delta futures", "binance spot", "binance futures",
                 "deribit option", "deribit futures", "okx spot", "okx swap"):
        first = CASES[case]()[0]
        assert "original_symbol" in first.fields, case


def test_readme_field_table_lists_every_contract_field():
    text = README.read_text()
    missing = [name for name in FIELDS if f"`{name}`" not in text]
    assert missing == []


def test_sink_and_reserved_names_are_not_parser_names():
    assert {"timestamp", "recv_ts", "stale"}.isdisjoint(PARSER_FIELDS)
