"""Stale detection: a feed that stops delivering turns /api/health degraded (503)."""

from __future__ import annotations

import pytest

from controlpanel import PanelSettings, create_app
from tests.harness import wait_for
from workers.runtime.config import load_config

pytestmark = pytest.mark.e2e


def test_silent_feed_is_flagged_stale_and_health_degrades(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"bybit_spot": {"stale_after": 2}})
    app = create_app(load_config(sv.config_path), sv.server_url, settings=PanelSettings())
    c = app.test_client()
    sv.rpc().supervisor.startProcess("bybit_spot", True)
    wait_for(lambda: c.get("/api/health").status_code == 200, 15)

    sim.exchanges["bybit"].faults.silent = True
    body = wait_for(lambda: (r := c.get("/api/health")).status_code == 503 and r.get_json(), 10)
    assert body["status"] == "degraded" and body["stale"] == ["bybit_spot"]
    assert any("stale feeds: bybit_spot" in reason for reason in body["reasons"])
    spot = next(s for s in c.get("/api/status").get_json()["services"] if s["id"] == "bybit_spot")
    assert spot["stale"] and spot["badge"] == "stale" and spot["last_update_age_s"] > 2
    assert 'ltp_feed_stale{exchange="bybit",service="bybit_spot"} 1.0' in c.get("/metrics").get_data(as_text=True)
