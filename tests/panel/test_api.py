"""Panel JSON API against real supervisord, real Redis and the Bybit simulator."""

from __future__ import annotations

import json
import time

import pytest

from controlpanel import PanelSettings, create_app
from tests.harness import wait_for

pytestmark = pytest.mark.e2e


def _status(client, service_id: str) -> dict:
    body = client.get("/api/status").get_json()
    return next(s for s in body["services"] if s["id"] == service_id)


def test_status_lists_configured_services_joined_with_supervisord(system):
    resp = system.client.get("/api/status")
    assert resp.status_code == 200
    body = resp.get_json()
    assert [s["id"] for s in body["services"]] == list(system.config.services)
    assert body["redis"]["ok"] and body["supervisor"]["ok"]
    spot = _status(system.client, "bybit_spot")
    assert spot["process_state"] == "STOPPED" and spot["badge"] == "stopped" and not spot["stale"]
    assert spot["exchange"] == "bybit" and spot["stale_after"] == system.config.services["bybit_spot"].stale_after
    assert {"redis", "autostart", "controlpanel"} <= {p["name"] for p in body["programs"]}
    assert body["summary"]["total"] == len(system.config.services)


def test_start_stop_restart_with_fault_mapping_logs_and_prices(system):
    c = system.client
    resp = c.post("/api/service/bybit_spot/start")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["process_state"] == "RUNNING"
    try:
        again = c.post("/api/service/bybit_spot/start")
        assert again.status_code == 409 and again.get_json()["error"] == "already_started"

        live = wait_for(lambda: (s := _status(c, "bybit_spot"))["data_points"] == 6 and s["messages_total"] > 0 and s, 15)
        assert live["badge"] == "running" and not live["stale"]
        assert live["last_update_age_s"] < 5 and live["pid"] == system.sv.info("bybit_spot")["pid"]

        log = wait_for(lambda: (b := c.get("/api/service/bybit_spot/log?lines=50").get_json())
                       and any("connected to ws://" in line for line in b["lines"]) and b, 10)
        assert len(log["lines"]) <= 50
        assert len(c.get("/api/service/bybit_spot/log?lines=2").get_json()["lines"]) <= 2
        for bad in ("0", "abc", "100000"):
            assert c.get(f"/api/service/bybit_spot/log?lines={bad}").status_code == 400

        prices = wait_for(lambda: (p := c.get("/api/prices?prefix=bybit_spot").get_json())
                          and all(len(r["history"]) >= 2 for r in p["rows"]) and p, 15)
        assert prices["total"] == 6 and prices["service"] == "bybit_spot"
        btc = next(r for r in prices["rows"] if r["symbol"] == "BTCUSDT")
        assert float(btc["fields"]["ltp"]) > 0
        assert btc["history"][-1][0] >= btc["history"][0][0]  # oldest first
        page = c.get("/api/prices?prefix=bybit_spot&offset=2&limit=2").get_json()
        assert [r["symbol"] for r in page["rows"]] == sorted(r["symbol"] for r in prices["rows"])[2:4]
        missing = c.get("/api/prices?prefix=nope")
        assert missing.status_code == 404 and "bybit_spot" in missing.get_json()["valid_prefixes"]

        old_pid = system.sv.info("bybit_spot")["pid"]
        restarted = c.post("/api/service/bybit_spot/restart")
        assert restarted.status_code == 200 and restarted.get_json()["process_state"] == "RUNNING"
        assert system.sv.info("bybit_spot")["pid"] != old_pid
    finally:
        stopped = c.post("/api/service/bybit_spot/stop")
    assert stopped.status_code == 200 and stopped.get_json()["process_state"] == "STOPPED"
    assert system.sv.info("bybit_spot")["statename"] == "STOPPED"
    not_running = c.post("/api/service/bybit_spot/stop")
    assert not_running.status_code == 409 and not_running.get_json()["error"] == "not_running"


def test_unknown_ids_give_404_with_the_valid_list(system):
    for path in ("/api/service/nosuch/start", "/api/service/redis/stop"):
        resp = system.client.post(path)
        assert resp.status_code == 404
        body = resp.get_json()
        assert body["error"] == "unknown_service" and body["valid_ids"] == sorted(system.config.services)
    assert system.client.get("/api/service/nosuch/log").status_code == 404
    assert system.client.post("/api/service/bybit_spot/explode").status_code == 404


