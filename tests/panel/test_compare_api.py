"""GET /api/compare against real Redis filled by every feed running on the simulator under real supervisord."""

from __future__ import annotations

import math

import pytest
import yaml

from controlpanel import PanelSettings, create_app
from controlpanel.compare import CompareSettings, compared_feeds
from controlpanel.views import set_compare_settings
from tests.harness import ROOT, wait_for
from workers.runtime.config import load_config, parse_config

pytestmark = pytest.mark.e2e

# The USDT/INR pair is the default rate source; it has to be followed to be found.
COINDCX_SPOT = {"symbols": ["B-BTC_USDT", "B-ETH_USDT", "I-BTC_INR", "I-USDT_INR"], "poll_interval": 1}
BTC_FEEDS = {"bybit_spot", "bybit_spot_testnet_spot", "coindcx_spot", "delta_spot", "bybit_futures_orderbook",
             "coindcx_futures_rest", "delta_futures_ltp", "hyperliquid_perpetual"}


def _ready(client) -> dict | None:
    body = client.get("/api/compare/BTC").get_json()
    feeds = {r["feed"] for r in body["rows"]}
    complete = all(r["price"] and not r["stale"] for r in body["rows"]) and len(body["rows"]) == 9
    perps = [r for r in body["rows"] if r["kind"] == "perpetual"]
    funded = all(r["funding"]["rate"] is not None for r in perps) and all(r.get("ltp") for r in perps)
    return body if feeds == BTC_FEEDS and body["fx"]["available"] and complete and funded else None


def _row(body: dict, feed: str, symbol: str) -> dict:
    return next(r for r in body["rows"] + body["apart"] if r["feed"] == feed and r["symbol"] == symbol)


