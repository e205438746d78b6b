"""Panel security: tokens off loopback, login session, CSRF, rate limits, Host check, id validation.

These need no supervisord: a request that passes every guard reaches the
XML-RPC client and gets 503 (nothing listens on the socket), which is how a
test tells "allowed" from "refused".
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from controlpanel import InsecureBindError, PanelSettings, create_app
from tests.harness import ROOT, sim_config
from workers.runtime.config import parse_config

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def config(redis_server):
    return parse_config(sim_config(redis_server.url, 9))


def _app(config, tmp_path, **settings):
    return create_app(config, f"unix://{tmp_path}/absent.sock", settings=PanelSettings(**settings))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf[-_]token" (?:content|value)="([^"]+)"', html).group(1)


def test_non_loopback_mutation_needs_the_bearer_token(config, tmp_path):
    c = _app(config, tmp_path, host="0.0.0.0", token=TOKEN).test_client()
    resp = c.post("/api/service/bybit_spot/stop")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.get_json()["error"] == "unauthorized"
    assert c.post("/api/service/bybit_spot/stop", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = c.post("/api/service/bybit_spot/stop", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 503  # past auth: only the (absent) supervisord is left
    unknown = c.post("/api/service/nosuch/stop", headers={"Authorization": f"Bearer {TOKEN}"})
    assert unknown.status_code == 404 and "bybit_spot" in unknown.get_json()["valid_ids"]
    # Reads of figures stay open; logs and the dashboard need a login.
    assert c.get("/api/status").status_code == 200
    assert c.get("/api/service/bybit_spot/log").status_code == 401
    page = c.get("/")
    assert page.status_code == 302 and page.headers["Location"].endswith("/login")


def test_login_sets_a_strict_httponly_session_and_posts_need_csrf(config, tmp_path):
    c = _app(config, tmp_path, host="0.0.0.0", token=TOKEN).test_client()
    form_csrf = _csrf(c.get("/login").get_data(as_text=True))
    assert c.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF field
    assert c.post("/login", data={"token": "wrong", "csrf_token": form_csrf}).status_code == 401
    resp = c.post("/login", data={"token": TOKEN, "csrf_token": form_csrf})
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and cookie.startswith("ltp_session=")

    page = c.get("/")
    assert page.status_code == 200
    csrf = _csrf(page.get_data(as_text=True))
    assert c.post("/api/service/bybit_spot/stop").status_code == 403
    bad = c.post("/api/service/bybit_spot/stop", headers={"X-CSRF-Token": "forged"})
    assert bad.status_code == 403 and bad.get_json()["error"] == "csrf"
    assert c.post("/api/service/bybit_spot/stop", headers={"X-CSRF-Token": csrf}).status_code == 503
    assert c.get("/api/service/bybit_spot/log").status_code != 401

    c.post("/logout", data={"csrf_token": csrf})
    assert c.post("/api/service/bybit_spot/stop", headers={"X-CSRF-Token": csrf}).status_code == 401


def test_loopback_browser_posts_need_csrf_and_same_origin(config, tmp_path):
    c = _app(config, tmp_path).test_client()
    csrf = _csrf(c.get("/").get_data(as_text=True))
    assert c.post("/api/service/bybit_spot/stop", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert c.post("/api/service/bybit_spot/stop").status_code == 403  # session cookie, no CSRF header
    evil = c.post("/api/service/bybit_spot/stop", headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.get_json()["error"] == "bad_origin"
    assert c.post("/api/service/bybit_spot/stop", headers={"X-CSRF-Token": csrf, "Origin": "http://localhost"}).status_code == 503
    # A cross-site form post carries an Origin but no CSRF header, even without a cookie.
    fresh = _app(config, tmp_path).test_client()
    assert fresh.post("/api/service/bybit_spot/stop", headers={"Origin": "http://evil.example"}).status_code == 403
    # A script on loopback (no cookie, no Origin) needs nothing.
    assert fresh.post("/api/service/bybit_spot/stop").status_code == 503


def test_loopback_panel_rejects_foreign_host_headers(config, tmp_path):
    c = _app(config, tmp_path).test_client()
    assert c.get("/api/status", headers={"Host": "rebind.evil.example"}).status_code == 400
    assert c.get("/api/status", headers={"Host": "127.0.0.1:8080"}).status_code == 200
    assert c.get("/api/status", headers={"Host": "[::1]:8080"}).status_code == 200


def test_invalid_ids_are_404_and_never_reach_supervisord(config, tmp_path):
    c = _app(config, tmp_path).test_client()
    for sid in ("nosuch", "redis", "..", "bybit_spot;rm -rf", "%2e%2e%2fetc"):
        resp = c.post(f"/api/service/{sid}/start")
        assert resp.status_code == 404, sid
        assert c.get(f"/api/service/{sid}/log").status_code == 404, sid


def test_mutations_are_rate_limited(config, tmp_path):
    c = _app(config, tmp_path, rate_burst=3, rate_per_s=0.01).test_client()
    codes = [c.post("/api/service/nosuch/start").status_code for _ in range(5)]
    assert codes[:3] == [404, 404, 404] and codes[3:] == [429, 429]
    resp = c.post("/api/service/nosuch/start")
    assert int(resp.headers["Retry-After"]) >= 1 and resp.get_json()["error"] == "rate_limited"
    assert c.get("/api/status").status_code == 200  # reads are not limited


def test_refuses_to_bind_the_network_without_a_token(config):
    with pytest.raises(InsecureBindError):
        create_app(config, settings=PanelSettings(host="0.0.0.0"))
    proc = subprocess.run(
        [sys.executable, "-m", "controlpanel"], cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "LTP_PANEL_HOST": "0.0.0.0", "LTP_PANEL_PORT": "1", "LTP_PANEL_TOKEN": ""},
    )
    assert proc.returncode == 2 and "LTP_PANEL_TOKEN" in proc.stderr


def test_every_post_route_refuses_a_browser_post_without_the_csrf_token(config, tmp_path):
    """Forms are checked by CSRFProtect, API mutations by `mutating`: no POST route is left open to a foreign page."""
    app = _app(config, tmp_path)
    c = app.test_client()
    c.get("/")  # a browser session
    sample = {"service_id": "bybit_spot", "action": "stop"}
    posts = [r for r in app.url_map.iter_rules() if "POST" in (r.methods or ())]
    assert {r.endpoint for r in posts} >= {"auth.login", "auth.logout", "api.control"}
    for rule in posts:
        path = rule.build({k: v for k, v in sample.items() if k in rule.arguments})[1]
        assert c.post(path).status_code == 403, path
        assert c.post(path, headers={"Origin": "http://evil.example"}).status_code == 403, path


def test_bearer_calls_skip_csrf_even_with_a_cookie(config, tmp_path):
    c = _app(config, tmp_path, host="0.0.0.0", token=TOKEN).test_client()
    c.get("/login")  # a session cookie, but no CSRF header: the token is the credential
    resp = c.post("/api/service/bybit_spot/stop", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 503


def test_off_loopback_trusted_hosts(config, tmp_path):
    c = _app(config, tmp_path, host="0.0.0.0", token=TOKEN, trusted_hosts=("panel.example.lan",)).test_client()
    assert c.get("/api/status", headers={"Host": "panel.example.lan:8080"}).status_code == 200
    refused = c.get("/api/status", headers={"Host": "rebind.evil.example"})
    assert refused.status_code == 400 and refused.get_json()["error"] == "bad_host"
    # Without a list (the default), a network-bound panel answers to any name, as before.
    open_ = _app(config, tmp_path, host="0.0.0.0", token=TOKEN).test_client()
    assert open_.get("/api/status", headers={"Host": "10.1.2.3:8080"}).status_code == 200


def test_host_check_comes_before_csrf(config, tmp_path):
    c = _app(config, tmp_path).test_client()
    resp = c.post("/login", headers={"Host": "rebind.evil.example"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "bad_host"
