"""Every /api/ error is JSON (`error` + `message`, no traceback); the UI keeps Flask's HTML pages.

Like test_security, these need no supervisord: its socket is absent on purpose.
"""

from __future__ import annotations

import threading
import time

import pytest

from controlpanel import PanelSettings, create_app, deps
from tests.harness import sim_config
from workers.runtime.config import parse_config


@pytest.fixture
def config(redis_server):
    return parse_config(sim_config(redis_server.url, 9))


@pytest.fixture
def app(config, tmp_path):
    return create_app(config, f"unix://{tmp_path}/absent.sock", settings=PanelSettings())


def _json_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/json", resp.mimetype
    body = resp.get_json()
    assert body["error"] == code and body["message"], body
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


def test_unknown_action_and_unknown_paths_are_json_404(app):
    c = app.test_client()
    body = _json_error(c.post("/api/service/bybit_spot/explode"), 404, "not_found")
    assert "/api/service/bybit_spot/explode" in body["message"] and "/openapi.json" in body["message"]
    _json_error(c.get("/api/nope"), 404, "not_found")
    _json_error(c.delete("/api/"), 404, "not_found")
    # Outside /api/ the browser gets Flask's HTML page.
    page = c.get("/nope")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_wrong_method_is_json_405_with_allow(app):
    c = app.test_client()
    body = _json_error(c.get("/api/service/bybit_spot/start"), 405, "method_not_allowed")
    assert body["allowed_methods"] == ["OPTIONS", "POST"]
    body = _json_error(c.post("/api/status"), 405, "method_not_allowed")
    assert "GET" in body["allowed_methods"]
    resp = c.put("/api/service/bybit_spot/log")
    _json_error(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]
    assert c.post("/docs").mimetype == "text/html"


def test_unhandled_exception_is_json_500_without_details(config, tmp_path, caplog):
    app = create_app(config, f"unix://{tmp_path}/absent.sock", settings=PanelSettings())

    def boom():
        raise RuntimeError("secret detail /etc/passwd")

    app.add_url_rule("/api/_boom", view_func=boom)
    app.add_url_rule("/_boom", endpoint="ui_boom", view_func=boom)
    c = app.test_client()
    resp = c.get("/api/_boom")
    body = _json_error(resp, 500, "internal_server_error")
    assert "secret detail" not in resp.get_data(as_text=True) and "log" in body["message"]
    assert "secret detail" in caplog.text  # the traceback goes to the panel's log instead
    page = c.get("/_boom")
    assert page.status_code == 500 and page.mimetype == "text/html" and "secret detail" not in page.get_data(as_text=True)


def test_csrf_and_host_errors_are_json(app):
    c = app.test_client()
    c.get("/")  # session cookie with a CSRF token
    _json_error(c.post("/api/service/bybit_spot/stop"), 403, "csrf")
    _json_error(c.get("/api/status", headers={"Host": "rebind.evil.example"}), 400, "bad_host")


def test_exhausted_redis_pool_waits_then_answers_503_json(app):
    """The panel's pool is bounded and blocking: no "Too many connections", a 503 after a short wait."""
    client = deps.of(app).redis
    pool = client.connection_pool
    held = []
    try:
        while len(held) < pool.max_connections:
            held.append(pool.get_connection())
        c = app.test_client()
        t0 = time.monotonic()
        resp = c.get("/api/prices?prefix=bybit_spot")
        waited = time.monotonic() - t0
        body = _json_error(resp, 503, "redis_unavailable")
        assert "No connection available" in body["message"]
        assert deps.REDIS_POOL_WAIT_S - 0.1 <= waited < deps.REDIS_POOL_WAIT_S + 2
        # Status degrades instead of failing: it reports Redis as down.
        assert c.get("/api/status").get_json()["redis"]["ok"] is False
        # A connection handed back is picked up by a waiting request.
        threading.Timer(0.3, pool.release, args=(held.pop(),)).start()
        assert c.get("/api/prices?prefix=bybit_spot").status_code == 200
    finally:
        for conn in held:
            pool.release(conn)
    assert pool.max_connections == PanelSettings().threads + deps.REDIS_POOL_SPARE


def test_create_app_starts_no_threads(config, tmp_path):
    before = {t.name for t in threading.enumerate()}
    create_app(config, f"unix://{tmp_path}/absent.sock", settings=PanelSettings())
    assert {t.name for t in threading.enumerate()} - before == set()
