"""/api/health against real supervisord, real Redis and the simulator: a feed that is not delivering says so.

Healthy (200) only when every feed expected to deliver (enabled, or running) is delivering; otherwise
degraded or unhealthy (503) with one reason per feed naming the cause the feed reported.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import yaml

from controlpanel import PanelSettings, create_app
from tests.harness import wait_for
from workers.runtime.config import load_config

pytestmark = pytest.mark.e2e


def _app(sv):
    return create_app(load_config(sv.config_path), sv.server_url, settings=PanelSettings()).test_client()


def _status(c, sid: str) -> dict:
    return next(s for s in c.get("/api/status").get_json()["services"] if s["id"] == sid)


def _enable(sv, *ids: str, endpoints: dict[str, dict[str, str]] | None = None) -> None:
    """Mark services enabled in the config the feeds and the panel read, once autostart has run."""
    wait_for(lambda: sv.info("autostart")["statename"] in ("EXITED", "STOPPED", "FATAL"), 15)
    data = yaml.safe_load(sv.config_path.read_text())
    for ex_name, ex in data["exchanges"].items():
        for sid in ids:
            if sid in ex.get("services", {}):
                ex["services"][sid]["enabled"] = True
        ex.setdefault("endpoints", {}).update((endpoints or {}).get(ex_name, {}))
    sv.config_path.write_text(yaml.safe_dump(data))


def test_silent_feed_is_flagged_stale_and_health_degrades(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"bybit_spot": {"stale_after": 2}, "delta_spot": {"stale_after": 2}})
    c = _app(sv)
    for sid in ("bybit_spot", "delta_spot"):
        sv.rpc().supervisor.startProcess(sid, True)
    body = wait_for(lambda: (r := c.get("/api/health")).status_code == 200 and r.get_json(), 15)
    assert body["delivering"] == ["bybit_spot", "delta_spot"] and body["feeds"]["bybit_spot"]["status"] == "ok"

    sim.exchanges["bybit"].faults.silent = True
    body = wait_for(lambda: (r := c.get("/api/health")).status_code == 503 and r.get_json(), 10)
    assert body["status"] == "degraded" and body["stale"] == ["bybit_spot"], body
    assert any("stale feeds: bybit_spot" in reason for reason in body["reasons"])
    assert any(reason.startswith("bybit_spot: no data for") for reason in body["reasons"]), body["reasons"]
    assert body["feeds"]["bybit_spot"]["kinds"] == ["stale"] and body["feeds"]["delta_spot"]["status"] == "ok"
    spot = _status(c, "bybit_spot")
    assert spot["stale"] and spot["badge"] == "stale" and spot["last_update_age_s"] > 2 and not spot["delivering"]
    text = c.get("/metrics").get_data(as_text=True)
    assert 'ltp_feed_stale{exchange="bybit",service="bybit_spot"} 1.0' in text
    assert 'ltp_health{status="degraded"} 1.0' in text

    # Nothing delivers any more: unhealthy.
    sim.exchanges["delta"].faults.silent = True
    body = wait_for(lambda: (b := c.get("/api/health").get_json())["status"] == "unhealthy" and b, 10)
    assert any("no enabled feed is delivering" in reason for reason in body["reasons"])


def test_failed_connections_make_health_unhealthy_at_once_with_the_cause(redis_server, sim, make_supervisor):
    """Every feed fails DNS and nothing has arrived: not healthy within seconds (it was healthy for stale_after = 60 s)."""
    sv = make_supervisor()
    _enable(sv, "bybit_spot", "delta_spot", endpoints={
        "bybit": {"spot_ws": "ws://ltp-test.invalid/bybit/v5/public/spot"},
        "delta": {"india_ws": "ws://ltp-test.invalid/delta", "india_rest": "http://ltp-test.invalid/delta"},
    })
    c = _app(sv)
    t0 = time.monotonic()
    for sid in ("bybit_spot", "delta_spot"):
        sv.rpc().supervisor.startProcess(sid, False)
    wait_for(lambda: c.get("/api/health").status_code == 503, 10)  # was 200 for stale_after (60 s)
    elapsed = time.monotonic() - t0
    body = wait_for(lambda: (b := c.get("/api/health").get_json())
                    and all(f["status"] != "starting" for f in b["feeds"].values()) and b, 5)
    assert body["status"] == "unhealthy" and body["delivering"] == []
    spot = body["feeds"]["bybit_spot"]
    assert spot["status"] == "degraded" and spot["kinds"] == ["no_data_since_start"], spot
    assert "connect_failed" in spot["last_error"] and "ltp-test.invalid" in spot["last_error"]
    assert any(r.startswith("bybit_spot: no data since it started") and "connect_failed" in r for r in body["reasons"])
    assert any(r.startswith("delta_spot: no data since it started") for r in body["reasons"]), body["reasons"]
    status = _status(c, "bybit_spot")
    assert status["stale"] and status["badge"] == "stale" and "ltp-test.invalid" in status["last_error"]
    print(f"DNS failure -> health 503 after {elapsed:.1f} s (process start included)")


def test_enabled_feed_stopped_or_without_a_program_is_not_healthy(redis_server, sim, make_supervisor):
    sv = make_supervisor()
    _enable(sv, "bybit_spot")
    c = _app(sv)
    health = c.get("/api/health")
    assert health.status_code == 503, health.get_json()  # enabled, never started
    sv.rpc().supervisor.startProcess("bybit_spot", True)
    wait_for(lambda: c.get("/api/health").status_code == 200, 15)

    assert c.post("/api/service/bybit_spot/stop").status_code == 200
    body = c.get("/api/health").get_json()
    assert body["status"] == "unhealthy" and body["feeds"]["bybit_spot"]["kinds"] == ["stopped"], body
    assert any("bybit_spot: stopped (stopped by an operator via panel" in r for r in body["reasons"]), body["reasons"]

    # An enabled feed supervisord has no program for.
    _enable(sv, "delta_spot")
    sv.rpc().supervisor.removeProcessGroup("delta_spot")
    c = _app(sv)
    assert c.post("/api/service/bybit_spot/start").status_code == 200
    body = wait_for(lambda: (b := c.get("/api/health").get_json())["feeds"]["bybit_spot"]["status"] == "ok" and b, 15)
    assert body["status"] == "unhealthy" and body["feeds"]["delta_spot"]["kinds"] == ["no_program"], body
    assert any("delta_spot: supervisord has no program 'delta_spot'" in r for r in body["reasons"])
    assert _status(c, "delta_spot")["badge"] == "failed"


@contextlib.contextmanager
def keep_writing(redis_server, key: str, mapping: dict[str, str], every: float = 0.05):
    """Keep a field in a running feed's status hash, which the feed rewrites every second."""
    r, stop = redis_server.client(), threading.Event()

    def run() -> None:
        while not stop.is_set():
            r.hset(key, mapping=mapping)
            stop.wait(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)


