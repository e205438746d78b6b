"""Fault 17 (hostile conditions): a Redis port that accepts connections and never answers.

Start (sources connected and subscribed) and SIGTERM (exit 0) must not wait on it: every Redis
call on the start and stop paths is bounded. Budget: SIGTERM -> exit within 2 s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT, sim_config, wait_for


@pytest.mark.timing
def test_hung_redis_does_not_delay_start_or_stop(sim, figures):
    hung = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts (kernel backlog), never reads
    port = hung.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    tmp = Path(tempfile.mkdtemp(prefix="ltp-hung-"))
    cfg = tmp / "exchanges.yaml"
    cfg.write_text(yaml.safe_dump(sim_config(url, sim.port, overrides={"bybit_spot": {"symbols": ["BTCUSDT"]}})))
    env = {**os.environ, "LTP_CONFIG": str(cfg), "REDIS_URL": url, "LTP_VAR": str(tmp / "var")}
    log = tmp / "feed.log"
    with open(log, "w") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "workers", "bybit_spot"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        connects = sim.exchanges["bybit"].connects
        wait_for(lambda: sim.exchanges["bybit"].connects > connects, 15, 0.01)
        started = time.monotonic() - t0
        time.sleep(1.0)
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
        stopped = time.monotonic() - t1
    finally:
        if proc.poll() is None:
            proc.kill()
        hung.close()
    assert rc == 0, log.read_text()[-2000:]
    assert stopped < 2.5, (stopped, log.read_text()[-2000:])  # budget 2 s (STOP_BUDGET_S 1.8 + exit); was 6.8 s
    assert started < 4.0, (started, log.read_text()[-2000:])  # process start-up included (~1 s)
    figures.record("17 hung Redis (accepts, never answers)", "spawn -> exchange connection", started)
    figures.record("17 hung Redis (accepts, never answers)", "SIGTERM -> exit 0", stopped)
