"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python package).

The panel under test is the real one: the `controlpanel` program of a private
supervisord, fed by the simulator through the real bybit_spot feed.
Screenshots go to $LTP_SCREENSHOT_DIR or a temp dir (printed), not the repo.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import requests

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: run `make install` (installs the Debian package chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -r requirements.txt")


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield b
        b.close()


@pytest.fixture
def shots() -> Path:
    path = Path(os.environ.get("LTP_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="ltp-shots-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {path}")
    return path


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
