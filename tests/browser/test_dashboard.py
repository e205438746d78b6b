"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python package).

The panel under test is the real one: the `controlpanel` program of a private
supervisord, fed by the simulator through the real bybit_spot feed.
Screenshots go to $LTP_SCREENSHOT_DIR or a temp dir (printed), not the repo.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time

import pytest
import requests
import yaml

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: run `make install` (installs the Debian package chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -r requirements.txt")


@pytest.fixture
def panel(redis_server, sim, make_supervisor):
    sv = make_supervisor()
    sv.rpc().supervisor.startProcess("bybit_spot", True)
    url = f"http://127.0.0.1:{sv.panel_port}"
    wait_for(lambda: requests.get(f"{url}/api/status", timeout=2).ok, 15)
    wait_for(lambda: redis_server.client().llen("ltp:history:bybit_spot:BTCUSDT") >= 3, 15)
    return sv, url


def _badge(page, sid: str):
    return page.locator(f'.svc[data-service="{sid}"] [data-role="badge"]')


def test_stop_and_start_from_the_dashboard(browser, panel, shots):
    sv, url = panel
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto(url)

    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "running", timeout=10_000)
    listed = page.locator(".svc").evaluate_all("els => els.map(e => e.dataset.service)")
    assert "bybit_spot" in listed and "bybit_spot_testnet_spot" in listed
    sync_api.expect(_badge(page, "bybit_spot_testnet_spot")).to_have_attribute("data-badge", "stopped")
    sync_api.expect(page.locator("#count-running")).to_have_text("1")
    row = page.locator('#price-table tr[data-symbol="BTCUSDT"]')
    sync_api.expect(row).to_be_visible(timeout=10_000)
    sync_api.expect(row.locator("polyline")).to_have_attribute("points", re.compile(r"\d"))
    # The contract's names on every exchange: best_bid / best_ask (sizes in the tooltip), price_change_percent.
    book = row.locator("td").nth(3)
    sync_api.expect(book).to_have_text(re.compile(r"^[\d,.]+ / [\d,.]+$"))
    sync_api.expect(book).to_have_attribute("title", re.compile(r"^size [\d,.]+ / [\d,.]+$"))
    sync_api.expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^[+-]?[\d.]+%$"))
    page.screenshot(path=str(shots / "desktop.png"), full_page=True)

    card = page.locator('.svc[data-service="bybit_spot"]')
    card.locator('[data-action="stop"]').click()
    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "stopped", timeout=10_000)
    assert "STOPPED" in sv.ctl("status", "bybit_spot")
    sync_api.expect(page.locator(".toast--ok")).to_contain_text("stop done")
    sync_api.expect(card.locator('[data-action="start"]')).to_be_enabled()

    card.locator('[data-action="start"]').click()
    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "running", timeout=10_000)
    assert "RUNNING" in sv.ctl("status", "bybit_spot")

    card.locator('[data-action="log"]').click()
    sync_api.expect(page.locator("#drawer")).to_have_class(re.compile("drawer--open"))
    sync_api.expect(page.locator("#drawer-log")).to_contain_text("connected to ws://", timeout=10_000)
    # Wait for the slide-in transition to finish before the screenshot.
    wait_for(lambda: abs((box := page.locator("#drawer").bounding_box())["x"] + box["width"] - 1280) < 1, 5)
    page.screenshot(path=str(shots / "desktop-log.png"))
    page.keyboard.press("Escape")

    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    phone.goto(url)
    sync_api.expect(_badge(phone, "bybit_spot")).to_have_attribute("data-badge", "running", timeout=10_000)
    sync_api.expect(phone.locator('#price-table tr[data-symbol="BTCUSDT"]')).to_be_visible(timeout=10_000)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
    phone.screenshot(path=str(shots / "phone.png"), full_page=True)
    assert not errors, errors


