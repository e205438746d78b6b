"""Fault 2: the server goes silent with the TCP connection open.

The silence watchdog must notice within the configured window and reconnect;
data must flow again as soon as the server speaks. The tests use a 2 s window
(the default is 30 s, Delta's 35 s). Runs a Bybit and a Delta feed at once.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness import wait_for
from tests.reliability.util import fresh, now_ms, status

WINDOW_S = 2.0
FEEDS = {  # feed -> (exchange, keys it writes)
    "bybit_spot": ("bybit", ["bybit_spot:BTCUSDT", "bybit_spot:ETHUSDT"]),
    "delta_futures_ltp": ("delta", ["delta_futures:BTCUSD", "delta_futures:ETHUSD"]),
}


@pytest.mark.timing
def test_silent_server_is_detected_and_reconnected_within_the_window(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={
        "bybit_spot": {"silence_timeout": WINDOW_S, "symbols": ["BTCUSDT", "ETHUSDT"]},
        "delta_futures_ltp": {"silence_timeout": WINDOW_S, "discovery_interval": 30, "symbols": ["BTCUSD", "ETHUSD"]},
    })
    r = redis_server.client()
    for feed in FEEDS:
        sv.ctl("start", feed)
    for _feed, (_ex, keys) in FEEDS.items():
        wait_for(lambda keys=keys: fresh(r, keys, 0), 20)
    pids = {feed: sv.info(feed)["pid"] for feed in FEEDS}

    connects = {feed: sim.exchanges[ex].connects for feed, (ex, _) in FEEDS.items()}
    t0, silent_at = time.monotonic(), now_ms()
    for ex, _ in FEEDS.values():
        sim.exchanges[ex].faults.silent = True
    detected: dict[str, float] = {}
    resumed: dict[str, float] = {}
    deadline = t0 + WINDOW_S + 4
    while len(resumed) < len(FEEDS) and time.monotonic() < deadline:
        for feed, (ex, keys) in FEEDS.items():
            exsim = sim.exchanges[ex]
            if feed not in detected and exsim.connects > connects[feed]:
                detected[feed] = time.monotonic() - t0
                exsim.faults.silent = False  # the server speaks again on the new connection
            if feed in detected and feed not in resumed and fresh(r, keys, silent_at):
                resumed[feed] = time.monotonic() - t0
        time.sleep(0.02)
    assert detected.keys() == FEEDS.keys(), f"no reconnect within {WINDOW_S + 4}s: {detected}"
    assert resumed.keys() == FEEDS.keys(), f"no fresh data: {resumed}"

    for feed in FEEDS:
        # The watchdog ticks every window/4: detection lands in [window, window + tick + reconnect delay].
        assert WINDOW_S - 0.1 <= detected[feed] <= WINDOW_S + 1.5, (feed, detected[feed])
        assert resumed[feed] - detected[feed] <= 2.0, (feed, resumed, detected)
        st = wait_for(lambda feed=feed: (s := status(r, feed)) and json.loads(s["errors_by_kind"]).get("silence_timeout")
                      and s, 3)
        assert int(st["reconnects"]) >= 1 and "silence timeout" in st["last_error"]
        assert sv.info(feed)["pid"] == pids[feed]
        figures.record(f"2 silence ({feed})", f"silence -> reconnect (window {WINDOW_S:g} s)", detected[feed])
        figures.record(f"2 silence ({feed})", "silence -> fresh data in Redis", resumed[feed])
