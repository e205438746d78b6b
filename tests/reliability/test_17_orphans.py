"""Fault 17 (hostile conditions): `kill -9` of supervisord, and a second instance of a feed.

Before: the feeds lived on under pid 1 (orphans writing the same keys as the next supervisord's
feeds), and a second `python -m workers bybit_spot` ran beside the first. Now a feed dies with
its supervisor (PR_SET_PDEATHSIG + a parent-pid check) and a second instance refuses to start,
naming the pid that holds `$LTP_VAR/locks/<feed>.lock`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.harness import ROOT, wait_for
from tests.reliability.util import alive, fresh

KEYS = ["bybit_spot:BTCUSDT", "bybit_spot:ETHUSDT"]


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it, maybe late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_feeds_and_the_panel_die_with_supervisord(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT", "ETHUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: fresh(r, KEYS, 0), 15)
    wait_for(lambda: sv.info("controlpanel")["statename"] == "RUNNING", 15)
    pid, panel = sv.info("bybit_spot")["pid"], sv.info("controlpanel")["pid"]
    assert sv.proc is not None
    t0 = time.monotonic()
    os.kill(sv.proc.pid, signal.SIGKILL)
    sv.proc.wait(5)
    try:
        wait_for(lambda: not running(pid), 5, 0.01)
        wait_for(lambda: not running(panel), 5, 0.01)  # else it holds the port the next panel needs
    finally:
        for p in (pid, panel):
            if alive(p):
                os.kill(p, signal.SIGKILL)
    gone = time.monotonic() - t0
    figures.record("17 kill -9 of supervisord", "feed gone after supervisord killed", gone)


def test_a_second_instance_refuses_to_run(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT", "ETHUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: fresh(r, KEYS, 0), 15)
    pid = sv.info("bybit_spot")["pid"]
    t0 = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "workers", "bybit_spot"], env=sv.env, cwd=ROOT,
                            capture_output=True, text=True, timeout=20)
    took = time.monotonic() - t0
    assert second.returncode != 0, second.stdout[-2000:]
    assert f"pid {pid}" in second.stdout + second.stderr, second.stdout[-2000:]
    assert "already running" in second.stdout
    assert sv.info("bybit_spot")["pid"] == pid and alive(pid)  # the first one is untouched
    figures.record("17 second instance", "second instance refused (exit) after", took)
