"""Fault 6: `kill -9` of a feed.

supervisord restarts it (autorestart=true); the status hash shows the new pid,
a new started_at and `restarts` one higher; data flows again.
"""

from __future__ import annotations

import os
import signal
import time

import requests

from tests.harness import wait_for
from tests.reliability.util import fresh, now_ms, status, time_until

KEYS = ["bybit_spot:BTCUSDT", "bybit_spot:ETHUSDT"]


def test_kill_9_is_restarted_by_supervisord_and_the_status_hash_shows_it(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT", "ETHUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: fresh(r, KEYS, 0), 15)
    pid = sv.info("bybit_spot")["pid"]
    before = wait_for(lambda: (s := status(r, "bybit_spot")) and s.get("pid") == str(pid) and s, 5)

    t0, killed_at = time.monotonic(), now_ms()
    os.kill(pid, signal.SIGKILL)
    new_pid = wait_for(lambda: (p := sv.info("bybit_spot")["pid"]) and p != pid and p, 10)
    restarted = time.monotonic() - t0
    data_back = time_until(lambda: fresh(r, KEYS, killed_at), 10, since=t0)
    st = wait_for(lambda: (s := status(r, "bybit_spot")) and s.get("pid") == str(new_pid) and s, 5)
    status_back = time.monotonic() - t0
    st = wait_for(lambda: (s := status(r, "bybit_spot")) and s.get("state") == "subscribed" and s, 5)
    assert int(st["restarts"]) == int(before["restarts"]) + 1, (before["restarts"], st["restarts"])
    assert st["started_at"] > before["started_at"]
    wait_for(lambda: sv.info("bybit_spot")["statename"] == "RUNNING", 5)  # after startsecs=2

    def panel_restarts() -> int:
        body = requests.get(f"http://127.0.0.1:{sv.panel_port}/api/status", timeout=2).json()
        return next(svc["restarts"] for svc in body["services"] if svc["id"] == "bybit_spot")

    assert wait_for(lambda: panel_restarts() == int(st["restarts"]), 10)  # the panel shows the restart
    figures.record("6 kill -9", "kill -> new process started by supervisord", restarted)
    figures.record("6 kill -9", "kill -> fresh data in Redis", data_back)
    figures.record("6 kill -9", "kill -> status hash shows new pid, restarts+1", status_back)
