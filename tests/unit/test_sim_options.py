"""The simulator's option chains are priced like options (Black-Scholes on a smile), so demos and chain views look real."""

from __future__ import annotations

from tests.sim import Simulator
from tests.sim.market import black_scholes, smile_iv


def test_put_call_parity_and_signs():
    call, put = black_scholes(100.0, 110.0, 0.25, 0.6, True), black_scholes(100.0, 110.0, 0.25, 0.6, False)
    assert abs((call["price"] - put["price"]) - (100.0 - 110.0)) < 1e-9  # r = 0
    assert 0 < call["delta"] < 1 and -1 < put["delta"] < 0 and call["gamma"] > 0 and call["theta"] < 0


def test_smile_is_higher_in_the_wings():
    assert smile_iv(100, 70) > smile_iv(100, 100) < smile_iv(100, 130)


def test_delta_chain_has_distinct_marks_and_signed_deltas():
    sim = Simulator()
    delta = sim.exchanges["delta"]
    options = [p for p in delta.products.values() if p["contract_type"].endswith("options") and p["underlying"] == "BTC"]
    rows = [delta.ticker_row(p, 1_800_000_000_000_000) for p in options]
    calls = [r for r in rows if r["symbol"].startswith("C")]
    puts = [r for r in rows if r["symbol"].startswith("P")]
    call_d = [float(r["greeks"]["delta"]) for r in calls]
    put_d = [float(r["greeks"]["delta"]) for r in puts]
    # Signed: calls never negative, puts never positive. Deep out of the money within hours of expiry a delta
    # is 0 to double precision (e.g. a 55,000 put 12 h before settlement), so zero is allowed, for a few only.
    assert all(d >= 0 for d in call_d) and all(d <= 0 for d in put_d)
    assert sum(d > 0 for d in call_d) > len(calls) // 2 and sum(d < 0 for d in put_d) > len(puts) // 2
    assert len({r["mark_price"] for r in calls}) > len(calls) // 2  # deep out-of-the-money ones all round to 0
    ivs = {float(r["quotes"]["mark_iv"]) for r in rows}
    assert len(ivs) > 3