def test_compare_every_feed_with_inr_conversion_funding_basis_and_errors(make_supervisor, redis_server):
    sv = make_supervisor(enabled=True, overrides={"coindcx_spot": COINDCX_SPOT})
    config = load_config(sv.config_path)
    app = create_app(config, sv.server_url, settings=PanelSettings())
    c = app.test_client()
    btc = wait_for(lambda: _ready(c), 40, 0.5)

    # one row per venue and market kind, spot first; INR converted at the displayed rate
    assert [r["kind"] for r in btc["rows"]] == ["spot"] * 5 + ["perpetual"] * 4
    fx = btc["fx"]
    assert (fx["feed"], fx["symbol"], fx["origin"]) == ("coindcx_spot", "I-USDT_INR", "default")
    assert 80 < fx["rate"] < 96 and not fx["stale"]
    inr = _row(btc, "coindcx_spot", "I-BTC_INR")
    assert inr["quote"] == "INR" and inr["converted"]["rate"] == fx["rate"] and inr["converted"]["quote"] == "USDT"
    assert math.isclose(inr["converted"]["ltp"], inr["ltp"] / fx["rate"]) and inr["ltp_usd"] == inr["converted"]["ltp"]
    spot = _row(btc, "bybit_spot", "BTCUSDT")
    assert abs(inr["ltp_usd"] / spot["ltp"] - 1) < 0.05  # the simulator prices INR pairs at its USDT/INR rate
    assert spot["spread_bps"] > 0 and spot["best_bid"] < spot["best_ask"] and spot["age_s"] < 5
    assert _row(btc, "delta_spot", "BTCUSD")["price_source"] == "index_price"
    assert _row(btc, "bybit_spot_testnet_spot", "BTCUSDT")["testnet"]

    # funding as sent, its interval and the normalised figures, per exchange
    intervals = {r["feed"]: (r["funding"]["interval_hours"], r["funding"]["interval_source"])
                 for r in btc["rows"] if r["kind"] == "perpetual"}
    assert intervals == {"bybit_futures_orderbook": (8, "default"), "coindcx_futures_rest": (8, "field"),
                         "delta_futures_ltp": (8, "field"), "hyperliquid_perpetual": (1, "field")}
    hl = _row(btc, "hyperliquid_perpetual", "BTC")["funding"]
    assert math.isclose(hl["rate_8h"], hl["rate"] * 8) and math.isclose(hl["annualised"], hl["rate"] * 8760)
    assert hl["next_funding_time"].endswith(":00:00.000Z")
    assert _row(btc, "bybit_futures_orderbook", "BTCUSDT")["funding"]["next_funding_time"]
    assert _row(btc, "coindcx_futures_rest", "B-BTC_USDT")["funding"]["current_rate"] is not None
    sol = c.get("/api/compare/SOL").get_json()
    sol_dcx = _row(sol, "coindcx_futures_rest", "B-SOL_USDT")["funding"]
    assert sol_dcx["interval_hours"] == 4 and math.isclose(sol_dcx["rate_8h"], sol_dcx["rate"] * 2)

    # basis against the first spot feed; highlights from fresh, non-testnet rows
    for r in btc["rows"]:
        if r["kind"] == "perpetual":
            ref = r["basis"]["reference"]
            assert (ref["feed"], ref["symbol"]) == ("bybit_spot", "BTCUSDT")
            assert math.isclose(r["basis"]["bps"], (r["price_usd"] / ref["price"] - 1) * 1e4)
    spread, diff = btc["highlights"]["ltp_spread"], btc["highlights"]["funding_diff"]
    assert spread["bps"] > 0 and spread["high"]["ltp_usd"] > spread["low"]["ltp_usd"]
    assert "bybit_spot_testnet_spot" not in (spread["high"]["feed"], spread["low"]["feed"])
    assert diff["annualised"] >= 0 and diff["high"]["annualised"] - diff["low"]["annualised"] == diff["annualised"]

    # all underlyings; the same BTC; case-insensitive; JSON 404 naming the known ones
    every = c.get("/api/compare").get_json()
    names = [u["underlying"] for u in every["underlyings"]]
    assert names[0] == "BTC" and {"ETH", "SOL", "XRP", "DOGE", "HYPE", "PURR", "USDT"} <= set(names)
    assert {r["symbol"] for r in every["underlyings"][0]["rows"]} == {r["symbol"] for r in btc["rows"]}
    assert c.get("/api/compare/btc").get_json()["underlying"] == "BTC"
    missing = c.get("/api/compare/NOPE")
    assert missing.status_code == 404 and missing.get_json()["error"] == "unknown_underlying"
    assert "BTC" in missing.get_json()["valid_underlyings"]

    # configuration per request: no conversion (INR apart), another reference, bad values
    apart = c.get("/api/compare/BTC?usdtinr=none").get_json()
    assert [r["symbol"] for r in apart["apart"]] == ["I-BTC_INR"] and apart["fx"]["reason"] == "conversion switched off"
    assert apart["apart"][0]["reason"].startswith("no USDT/INR rate")
    ref = c.get("/api/compare/BTC?reference=coindcx_spot").get_json()
    assert {r["basis"]["reference"]["feed"] for r in ref["rows"] if r["kind"] != "spot"} == {"coindcx_spot"}
    assert ref["reference"] == {"feed": "coindcx_spot", "origin": "query"}
    for query, code in (("reference=bybit_futures_orderbook", "bad_reference"), ("usdtinr=coindcx_spot", "bad_usdtinr"),
                        ("usdtinr=nope:X", "bad_usdtinr")):
        bad = c.get(f"/api/compare?{query}")
        assert bad.status_code == 400 and bad.get_json()["error"] == code and bad.get_json()["allowed"], query
    set_compare_settings(app, CompareSettings(usdtinr=("", ""), origin="env"))
    assert c.get("/api/compare/BTC").get_json()["fx"]["origin"] == "env"
    set_compare_settings(app, CompareSettings())

    # two round trips' worth of commands, whatever the feeds: SMEMBERS per compared feed, HMGET per market (+ the rate)
    feeds = [svc.service_id for svc in compared_feeds(config)]
    # the supervised panel too: its sweep (HGETALL of the status hashes every 2 s) is another client of this Redis
    sv.ctl("stop", "controlpanel", *feeds)
    r = redis_server.client()
    r.config_resetstat()
    body = c.get("/api/compare").get_json()
    stats = r.info("commandstats")
    markets = sum(len(u["rows"]) + len(u["apart"]) for u in body["underlyings"])
    # every configured spot or derivative feed, disabled ones too (binance_spot, binance_futures, deribit_futures,
    # okx_spot, okx_swap)
    assert stats["cmdstat_smembers"]["calls"] == len(feeds) == 14
    assert stats["cmdstat_hmget"]["calls"] == markets + 1
    assert not {"cmdstat_keys", "cmdstat_scan", "cmdstat_hgetall"} & set(stats)

    # a stopped feed's hashes carry the `stale` marker: rows flagged, highlights left without them
    stale = c.get("/api/compare/BTC").get_json()
    assert all(row["stale"] for row in stale["rows"]) and _row(stale, "bybit_spot", "BTCUSDT")["stale_reason"].startswith("stopped")
    assert stale["highlights"] == {"ltp_spread": None, "funding_diff": None}
    assert stale["fx"]["stale"]


