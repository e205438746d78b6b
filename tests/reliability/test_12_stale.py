"""Fault 12: a price that looks live must be live.

Every key of a feed carries `stale` = "<cause> <ISO time>" while its value is not known to be
current, and loses it at its next write: the feed stopped (`stopped`), its connection is down
(`disconnected`), it is connected but nothing came for `stale_after` (`silent`), the value is
left from a previous run (`restarted`), the process is gone without a word (`not_running`, set
by `mark_prefix_stale` from the panel or a watchdog). An empty Redis after a restart gets the marks
back as they were. All against the real feed under supervisord, the simulator and Redis.
"""

from __future__ import annotations

import os
import signal
import time

from tests.harness import wait_for
from tests.reliability.util import all_marked, fresh, none_marked, now_ms, stale_of, status, time_until

STALE_AFTER_S = 1.0
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
KEYS = [f"bybit_spot:{s}" for s in SYMBOLS]
SPOT = {"bybit_spot": {"symbols": SYMBOLS, "stale_after": STALE_AFTER_S, "silence_timeout": 30}}


def _iso_ms(value: str) -> int:
    import datetime as dt

    iso = value.split(" ", 1)[1]
    return int(dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp() * 1000)


def test_stop_silence_disconnect_and_restart_mark_the_keys_and_data_clears_them(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides=SPOT)
    r = redis_server.client()
    bysim = sim.exchanges["bybit"]
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: fresh(r, KEYS, 0) and none_marked(r, KEYS), 15)

    # Silent exchange, connection open (silence_timeout 30 s: no reconnect): `silent` after stale_after.
    t0 = time.monotonic()
    bysim.faults.silent = True
    silent = time_until(lambda: all_marked(r, KEYS, "silent"), STALE_AFTER_S + 3, since=t0)
    assert silent >= STALE_AFTER_S - 0.1
    t0, back_at = time.monotonic(), now_ms()
    bysim.faults.silent = False
    cleared = time_until(lambda: none_marked(r, KEYS) and fresh(r, KEYS, back_at), 3, since=t0)
    figures.record("12 stale (bybit_spot)", f"exchange silent -> every key `silent` (stale_after {STALE_AFTER_S:g} s)", silent)
    figures.record("12 stale (bybit_spot)", "data again -> every mark gone", cleared)

    # Connection down and refused: `disconnected` within a status tick.
    t0 = time.monotonic()
    bysim.faults.refuse_connections = True
    sim.drop("bybit")
    down = time_until(lambda: all_marked(r, KEYS, "disconnected"), 3, since=t0)
    time.sleep(1.0)
    assert all_marked(r, KEYS, "disconnected")  # nothing clears them while no connection is up
    t0 = time.monotonic()
    bysim.faults.refuse_connections = False
    up = time_until(lambda: none_marked(r, KEYS), 6, since=t0)  # includes the reconnect backoff
    figures.record("12 stale (bybit_spot)", "connection dropped and refused -> every key `disconnected`", down)
    figures.record("12 stale (bybit_spot)", "connections accepted again -> every mark gone", up)

    # Stop: every key `stopped` by the time supervisorctl returns.
    before = now_ms()
    assert "stopped" in sv.ctl("stop", "bybit_spot")
    after = now_ms()
    values = stale_of(r, KEYS)
    assert all(v and v.startswith("stopped ") for v in values), values
    assert all(before - 5 <= _iso_ms(v) <= after + 5 for v in values if v)
    assert status(r, "bybit_spot")["state"] == "stopped"

    # Start with the exchange silent: values from the previous run are `restarted` until rewritten.
    bysim.faults.silent = True
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: status(r, "bybit_spot").get("pid") == str(sv.info("bybit_spot")["pid"]), 10)
    assert all_marked(r, KEYS, "restarted")
    time.sleep(1.5)
    assert all_marked(r, KEYS, "restarted")  # no data: still marked
    t0 = time.monotonic()
    bysim.faults.silent = False
    live = time_until(lambda: none_marked(r, KEYS), 3, since=t0)
    figures.record("12 stale (bybit_spot)", "restart: leftovers `restarted` until rewritten; data -> marks gone", live)


def test_marks_are_right_again_after_redis_restarts_empty(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={**SPOT, "delta_futures_ltp": {"symbols": ["BTCUSD", "ETHUSD"], "discovery_interval": 30}})
    r = redis_server.client()
    live_keys = ["delta_futures:BTCUSD", "delta_futures:ETHUSD"]
    sv.ctl("start", "bybit_spot", "delta_futures_ltp")
    wait_for(lambda: none_marked(r, KEYS) and none_marked(r, live_keys), 20)
    sim.exchanges["bybit"].faults.silent = True
    wait_for(lambda: all_marked(r, KEYS, "silent"), STALE_AFTER_S + 3)
    marks = stale_of(r, KEYS)

    redis_server.stop()
    time.sleep(3)
    redis_server.start()  # empty
    t0 = time.monotonic()
    r = redis_server.client()
    try:
        back = time_until(lambda: stale_of(r, KEYS) == marks and none_marked(r, live_keys), 3, since=t0)
    except AssertionError:
        raise AssertionError((marks, stale_of(r, KEYS), [r.hgetall(k) for k in KEYS + live_keys],
                              status(r, "bybit_spot"), sv.log("bybit_spot")[-3000:])) from None
    assert all(r.hget(k, "original_symbol") for k in KEYS)  # the whole state came back, with its marks
    figures.record("12 stale", "Redis restarted empty -> marks back as they were (silent feed marked, live feed not)", back)
    sim.exchanges["bybit"].faults.silent = False
    wait_for(lambda: none_marked(r, KEYS), 3)


def test_a_feed_that_can_not_say_it_is_gone_is_marked_by_mark_prefix_stale_and_clears_when_back(redis_server, sim, make_supervisor,
                                                                                        figures):
    """kill -9 can't mark anything, and supervisord restarts at once; a paused process (SIGSTOP) is
    the same silence for as long as it lasts: its status hash expires, the panel's `mark_prefix_stale`
    marks its keys `not_running`; once it runs again its writes clear the marks."""
    from workers.runtime.status import mark_prefix_stale

    sv = make_supervisor(overrides=SPOT)
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: none_marked(r, KEYS), 15)
    pid = sv.info("bybit_spot")["pid"]
    assert mark_prefix_stale(r, "bybit_spot", "not_running", status_key="service:status:bybit_spot") == -1  # alive: no-op
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        gone = time_until(lambda: not r.exists("service:status:bybit_spot"), 15, since=t0)
        assert mark_prefix_stale(r, "bybit_spot", "not_running", status_key="service:status:bybit_spot") == len(KEYS)
        assert all_marked(r, KEYS, "not_running")
    finally:
        os.kill(pid, signal.SIGCONT)
    t0 = time.monotonic()
    live = time_until(lambda: none_marked(r, KEYS) and status(r, "bybit_spot").get("pid") == str(pid), 5, since=t0)
    figures.record("12 stale (bybit_spot)", "process paused -> status hash gone (TTL)", gone)
    figures.record("12 stale (bybit_spot)", "process runs again -> `not_running` marks gone", live)