def test_config_error_and_no_data_list_are_reported(redis_server, sim, make_supervisor):
    sv = make_supervisor()
    _enable(sv, "bybit_spot", "delta_spot")
    c = _app(sv)
    sv.rpc().supervisor.startProcess("bybit_spot", True)
    wait_for(lambda: _status(c, "bybit_spot")["delivering"], 15)
    # A bad value: delta_spot refuses to start and says why in its status hash (state=config_error).
    good = sv.config_path.read_text()
    data = yaml.safe_load(good)
    data["exchanges"]["delta"]["services"]["delta_spot"]["ping_interval"] = "fast"
    sv.config_path.write_text(yaml.safe_dump(data))
    try:
        sv.rpc().supervisor.startProcess("delta_spot", False)
        delta = wait_for(lambda: (s := _status(c, "delta_spot"))["badge"] == "config_error" and s, 15)
        assert "ping_interval: expected a number of seconds in 1..3600, got 'fast'" in delta["last_error"]
        # `no_data`: configured symbols without data (the feed writes it; kept here while the test reads).
        with keep_writing(redis_server, "service:status:bybit_spot", {"no_data": '["XRPUSDT", "DOGEUSDT"]'}):
            body = wait_for(lambda: (b := c.get("/api/health").get_json())["feeds"]["bybit_spot"]["status"] == "degraded" and b, 5)
            assert _status(c, "bybit_spot")["no_data"] == ["XRPUSDT", "DOGEUSDT"]
        assert body["status"] == "unhealthy"
        assert body["feeds"]["delta_spot"]["kinds"] == ["config_error"], body["feeds"]["delta_spot"]
        assert f"delta_spot: refuses to start, configuration error: {delta['last_error']}" in body["reasons"]
        assert body["feeds"]["bybit_spot"]["kinds"] == ["symbols_without_data"]
        assert "bybit_spot: no data for 2 symbol(s): XRPUSDT, DOGEUSDT" in body["reasons"]
        # The state is stable while supervisord retries the start (STARTING / BACKOFF with new pids).
        for _ in range(10):
            assert _status(c, "delta_spot")["badge"] == "config_error"
            time.sleep(0.2)
    finally:
        sv.config_path.write_text(good)