def test_deribit_perpetual_in_compare(make_supervisor, redis_server):
    """deribit_futures (disabled by default, started by hand): an inverse perpetual quoted in USD, its
    8-hour funding figure normalised like the others, no funding time (Deribit funds continuously)."""
    sv = make_supervisor(overrides={"deribit_futures": {"discovery_interval": 0.5}})
    assert "started" in sv.ctl("start", "deribit_futures", "bybit_spot")
    c = create_app(load_config(sv.config_path), sv.server_url, settings=PanelSettings()).test_client()

    def ready() -> dict | None:
        body = c.get("/api/compare/BTC").get_json()
        rows = [r for r in body["rows"] if r["feed"] == "deribit_futures"]
        return rows[0] if rows and rows[0]["ltp"] and rows[0]["funding"]["rate"] is not None and rows[0]["basis"] else None
    row = wait_for(ready, 30, 0.5)
    assert (row["symbol"], row["kind"], row["quote"]) == ("BTC-PERPETUAL", "perpetual", "USD")
    f = row["funding"]
    assert (f["interval_hours"], f["interval_source"], f["next_funding_time"]) == (8, "field", None)
    assert math.isclose(f["rate_8h"], f["rate"]) and math.isclose(f["annualised"], f["rate"] * 3 * 365)
    assert row["basis"]["reference"]["feed"] == "bybit_spot"


def test_pages_and_openapi_describe_the_trader_views():
    """Served without touching Redis: the two pages (scripts from the project, no CDN) and the API description."""
    app = create_app(parse_config(yaml.safe_load((ROOT / "exchanges.yaml").read_text())), settings=PanelSettings())
    c = app.test_client()
    paths = c.get("/openapi.json").get_json()["paths"]
    assert {"/api/compare", "/api/compare/{underlying}", "/api/chain/{feed}"} <= set(paths)
    assert {p["name"] for p in paths["/api/chain/{feed}"]["get"]["parameters"]} == {"feed", "underlying", "expiry", "settle_coin"}
    assert "/api/compare/{underlying}" in c.get("/docs").get_data(as_text=True)
    for page, scripts in (("/compare", ("fmt.js", "trader.js", "compare.js")), ("/chain", ("fmt.js", "trader.js", "smile.js", "chain.js")),
                          ("/", ("fmt.js", "app.js"))):
        html = c.get(page).get_data(as_text=True)
        assert all(f'src="/static/{s}"' in html for s in scripts) and "http" not in html.split("<body")[0]
        assert [html.index(f'src="/static/{s}"') for s in scripts] == sorted(html.index(f'src="/static/{s}"') for s in scripts)
        assert 'aria-current="page"' in html or page == "/"
    index = c.get("/").get_data(as_text=True)
    assert 'href="/compare"' in index and 'href="/chain"' in index
    for script in ("fmt.js", "trader.js", "compare.js", "chain.js", "smile.js"):
        assert c.get(f"/static/{script}").status_code == 200
