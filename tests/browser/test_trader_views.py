"""The Compare and Chains pages in headless Chromium, at 1280 px and 390 px, on the real panel program.

Every feed runs on the simulator under a private supervisord; the pages are served by its
`controlpanel` program. Screenshots go to $LTP_SCREENSHOT_DIR or a temp dir (printed).
"""

from __future__ import annotations

import os
import re

import pytest
import requests

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: run `make install` (installs the Debian package chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -r requirements.txt")
expect = sync_api.expect

COINDCX_SPOT = {"symbols": ["B-BTC_USDT", "B-ETH_USDT", "I-BTC_INR", "I-USDT_INR"], "poll_interval": 1}
OPTION_FEEDS = ("bybit_options", "delta_options")


def _panel(sv) -> str:
    url = f"http://127.0.0.1:{sv.panel_port}"
    wait_for(lambda: requests.get(f"{url}/api/status", timeout=2).ok, 15)
    return url


def _page(browser, width: int, errors: list[str]):
    if width < 500:
        page = browser.new_page(viewport={"width": width, "height": 844}, device_scale_factor=2, is_mobile=True)
    else:
        page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))  # CSP refusals land here
    return page


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways ({width}px wide)"


def test_compare_page(browser, make_supervisor, shots):
    sv = make_supervisor(enabled=True, overrides={"coindcx_spot": COINDCX_SPOT, "bybit_options": {"enabled": False},
                                                  "delta_options": {"enabled": False}})
    url = _panel(sv)

    def ready():
        body = requests.get(f"{url}/api/compare/BTC", timeout=2).json()
        perps = [r for r in body["rows"] if r["kind"] == "perpetual"]
        return (len(body["rows"]) == 9 and body["fx"]["available"] and len(perps) == 4
                and all(r["funding"]["rate"] is not None and r["ltp"] for r in perps) and not any(r["stale"] for r in body["rows"]))
    wait_for(ready, 40, 0.5)

    errors: list[str] = []
    page = _page(browser, 1280, errors)
    page.goto(url)
    page.click("text=Compare")
    page.wait_for_url(re.compile(r"/compare$"))
    btc = page.locator('section.cmp[data-underlying="BTC"]')
    expect(btc).to_be_visible(timeout=10_000)
    expect(btc.locator("tbody tr")).to_have_count(9)
    expect(page.locator("#fx")).to_contain_text(re.compile(r"INR converted at [\d.]+ INR/USDT \(coindcx_spot I-USDT_INR"))
    expect(page.locator("#fx")).to_contain_text(re.compile(r", ltp, (now|\d+[smhd] ago)[;,]"))  # never "now ago"
    expect(btc.locator(".chip").first).to_contain_text(re.compile(r"widest LTP spread\s*[\d.]+ bps"))
    expect(btc.locator(".chip").nth(1)).to_contain_text(re.compile(r"widest funding diff\s*-?[\d.]+% /yr"))
    inr = btc.locator('tr[data-key="coindcx_spot:I-BTC_INR"]')
    expect(inr.locator("td.ltp")).to_contain_text("₹")
    hl = btc.locator('tr[data-key="hyperliquid_perpetual:BTC"]')
    expect(hl.locator('td[data-label="funding"]')).to_have_text(re.compile(r"^-?[\d.]+% / 1h$"))
    expect(hl.locator('td[data-label="basis"]')).to_have_text(re.compile(r"^[+-]?[\d.]+$"))
    expect(hl.locator('td[data-label="next"]')).to_have_text(re.compile(r"^in "))
    expect(btc.locator("td.ltp.is-high")).to_have_count(1)
    expect(btc.locator("td.ltp.is-low")).to_have_count(1)
    assert page.locator("section.cmp").count() >= 8
    page.screenshot(path=str(shots / "compare-desktop.png"), full_page=True)

    # one underlying from its tab, kept in the URL; the table keeps refreshing
    page.locator('#und-tabs [data-u="BTC"]').click()
    expect(page.locator("section.cmp")).to_have_count(1)
    assert page.url.endswith("#BTC")
    before = btc.locator('tr[data-key="bybit_spot:BTCUSDT"] td[data-label="age"]').text_content()
    page.wait_for_timeout(2500)
    expect(page.locator("section.cmp")).to_have_count(1)
    page.screenshot(path=str(shots / "compare-desktop-btc.png"))
    assert before is not None

    phone = _page(browser, 390, errors)
    phone.goto(f"{url}/compare#BTC")
    row = phone.locator('section.cmp[data-underlying="BTC"] tr[data-key="bybit_futures_orderbook:BTCUSDT"]')
    expect(row).to_be_visible(timeout=10_000)
    assert row.evaluate("e => getComputedStyle(e).display") == "grid"  # a card of labelled figures
    expect(row.locator('td[data-label="annual"]')).to_have_text(re.compile(r"%$"))
    _no_sideways_scroll(phone)
    phone.screenshot(path=str(shots / "compare-phone.png"), full_page=True)
    assert not errors, errors


