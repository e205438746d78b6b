"""A bad exchanges.yaml: the panel keeps serving and says what is wrong (it used to crash-loop)."""

from __future__ import annotations

import time

import requests

from tests.harness import wait_for


def test_panel_serves_and_reports_an_unusable_config(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"bybit_spot": {"ping_interval": "fast"}})
    base = f"http://127.0.0.1:{sv.panel_port}"
    health = wait_for(lambda: (r := requests.get(f"{base}/api/health", timeout=2)).status_code == 503 and r.json(), 20)
    assert health["status"] == "unhealthy"
    reason = next(r for r in health["reasons"] if r.startswith("configuration unusable"))
    assert str(sv.config_path) in reason and "bybit_spot.ping_interval" in reason and "'fast'" in reason
    status = requests.get(f"{base}/api/status", timeout=2).json()
    assert status["config"]["ok"] is False and "allowed" in status["config"]["error"]
    info = wait_for(lambda: (i := sv.info("controlpanel"))["statename"] == "RUNNING" and i, 10)
    time.sleep(3)
    assert sv.info("controlpanel")["pid"] == info["pid"]  # not restarted in a loop
