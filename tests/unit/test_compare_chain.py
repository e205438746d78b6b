"""The option-chain view's rules without Redis: listing from fields, defaults, ATM, settle coins, errors."""

from __future__ import annotations

import datetime as dt

import pytest

from controlpanel.chain import _contract, build_chain
from controlpanel.compare import CompareError

NOW = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC).timestamp()


def _c(kind: str, strike: int, expiry: str = "2026-01-09", und: str = "BTC", settle: str | None = "USDC", *,
       spot: str | None = "65120", index: str | None = None, age: float = 1.0, **extra: str) -> dict:
    raw = {"option_type": kind, "strike_price": str(strike), "underlying": und, "expiry": expiry, "settle_coin": settle,
           "best_bid": "100", "best_ask": "110", "mark_price": "105", "implied_volatility": "0.5", "bid_iv": "0.48",
           "ask_iv": "0.52", "delta": "0.5" if kind == "CALL" else "-0.5", "open_interest": "12",
           "underlying_price": spot, "index_price": index, "recv_ts": str(int((NOW - age) * 1000)), **extra}
    sym = f"{und}-{expiry}-{strike}-{kind[0]}-{settle}"
    out = _contract(sym, raw, NOW, 60.0)
    assert out is not None
    return out


def _chain(contracts, underlying=None, expiry=None, settle=None):
    return build_chain("bybit_options", contracts, underlying, expiry, settle, NOW)


def test_defaults_first_underlying_nearest_expiry_and_atm():
    contracts = [_c(k, s) for k in ("CALL", "PUT") for s in (60000, 65000, 70000)]
    contracts += [_c("CALL", 65000, "2026-01-16"), _c("CALL", 3200, und="ETH", spot="3210")]
    ch = _chain(contracts)
    assert ch["underlyings"] == {"BTC": ["2026-01-09", "2026-01-16"], "ETH": ["2026-01-09"]}
    assert (ch["underlying"], ch["expiry"], ch["days_to_expiry"]) == ("BTC", "2026-01-09", 4)
    assert ch["underlying_price"] == 65120 and ch["underlying_price_field"] == "underlying_price"
    assert ch["atm_strike"] == 65000 and [r["strike"] for r in ch["rows"]] == [60000, 65000, 70000]
    assert [r["atm"] for r in ch["rows"]] == [False, True, False]
    row = ch["rows"][1]
    assert row["call"]["iv"] == 0.5 and row["call"]["bid_iv"] == 0.48 and row["put"]["delta"] == -0.5
    assert row["call"]["oi"] == 12 and row["call"]["bid"] == 100 and row["call"]["mark"] == 105 and not row["stale"]
    eth = _chain(contracts, "eth")
    assert eth["underlying"] == "ETH" and eth["atm_strike"] == 3200 and eth["rows"][0]["put"] is None


def test_index_price_when_no_underlying_price_and_stale_rows():
    contracts = [_c("CALL", 64000, spot=None, index="64400", age=2),
                 _c("PUT", 64000, spot=None, index="64900", age=1, stale="silent 2026-01-05T11:59:00.000Z"),
                 _c("CALL", 65000, spot=None, index=None, age=600)]
    ch = build_chain("delta_options", contracts, "BTC", "2026-01-09", None, NOW)
    assert ch["underlying_price"] == 64900 and ch["underlying_price_field"] == "index_price"  # the freshest contract's
    assert ch["atm_strike"] == 65000
    low, high = ch["rows"]
    assert low["stale"] and low["put"]["stale_reason"].startswith("silent") and not low["call"]["stale"]
    assert high["stale"] and high["call"]["stale_reason"] is None  # too old for stale_after


def test_settle_coins_one_at_a_time():
    contracts = [_c("CALL", 65000, settle="USDC"), _c("PUT", 65000, settle="USDC"), _c("CALL", 65000, settle="USDT")]
    ch = _chain(contracts)
    assert ch["settle_coins"] == ["USDC", "USDT"] and ch["settle_coin"] == "USDC"
    assert ch["rows"][0]["call"]["symbol"].endswith("USDC")
    usdt = _chain(contracts, settle="USDT")
    assert usdt["rows"][0]["call"]["symbol"].endswith("USDT") and usdt["rows"][0]["put"] is None
    with pytest.raises(CompareError) as err:
        _chain(contracts, settle="EUR")
    assert err.value.status == 404 and err.value.extra["allowed"] == ["USDC", "USDT"]


@pytest.mark.parametrize("underlying, expiry, status, code, allowed", [
    ("DOGE", None, 404, "unknown_underlying", ["BTC"]),
    ("BTC", "09-01-2026", 400, "bad_expiry", ["2026-01-09"]),
    ("BTC", "2026-02-30", 400, "bad_expiry", ["2026-01-09"]),
    ("BTC", "2026-01-10", 404, "unknown_expiry", ["2026-01-09"]),
])
def test_bad_parameters_name_the_allowed_values(underlying, expiry, status, code, allowed):
    with pytest.raises(CompareError) as err:
        _chain([_c("CALL", 65000)], underlying, expiry)
    assert (err.value.status, err.value.code, err.value.extra["allowed"]) == (status, code, allowed)


def test_empty_feed_and_unusable_hashes():
    ch = _chain([])
    assert ch["underlying"] is None and ch["rows"] == [] and ch["underlyings"] == {} and ch["atm_strike"] is None
    assert _contract("X", {"option_type": "CALL", "strike_price": "1"}, NOW, 60) is None  # no underlying/expiry
    assert _contract("X", {"option_type": "FWD", "strike_price": "1", "underlying": "BTC", "expiry": "2026-01-09"}, NOW, 60) is None