def test_chain_page(browser, make_supervisor, shots):
    sv = make_supervisor()
    for feed in OPTION_FEEDS:
        sv.rpc().supervisor.startProcess(feed, True)
    url = _panel(sv)

    def ready(feed: str):
        body = requests.get(f"{url}/api/chain/{feed}", timeout=2).json()
        rows = body.get("rows") or []
        return len(rows) >= 3 and all(r["call"] and r["put"] and r["call"]["iv"] for r in rows) and body["atm_strike"]
    for feed in OPTION_FEEDS:
        wait_for(lambda feed=feed: ready(feed), 40, 0.5)

    errors: list[str] = []
    page = _page(browser, 1280, errors)
    page.goto(url)
    page.click("text=Chains")
    expect(page.locator("#chain tbody tr.atm")).to_have_count(1, timeout=10_000)
    assert re.search(r"/chain\?feed=bybit_options&underlying=BTC&expiry=\d{4}-\d\d-\d\d", page.url), page.url
    expect(page.locator("#chain-info")).to_contain_text(re.compile(r"BTC [\d,.]+ \(underlying_price\) · ATM [\d,]+ · expiry"))
    atm = page.locator("#chain tbody tr.atm")
    expect(atm.locator(".strike")).to_contain_text("ATM")
    expect(atm.locator("td.iv").first).to_have_text(re.compile(r"^[\d.]+%$"))
    # the smile: calls and puts as lines, bid-ask IV as bands, the underlying as a dashed line
    smile = page.locator("#smile")
    expect(smile.locator("polyline.smile__line--call")).to_have_count(1)
    expect(smile.locator("polyline.smile__line--put")).to_have_count(1)
    expect(smile.locator("polygon.smile__band--call")).to_have_count(1)
    expect(smile.locator("line.smile__spot")).to_have_count(1)
    expect(smile.locator("circle.smile__dot--atm")).to_have_count(2)
    page.screenshot(path=str(shots / "chain-desktop.png"), full_page=True)

    # another expiry, another underlying, the other feed
    second = page.locator("#expiries .tab").nth(1)
    expiry = second.text_content()
    second.click()
    expect(page.locator("#chain-info")).to_contain_text(f"expiry {expiry}")
    page.select_option("#underlying", "ETH")
    expect(page.locator("#chain-info")).to_contain_text(re.compile(r"^ETH "))
    page.select_option("#feed", "delta_options")
    expect(page.locator("#chain-info")).to_contain_text(re.compile(r"BTC [\d,.]+ \(index_price\)"), timeout=10_000)
    expect(page.locator("#chain tbody tr.atm")).to_have_count(1)
    page.screenshot(path=str(shots / "chain-desktop-delta.png"), full_page=True)

    # a stopped feed: its rows marked stale
    sv.ctl("stop", "delta_options")
    expect(page.locator("#chain tbody tr.row--stale").first).to_be_visible(timeout=10_000)
    expect(page.locator("#chain-info")).to_contain_text("stale")

    phone = _page(browser, 390, errors)
    phone.goto(f"{url}/chain?feed=bybit_options")
    expect(phone.locator("#chain tbody tr.atm")).to_have_count(1, timeout=10_000)
    expect(phone.locator("#smile polyline.smile__line--call")).to_have_count(1)
    _no_sideways_scroll(phone)
    assert phone.locator("#chain").evaluate("e => e.getBoundingClientRect().width") <= 390
    phone.screenshot(path=str(shots / "chain-phone.png"), full_page=True)
    assert not errors, errors


def test_deribit_chain_page_in_usd(browser, make_supervisor, shots):
    """Deribit quotes options in BTC: the chain shows USD, says so, and keeps the coin mark on hover."""
    sv = make_supervisor(overrides={"deribit_options": {"discovery_interval": 0.5}})
    sv.rpc().supervisor.startProcess("deribit_options", True)
    url = _panel(sv)

    def ready():
        body = requests.get(f"{url}/api/chain/deribit_options", timeout=2).json()
        rows = body.get("rows") or []
        return len(rows) >= 3 and all(r["call"] and r["put"] and r["call"]["iv"] for r in rows) and body["atm_strike"]
    wait_for(ready, 40, 0.5)

    errors: list[str] = []
    page = _page(browser, 1280, errors)
    page.goto(f"{url}/chain?feed=deribit_options")
    expect(page.locator("#chain tbody tr.atm")).to_have_count(1, timeout=10_000)
    expect(page.locator("#chain-info")).to_contain_text("settle BTC · prices in USD (quoted in BTC, × index)")
    mark = page.locator("#chain tbody tr.atm td.opt").nth(2)  # calls: OI, Δ, mark
    expect(mark).to_have_attribute("title", re.compile(r"^mark 0\.\d+ BTC as quoted$"))
    assert float(mark.text_content().replace(",", "")) > 100  # USD, not BTC
    expect(page.locator("#smile polyline.smile__line--call")).to_have_count(1)
    expect(page.locator("#smile polyline.smile__line--put")).to_have_count(1)
    page.screenshot(path=str(shots / "chain-desktop-deribit.png"), full_page=True)
    assert not errors, errors
