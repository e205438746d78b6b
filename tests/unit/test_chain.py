"""The option-chain rule: one meaning of `selection` on every exchange."""

from __future__ import annotations

import pytest

from workers.runtime.chain import ChainRule, Contract
from workers.runtime.config import ConfigError

DAY = 86_400_000


def c(symbol: str, expiry_ms: int, strike: float, underlying: str = "BTC", settle: str | None = None) -> Contract:
    return Contract(symbol, underlying, expiry_ms, strike, settle)


CHAIN = [
    c("expired", 500, 100),
    c("d2-100", 2 * DAY, 100), c("d2-150", 2 * DAY, 150),
    c("d3-105", 3 * DAY, 105), c("d3-95-usdt", 3 * DAY, 95, settle="USDT"),
    c("d4-100", 4 * DAY, 100),
    c("eth-d2", 2 * DAY, 10, underlying="ETH"),
]


def test_nearest_expiries_and_strike_window():
    rule = ChainRule.from_config({"underlyings": ["btc"], "expiries": 2, "strike_range_pct": 10}, "sel")
    assert rule.select(CHAIN, {"BTC": 100.0}, now_ms=1000) == (["d2-100", "d3-105", "d3-95-usdt"], [])


def test_zero_means_all_expiries_and_all_strikes_and_needs_no_price():
    rule = ChainRule.from_config({"underlyings": ["BTC"], "expiries": 0, "strike_range_pct": 0}, "sel")
    assert rule.select(CHAIN, {}, now_ms=1000) == (["d2-100", "d2-150", "d3-105", "d3-95-usdt", "d4-100"], [])


def test_settle_coins_filter_where_the_exchange_reports_one():
    rule = ChainRule.from_config({"underlyings": ["BTC"], "expiries": 0, "strike_range_pct": 0, "settle_coins": ["USDC"]}, "sel")
    chosen, _ = rule.select(CHAIN, {}, now_ms=1000)
    assert "d3-95-usdt" not in chosen and "d2-100" in chosen  # no settle coin reported: kept


def test_an_underlying_without_a_price_is_skipped_and_named():
    rule = ChainRule.from_config({"underlyings": ["BTC", "ETH"], "expiries": 1, "strike_range_pct": 5}, "sel")
    assert rule.select(CHAIN, {"BTC": 100.0}, now_ms=1000) == (["d2-100"], ["ETH"])


def test_no_underlyings_selects_nothing():
    assert ChainRule.from_config({}, "sel").select(CHAIN, {"BTC": 100.0}, now_ms=1000) == ([], [])


@pytest.mark.parametrize("selection, key", [
    ({"underlying": ["BTC"]}, "sel.underlying"), ({"expiries": -1}, "sel.expiries"), ({"expiries": 51}, "sel.expiries"),
    ({"strike_range_pct": "ten"}, "sel.strike_range_pct"), ({"underlyings": "BTC"}, "sel.underlyings"),
    ({"settle_coins": "USDC"}, "sel.settle_coins"), ({"expiries": True}, "sel.expiries"),
])
def test_errors_name_the_key_and_what_is_allowed(selection, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        ChainRule.from_config(selection, "sel")
    assert "allowed" in str(err.value)
