"""Fault 1: the server closes the connection every few seconds.

The feed must reconnect and re-subscribe every time, with data back in Redis
within 2 s of the server accepting again, and the process must not crash or
leak threads or file descriptors. In-process reconnect logic is covered by
tests/integration/test_ws_connection.py; this runs the real feed under supervisord.
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.harness import wait_for
from tests.reliability.util import fds, fresh, now_ms, status, threads, time_until

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT"]
KEYS = [f"bybit_spot:{s}" for s in SYMBOLS]
RESUME_BUDGET_S = 2.0
FD_SLACK = 4  # fds of dropped connections awaiting garbage collection


def _drop_every(sv, sim, redis_server, figures, period: float, duration: float, label: str) -> None:
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: fresh(r, KEYS, 0), 15)
    pid = sv.info("bybit_spot")["pid"]
    bysim = sim.exchanges["bybit"]

    def drop_and_measure() -> float:
        connects = bysim.connects
        t0 = time.monotonic()
        sim.drop("bybit")
        closed_at = now_ms()  # anything received from here on came over a new connection
        return time_until(lambda: bysim.connects > connects and fresh(r, KEYS, closed_at), RESUME_BUDGET_S, since=t0)

    drop_and_measure()  # warm-up: whatever a first reconnect allocates lazily is not a leak
    base_threads, base_fds = threads(pid), fds(pid)
    recoveries, fd_counts, thread_counts = [], [], []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        started = time.monotonic()
        recoveries.append(drop_and_measure())
        fd_counts.append(fds(pid))
        thread_counts.append(threads(pid))
        time.sleep(max(0.0, period - (time.monotonic() - started)))

    assert sv.info("bybit_spot")["pid"] == pid, "the feed process was restarted"
    # A dropped socket (and its selector) is closed when Python collects it, so a couple of fds may
    # linger for a while; a leak would add at least one per drop and grow past this slack.
    end_threads, end_fds = threads(pid), fds(pid)
    assert set(thread_counts) == {base_threads} and end_threads == base_threads, f"threads {base_threads} -> {thread_counts}"
    assert max(fd_counts) <= base_fds + FD_SLACK and end_fds <= base_fds + FD_SLACK, f"fds {base_fds} -> {fd_counts}"
    reconnects = int(wait_for(lambda: int(status(r, "bybit_spot").get("reconnects") or 0) >= len(recoveries) + 1
                              and status(r, "bybit_spot")["reconnects"], 3))
    assert reconnects == len(recoveries) + 1
    assert status(r, "bybit_spot")["state"] == "subscribed"

    fault = f"1 drops ({label})"
    figures.record(fault, "drops", len(recoveries), "")
    figures.record(fault, "drop -> all 6 symbols fresh, median", statistics.median(recoveries))
    figures.record(fault, "drop -> all 6 symbols fresh, max", max(recoveries))
    figures.record(fault, "threads before/after", f"{base_threads}/{end_threads}", "")
    figures.record(fault, "open fds before/max/after", f"{base_fds}/{max(fd_counts)}/{end_fds}", "")


def test_drops_every_2s_reconnect_resubscribe_without_leaks(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor()
    _drop_every(sv, sim, redis_server, figures, period=2.0, duration=12.0, label="every 2 s for 12 s")


@pytest.mark.slow
def test_drops_every_3s_for_a_minute(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor()
    _drop_every(sv, sim, redis_server, figures, period=3.0, duration=60.0, label="every 3 s for 60 s, soak")
