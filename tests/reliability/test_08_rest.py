"""Fault 8: REST faults on the discovery paths: 429 with Retry-After, 500s, invalid JSON, timeouts.

Each failing discovery round makes one request and then waits: the backoff
(1 s doubling, jittered) or the server's Retry-After, whichever is longer. The
simulator's request log proves there is no hammering; streaming starts as soon
as an answer is good. A sustained 5xx storm after streaming started must not
interrupt the data and must be polled ever more slowly.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.harness import wait_for
from tests.reliability.util import fresh, now_ms

HANGING: list[asyncio.Task] = []  # simulator handlers still sleeping on a "timeout" fault


@pytest.fixture
def cancel_hanging(sim):
    """Let the simulator shut down without waiting out a "timeout" fault's 30 s sleep."""
    yield
    for task in HANGING:
        sim.loop.call_soon_threadsafe(task.cancel)
    HANGING.clear()


def _log_requests(exsim) -> list[tuple[float, object]]:
    """Record (monotonic time, fault served or None) for every REST request the simulator answers."""
    log: list[tuple[float, object]] = []
    original = exsim.rest_fault

    async def logged():
        fault = exsim.faults.rest_errors[0] if exsim.faults.rest_errors else None
        log.append((time.monotonic(), fault))
        if fault == "timeout":
            HANGING.append(asyncio.current_task())
        return await original()

    exsim.rest_fault = logged
    return log


def _gaps_after_faults(log) -> list[tuple[object, float]]:
    return [(fault, log[i + 1][0] - t) for i, (t, fault) in enumerate(log[:-1]) if fault is not None]


def test_rest_errors_back_off_recover_and_never_hammer(redis_server, sim, make_supervisor, figures, cancel_hanging):
    bysim, dsim = sim.exchanges["bybit"], sim.exchanges["delta"]
    blog, dlog = _log_requests(bysim), _log_requests(dsim)
    bysim.faults.rest_errors = [429, 500, "garbage"]
    dsim.faults.rest_errors = ["timeout", 500, 429]
    sv = make_supervisor(overrides={
        "bybit_options": {"discovery_interval": 1, "selection": {"underlyings": ["BTC"], "expiries": 1, "strike_range_pct": 5}},
        "delta_futures_ltp": {"discovery_interval": 0.5, "symbols": ["BTCUSD"]},
    })
    r = redis_server.client()
    t0 = time.monotonic()
    sv.ctl("start", "bybit_options")
    sv.ctl("start", "delta_futures_ltp")

    # Bybit: three bad answers, then a good round and data.
    wait_for(lambda: r.scard("ltp:symbols:bybit_options") > 0, 20)
    bybit_data = time.monotonic()
    # Sustained 5xx for 5 s once streaming: data keeps flowing, polls thin out.
    storm_ms = now_ms()
    n_before = len(blog)
    bysim.faults.rest_errors = [500] * 1000
    some = sorted(r.smembers("ltp:symbols:bybit_options"))[:3]
    time.sleep(5.0)
    storm_requests = len(blog) - n_before
    assert fresh(r, [f"bybit_options:{s}" for s in some], storm_ms + 4000), "streaming stalled during a REST storm"
    bysim.faults.rest_errors = []

    # Delta: a 10 s client timeout, a 500, a 429, then data.
    wait_for(lambda: r.hget("delta_futures:BTCUSD", "ltp"), 25)
    delta_data = time.monotonic()

    for name, log, n_faults in (("bybit_options", blog, 3), ("delta_futures_ltp", dlog, 3)):
        faults = [f for _, f in log if f is not None][:n_faults]
        assert log[0][1] is not None and [f for _, f in log[:n_faults]] == faults, f"{name}: request log {log[:6]}"
        for fault, gap in _gaps_after_faults(log[:n_faults + 1]):
            floor = 1.0 if fault == 429 else 10.0 if fault == "timeout" else 0.5  # Retry-After: 1; timeout: 10 s
            assert gap >= floor - 0.05, f"{name}: retried {gap:.2f}s after {fault!r} (at least {floor}s expected)"
    assert storm_requests <= 5, f"{storm_requests} requests in a 5 s 500-storm (poll interval 1 s)"

    b_last_fault = blog[2][0]
    d_last_fault = dlog[2][0]
    figures.record("8 REST (bybit_options)", "429, 500, invalid JSON: requests made", 3, "")
    figures.record("8 REST (bybit_options)", "waits after 429 / 500 / invalid JSON",
                   " / ".join(f"{g:.2f}" for _, g in _gaps_after_faults(blog[:4])))
    figures.record("8 REST (bybit_options)", "last fault -> option data in Redis", bybit_data - b_last_fault)
    figures.record("8 REST (bybit_options)", "requests during a 5 s 500-storm (no backoff: 5+)", storm_requests, "")
    figures.record("8 REST (delta_futures_ltp)", "waits after timeout / 500 / 429",
                   " / ".join(f"{g:.2f}" for _, g in _gaps_after_faults(dlog[:4])))
    figures.record("8 REST (delta_futures_ltp)", "last fault -> data in Redis", delta_data - d_last_fault)
    figures.record("8 REST", "start -> data with faults queued (bybit / delta)", f"{bybit_data - t0:.2f} / {delta_data - t0:.2f}")