def test_spawn_error_is_a_clear_500(system):
    good = system.sv.config_path.read_text()
    system.sv.config_path.write_text("exchanges: [this is not valid\n")  # the feed exits at once
    try:
        resp = system.client.post("/api/service/bybit_spot_testnet_spot/start")
        assert resp.status_code == 500, resp.get_json()
        body = resp.get_json()
        assert body["error"] in ("spawn_error", "abnormal_termination") and "see its log" in body["message"]
    finally:
        system.sv.config_path.write_text(good)
        system.client.post("/api/service/bybit_spot_testnet_spot/stop")
    wait_for(lambda: system.sv.info("bybit_spot_testnet_spot")["statename"] in ("STOPPED", "EXITED", "FATAL"), 10)


def test_redis_control_key_is_carried_out_by_the_supervised_panel(system):
    r = system.redis.client()
    wait_for(lambda: system.sv.info("controlpanel")["statename"] == "RUNNING", 10)
    r.set("service:control:bybit_spot", json.dumps({"action": "start"}), ex=60)
    wait_for(lambda: system.sv.info("bybit_spot")["statename"] == "RUNNING", 15)
    wait_for(lambda: r.hget("service:status:bybit_spot", "control_result") == "ok", 5)
    assert not r.exists("service:control:bybit_spot")
    assert r.hget("service:status:bybit_spot", "control_action") == "start"

    r.set("service:control:bybit_spot", '{"action": "explode"}', ex=60)
    wait_for(lambda: (r.hget("service:status:bybit_spot", "control_result") or "").startswith("error: unknown action"), 5)
    assert _status(system.client, "bybit_spot")["control_result"].startswith("error")

    r.set("service:control:bybit_spot", '{"action": "stop"}', ex=60)
    wait_for(lambda: system.sv.info("bybit_spot")["statename"] == "STOPPED", 15)
    wait_for(lambda: r.hget("service:status:bybit_spot", "control_action") == "stop", 5)


def test_metrics_health_openapi_and_docs(system):
    c = system.client
    health = c.get("/api/health")
    assert health.status_code == 200 and health.get_json()["status"] == "healthy", health.get_json()
    text = c.get("/metrics").get_data(as_text=True)
    assert 'ltp_feed_messages_total{exchange="bybit",service="bybit_spot"}' in text
    assert 'ltp_feed_data_points{exchange="bybit",service="bybit_spot"}' in text
    assert "ltp_supervisor_up 1.0" in text and "ltp_redis_up 1.0" in text
    assert 'ltp_panel_requests_total{endpoint="api.health",method="GET",status="200"}' in text
    spec = c.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/status", "/api/health", "/api/prices", "/metrics", "/api/service/{service_id}/log",
                 "/api/service/{service_id}/start", "/api/service/{service_id}/stop", "/api/service/{service_id}/restart"):
        assert path in spec["paths"]
    docs = c.get("/docs").get_data(as_text=True)
    assert all(path in docs for path in spec["paths"])


def test_unreachable_supervisord_gives_503_not_a_traceback(system, tmp_path):
    app = create_app(system.config, f"unix://{tmp_path}/absent.sock", settings=PanelSettings())
    c = app.test_client()
    resp = c.post("/api/service/bybit_spot/start")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"] == "supervisor_unavailable" and "Traceback" not in resp.get_data(as_text=True)
    status = c.get("/api/status")
    assert status.status_code == 200 and status.get_json()["supervisor"]["ok"] is False
    health = c.get("/api/health")
    assert health.status_code == 503 and health.get_json()["status"] == "unhealthy"


def test_status_is_one_quick_round_trip(system):
    c = system.client
    c.get("/api/status")
    samples = []
    for _ in range(30):
        t0 = time.perf_counter()
        assert c.get("/api/status").status_code == 200
        samples.append(time.perf_counter() - t0)
    samples.sort()
    assert samples[len(samples) // 2] < 0.020, samples