def test_login_and_actions_with_a_token(browser, redis_server, make_supervisor, shots):
    """With LTP_PANEL_TOKEN set, the dashboard needs the login form; its POSTs carry Flask-WTF's CSRF token."""
    token = "browser-test-token"
    sv = make_supervisor(env={"LTP_PANEL_TOKEN": token})
    url = f"http://127.0.0.1:{sv.panel_port}"
    wait_for(lambda: requests.get(f"{url}/api/status", timeout=2).ok, 15)
    assert requests.post(f"{url}/api/service/bybit_spot/start", timeout=5).status_code == 401

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    assert page.url.endswith("/login")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    sync_api.expect(page.locator(".login__error")).to_have_text("Wrong token.")
    page.screenshot(path=str(shots / "login.png"))
    page.fill("#token", token)
    page.click("button[type=submit]")
    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "stopped", timeout=10_000)

    card = page.locator('.svc[data-service="bybit_spot"]')
    card.locator('[data-action="start"]').click()
    sync_api.expect(page.locator(".toast--ok")).to_contain_text("start done", timeout=10_000)
    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "running", timeout=10_000)
    assert "RUNNING" in sv.ctl("status", "bybit_spot")
    # The price table moves to the first feed with data on its own (none had any at page load).
    sync_api.expect(page.locator('#price-table tr[data-symbol="BTCUSDT"]')).to_be_visible(timeout=10_000)
    page.screenshot(path=str(shots / "token-dashboard.png"))

    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(url)
    assert page.url.endswith("/login")
    assert not errors, errors


@contextlib.contextmanager
def _keep_writing(redis_server, key: str, mapping: dict[str, str]):
    """Keep fields in a running feed's status hash (which it rewrites every second) while the test looks."""
    r, stop = redis_server.client(), threading.Event()

    def run() -> None:
        while not stop.is_set():
            r.hset(key, mapping=mapping)
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)


