"""WsConnection's planned reconnect: a connection older than `max_connection_age` is replaced at once,
with no backoff, no error and no state change (exchanges that cut connections at a fixed age: Binance, 24 h)."""

from __future__ import annotations

import time

import pytest

from tests.harness import wait_for
from workers.runtime.backoff import Backoff
from workers.runtime.stats import SUBSCRIBED


@pytest.fixture
def connection(spot_connection):
    def make(**options):
        # A long backoff: a reconnect that waited for it would show in the gap measured below.
        return spot_connection(("BTCUSDT",), backoff=Backoff(initial=5.0, maximum=5.0), **options)

    return make


def test_an_old_connection_is_replaced_at_once_without_error_or_state_change(connection, sim):
    bysim = sim.exchanges["bybit"]
    conn, stats = connection(max_connection_age=1.0)
    wait_for(lambda: stats.state == SUBSCRIBED, 10)
    states = set()
    gaps = []
    last_count, last_at = stats.messages_total, time.monotonic()
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:  # about four planned reconnects
        states.add(stats.state)
        if stats.messages_total != last_count:
            now = time.monotonic()
            gaps.append(now - last_at)
            last_count, last_at = stats.messages_total, now
        time.sleep(0.01)
    assert stats.reconnects >= 3 and bysim.connects >= 4
    assert states == {SUBSCRIBED}  # never `reconnecting`: keys are not marked disconnected
    assert max(gaps) < 1.5, gaps   # no 5 s backoff: the new connection follows at once
    assert not {"connect_failed", "connection_lost", "silence_timeout"} & stats.errors_by_kind.keys(), stats.errors_by_kind


def test_no_age_limit_by_default(connection, sim):
    conn, stats = connection()
    assert conn.max_connection_age is None
    wait_for(lambda: stats.state == SUBSCRIBED, 10)
    time.sleep(1.5)
    assert stats.reconnects == 0
