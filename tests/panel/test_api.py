"""Panel JSON API against real supervisord, real Redis and the Bybit simulator."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime

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
    wait_for(lambda: (r.hget("service:status:bybit_spot", "control_result") or "").startswith("refused: unknown action"), 5)
    assert _status(system.client, "bybit_spot")["control_result"].startswith("refused")

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


def _iso_epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_stopped_feed_has_rate_zero_its_true_age_and_is_stale(system):
    c, r = system.client, system.redis.client()
    assert c.post("/api/service/bybit_spot/start").status_code == 200
    try:
        wait_for(lambda: (s := _status(c, "bybit_spot"))["messages_per_s"] > 0 and s["data_points"] == 6 and not s["stale"], 15)
    finally:
        assert c.post("/api/service/bybit_spot/stop").status_code == 200
    first = _status(c, "bybit_spot")
    assert r.hget("service:status:bybit_spot", "messages_per_s") not in (None, "", "0.0")  # the hash keeps the last rate
    assert first["messages_per_s"] == 0.0 and first["stale"], first
    assert first["badge"] == "stopped" and first["uptime_s"] is None and not first["delivering"]
    time.sleep(1.5)
    later = _status(c, "bybit_spot")
    assert later["messages_per_s"] == 0.0 and later["last_update_age_s"] >= first["last_update_age_s"] + 1.4
    true_age = time.time() - _iso_epoch(r.hget("service:status:bybit_spot", "last_message_at"))
    assert abs(later["last_update_age_s"] - true_age) < 1.0, (later["last_update_age_s"], true_age)
    # A disabled, stopped feed's leftover data is stale, but it is not a health problem.
    health = c.get("/api/health").get_json()
    assert health["status"] == "healthy" and "bybit_spot" not in health["feeds"], health


def test_restarts_count_only_unexpected_starts(system):
    """Six clicks (start/stop x3) are operator actions, not restarts; a kill -9 that supervisord repairs is one."""
    c, r, sid = system.client, system.redis.client(), "delta_spot"
    for _ in range(3):
        assert c.post(f"/api/service/{sid}/start").status_code == 200
        assert c.post(f"/api/service/{sid}/stop").status_code == 200
    wait_for(lambda: r.get(f"service:starts:{sid}") == "3", 10)
    s = _status(c, sid)
    assert s["restarts"] == 0, s  # was 2: every start after the first counted
    assert (s["process_starts"], s["operator_starts"], s["operator_stops"]) == (3, 3, 3), s
    assert s["last_operator_action"]["action"] == "stop" and s["last_operator_action"]["via"] == "panel"

    assert c.post(f"/api/service/{sid}/start").status_code == 200
    try:
        wait_for(lambda: r.get(f"service:starts:{sid}") == "4", 10)
        pid = system.sv.info(sid)["pid"]
        os.kill(pid, signal.SIGKILL)  # supervisord restarts it: an unexpected start
        wait_for(lambda: r.get(f"service:starts:{sid}") == "5", 15)
        assert _status(c, sid)["restarts"] == 1
        assert c.post(f"/api/service/{sid}/restart").status_code == 200
        wait_for(lambda: r.get(f"service:starts:{sid}") == "6", 10)
        s = _status(c, sid)
        assert (s["restarts"], s["process_starts"], s["operator_starts"]) == (1, 6, 5), s
        assert 'ltp_feed_restarts_total{exchange="delta",service="delta_spot"} 1.0' in c.get("/metrics").get_data(as_text=True)
    finally:
        c.post(f"/api/service/{sid}/stop")


def test_dead_feed_keys_are_marked_stale_by_the_panel(system):
    """A feed whose status hash expired while supervisord says it is not running died without a word."""
    c, r, sid = system.client, system.redis.client(), "delta_spot"
    assert c.post(f"/api/service/{sid}/start").status_code == 200
    try:
        wait_for(lambda: (s := _status(c, sid))["data_points"] > 0 and s["messages_total"] > 0 and not s["stale"], 15)
    finally:
        system.sv.rpc().supervisor.stopProcess(sid, True)
    r.delete(f"service:status:{sid}")  # as if its final report never arrived and the 10 s TTL ran out
    symbols = r.smembers(f"ltp:symbols:{sid}")
    assert symbols and not any(r.hexists(f"{sid}:{sym}", "stale") and r.hget(f"{sid}:{sym}", "stale").startswith("not_running")
                               for sym in symbols)
    s = _status(c, sid)
    assert s["stale"] and s["process_state"] == "STOPPED"
    for sym in symbols:
        assert r.hget(f"{sid}:{sym}", "stale").startswith("not_running "), sym
    rows = c.get(f"/api/prices?prefix={sid}").get_json()["rows"]
    assert rows and all(row["stale"]["cause"] == "not_running" for row in rows), rows
    assert "died" in rows[0]["stale"]["meaning"] or "gone" in rows[0]["stale"]["meaning"]


def test_bad_bytes_in_redis_do_not_break_the_api(system):
    """One byte \\xff in a status field gave 500 on /api/status, /api/health and /metrics; `lines=²` gave 500."""
    c, r = system.client, system.redis.client()
    r.hset("service:status:bybit_spot", mapping={"last_error": b"bad \xff byte", "state": b"\xfe"})
    r.hset("bybit_spot:BTCUSDT", "ltp", b"\xff1")
    r.sadd("ltp:symbols:bybit_spot", b"BAD\xff")
    r.hset(b"bybit_spot:BAD\xff", b"ltp\xff", b"1\xff")
    r.lpush(b"ltp:history:bybit_spot:BAD\xff", b"1\xff:2", b"17000:nan", b"17001:\xb2")
    try:
        for path in ("/api/status", "/api/health", "/metrics", "/api/prices?prefix=bybit_spot"):
            resp = c.get(path)
            assert resp.status_code in (200, 503) and resp.is_json == (path != "/metrics"), (path, resp.status_code)
        spot = _status(c, "bybit_spot")
        assert spot["last_error"] in ("", "bad \ufffd byte")
        rows = c.get("/api/prices?prefix=bybit_spot").get_json()["rows"]
        bad = next(row for row in rows if row["symbol"] == "BAD\ufffd")
        assert bad["fields"] == {"ltp\ufffd": "1\ufffd"} and bad["history"] == []
        for lines in ("²", "٣", "1²", "9" * 5000, "-1", " 5"):
            resp = c.get("/api/service/bybit_spot/log", query_string={"lines": lines})
            assert resp.status_code == 400 and resp.get_json()["error"] == "bad_request", (lines, resp.status_code)
        assert c.get("/api/status").status_code == 200  # the pooled connections are still in step
    finally:
        r.hdel("service:status:bybit_spot", "last_error", "state")
        r.srem("ltp:symbols:bybit_spot", b"BAD\xff")
        r.delete(b"bybit_spot:BAD\xff", b"ltp:history:bybit_spot:BAD\xff")


def test_venues_lists_every_declared_exchange_and_what_this_config_runs(system):
    from workers import registry

    body = system.client.get("/api/venues").get_json()
    assert [v["exchange"] for v in body["venues"]] == list(registry.EXCHANGES)
    by_name = {v["exchange"]: v for v in body["venues"]}
    assert by_name["coindcx"]["display"] == "CoinDCX" and by_name["coindcx"]["funding_interval_hours"] is None
    assert by_name["hyperliquid"]["funding_interval_hours"] == 1.0
    bybit = {f["id"]: f for f in by_name["bybit"]["feeds"]}
    assert bybit["bybit_options"] == {"id": "bybit_options", "kind": "option", "summary": "Bybit option chains with Greeks",
                                      "uses_rest": True, "configured": True, "enabled": False,
                                      "redis_prefix": system.config.services["bybit_options"].redis_prefix}
    assert {f["kind"] for v in body["venues"] for f in v["feeds"]} == {"spot", "derivative", "option"}
    assert "/api/venues" in system.client.get("/openapi.json").get_json()["paths"]