def test_failures_stale_rows_and_funding_on_the_dashboard(browser, redis_server, sim, make_supervisor, shots):
    """Every failure shows on its card at once with its cause; stale rows are marked; funding per interval and per 8 h."""
    sv = make_supervisor(overrides={"hyperliquid_perpetual": {"symbols": ["BTC", "ETH"]}})
    good = yaml.safe_load(sv.config_path.read_text())
    good["exchanges"]["bybit"]["endpoints"]["testnet_spot_ws"] = "ws://ltp-test.invalid/bybit/v5/public/spot"
    sv.config_path.write_text(yaml.safe_dump(good))
    url = f"http://127.0.0.1:{sv.panel_port}"
    wait_for(lambda: requests.get(f"{url}/api/status", timeout=2).ok, 15)
    r = redis_server.client()
    rpc = sv.rpc().supervisor
    for sid in ("bybit_spot", "hyperliquid_perpetual", "coindcx_futures_rest"):
        rpc.startProcess(sid, False)
    wait_for(lambda: r.scard("ltp:symbols:bybit_spot") == 6 and r.hget("coindcx_futures:B-BTC_USDT", "estimated_funding_rate")
             and r.hget("hyperliquid_perp:BTC", "funding_rate"), 25)

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "running", timeout=10_000)
    # A stop from the card: the rows say their values are no longer current, and why.
    page.locator('.svc[data-service="bybit_spot"] [data-action="stop"]').click()
    sync_api.expect(_badge(page, "bybit_spot")).to_have_attribute("data-badge", "stopped", timeout=10_000)
    page.locator('#price-tabs [data-prefix="bybit_spot"]').click()
    row = page.locator('#price-table tr[data-symbol="BTCUSDT"]')
    sync_api.expect(row).to_have_attribute("data-stale-cause", "stopped", timeout=10_000)
    sync_api.expect(row.locator("td").nth(0)).to_have_text("BTCUSDT ⚠")
    sync_api.expect(row.locator("td").nth(6)).to_have_text(re.compile(r"^stopped · "))
    sync_api.expect(row.locator("td").nth(0)).to_have_attribute("title", re.compile(r"^stale since \d{4}-.*: the feed was stopped"))
    card = page.locator('.svc[data-service="bybit_spot"]')
    sync_api.expect(card.locator('[data-role="rate"]')).to_have_text("–")

    t0 = time.monotonic()
    rpc.startProcess("bybit_spot_testnet_spot", False)  # its endpoint's name does not resolve
    testnet = page.locator('.svc[data-service="bybit_spot_testnet_spot"] [data-role="error"]')
    sync_api.expect(testnet).to_contain_text("ltp-test.invalid", timeout=10_000)
    shown_after = time.monotonic() - t0
    sync_api.expect(testnet).to_contain_text("no data since it started")
    sync_api.expect(testnet).to_contain_text("connect_failed: DNS")
    sync_api.expect(_badge(page, "bybit_spot_testnet_spot")).to_have_attribute("data-badge", "stale")

    # A bad value in exchanges.yaml: delta_options refuses to start (the file is restored at the end).
    bad = yaml.safe_load(sv.config_path.read_text())
    bad["exchanges"]["delta"]["services"]["delta_options"]["ping_interval"] = "fast"
    sv.config_path.write_text(yaml.safe_dump(bad))
    try:
        rpc.startProcess("delta_options", False)
        options = page.locator('.svc[data-service="delta_options"]')
        sync_api.expect(_badge(page, "delta_options")).to_have_attribute("data-badge", "config_error", timeout=10_000)
        sync_api.expect(_badge(page, "delta_options")).to_have_class(re.compile("badge--stopped"))
        sync_api.expect(_badge(page, "delta_options")).to_have_text("config error")
        sync_api.expect(options.locator('[data-role="error"]')).to_contain_text(
            "refuses to start, configuration error: ")
        sync_api.expect(options.locator('[data-role="error"]')).to_contain_text("ping_interval: expected a number of seconds")

        # `no_data` as the runtime writes it (kept while the page is looked at).
        with _keep_writing(redis_server, "service:status:hyperliquid_perpetual", {"no_data": '["ETH"]'}):
            hl = page.locator('.svc[data-service="hyperliquid_perpetual"] [data-role="error"]')
            sync_api.expect(hl).to_contain_text("no data for 1 symbol(s): ETH", timeout=10_000)
            page.locator('#price-tabs [data-prefix="bybit_spot"]').click()
            sync_api.expect(row).to_have_attribute("data-stale-cause", "stopped", timeout=10_000)
            page.screenshot(path=str(shots / "failures.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
            phone.goto(url)
            sync_api.expect(_badge(phone, "delta_options")).to_have_attribute("data-badge", "config_error", timeout=10_000)
            sync_api.expect(phone.locator('.svc[data-service="hyperliquid_perpetual"] [data-role="error"]')).to_contain_text(
                "no data for 1 symbol(s)", timeout=10_000)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
            phone.screenshot(path=str(shots / "phone-failures.png"), full_page=True)
    finally:
        sv.config_path.write_text(yaml.safe_dump(good))

    page.locator('#price-tabs [data-prefix="hyperliquid_perp"]').click()
    extras = page.locator('#price-table tr[data-symbol="BTC"] td').nth(4)
    sync_api.expect(extras).to_have_text(re.compile(r"^fund -?[\d.]+%/1h \(-?[\d.]+%/8h\) · mark "), timeout=10_000)
    page.screenshot(path=str(shots / "funding-hyperliquid.png"))


    def shown_matches_redis() -> tuple[float, float, float] | None:
        # The simulator moves the rate; the page shows it as of its last refresh: compare the two
        # until one refresh has caught up (the page polls every second).
        hourly, eight = (float(x) for x in re.findall(r"(-?[\d.]+)%", extras.inner_text())[:2])
        rate = float(r.hget("hyperliquid_perp:BTC", "funding_rate"))
        ok = abs(hourly - rate * 100) < 0.0001 and abs(eight - rate * 800) < 0.0001
        return (rate, hourly, eight) if ok else None

    wait_for(shown_matches_redis, 10, 0.2)

    page.locator('#price-tabs [data-prefix="coindcx_futures"]').click()
    extras = page.locator('#price-table tr[data-symbol="B-BTC_USDT"] td').nth(4)
    sync_api.expect(extras).to_have_text(re.compile(r"^fund -?[\d.]+%/8h · est -?[\d.]+%/8h · mark "), timeout=10_000)
    page.screenshot(path=str(shots / "funding-coindcx.png"))
    print(f"connection failure on the card {shown_after:.1f} s after the start")
    assert not errors, errors
