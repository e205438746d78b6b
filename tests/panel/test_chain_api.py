"""GET /api/chain/<feed> against real Redis filled by bybit_options and delta_options on the simulator."""

from __future__ import annotations

import pytest

from controlpanel import PanelSettings, chain, create_app
from tests.harness import wait_for
from workers.runtime.config import load_config

pytestmark = pytest.mark.e2e

OPTION_FEEDS = ("bybit_options", "delta_options")
SIDE_FIELDS = ("bid", "ask", "mark", "iv", "delta", "oi")


def _full(client, feed: str) -> dict | None:
    body = client.get(f"/api/chain/{feed}").get_json()
    rows = body.get("rows") or []
    both = all(r["call"] and r["put"] and all(r[s][f] is not None for s in ("call", "put") for f in SIDE_FIELDS) for r in rows)
    ready = len(rows) >= 3 and both and body["atm_strike"] is not None and set(body["underlyings"]) == {"BTC", "ETH"}
    return body if ready and all(len(e) == 2 for e in body["underlyings"].values()) else None


def test_chains_of_both_option_feeds(make_supervisor, redis_server):
    sv = make_supervisor()
    for feed in OPTION_FEEDS:
        sv.rpc().supervisor.startProcess(feed, True)
    app = create_app(load_config(sv.config_path), sv.server_url, settings=PanelSettings())
    c = app.test_client()
    for feed, price_field in zip(OPTION_FEEDS, ("underlying_price", "index_price"), strict=True):
        ch = wait_for(lambda feed=feed: _full(c, feed), 40, 0.5)
        # the first underlying, its nearest expiry, both from the hashes' fields
        assert ch["feed"] == feed and ch["underlying"] == "BTC" and ch["expiry"] == ch["underlyings"]["BTC"][0]
        assert ch["expiries"] == sorted(ch["expiries"]) and ch["days_to_expiry"] >= 0
        assert ch["underlying_price_field"] == price_field and ch["underlying_price"] > 0
        strikes = [r["strike"] for r in ch["rows"]]
        assert strikes == sorted(strikes)
        atm = [r["strike"] for r in ch["rows"] if r["atm"]]
        assert atm == [ch["atm_strike"]] == [min(strikes, key=lambda k: abs(k - ch["underlying_price"]))]
        row = ch["rows"][0]
        assert row["call"]["iv"] > 0 and row["put"]["iv"] > 0 and row["call"]["bid_iv"] <= row["call"]["ask_iv"]
        # signs at the money (far from it, hours before expiry, a delta is 0 to double precision)
        at = next(r for r in ch["rows"] if r["atm"])
        assert at["call"]["delta"] > 0 > at["put"]["delta"] if feed == "bybit_options" else at["call"]["delta"] is not None
        assert not any(r["stale"] for r in ch["rows"])

        # another underlying and expiry, chosen
        later = ch["underlyings"]["ETH"][1]
        eth = c.get(f"/api/chain/{feed}?underlying=ETH&expiry={later}").get_json()
        assert (eth["underlying"], eth["expiry"]) == ("ETH", later) and eth["rows"]
        assert all(r["strike"] < 10_000 for r in eth["rows"])

        # bad parameters: JSON naming what is allowed
        for query, status, code, allowed in (
            ("underlying=DOGE", 404, "unknown_underlying", ["BTC", "ETH"]),
            ("underlying=BTC&expiry=31-12-2030", 400, "bad_expiry", ch["underlyings"]["BTC"]),
            ("underlying=BTC&expiry=2000-01-01", 404, "unknown_expiry", ch["underlyings"]["BTC"]),
        ):
            resp = c.get(f"/api/chain/{feed}?{query}")
            assert resp.status_code == status, query
            assert resp.get_json()["error"] == code and resp.get_json()["allowed"] == allowed, query

    if (settle := c.get("/api/chain/bybit_options").get_json())["settle_coins"]:
        assert settle["settle_coin"] == settle["settle_coins"][0] == "USDC"
    for feed in ("bybit_spot", "nope"):
        resp = c.get(f"/api/chain/{feed}")
        assert resp.status_code == 404 and resp.get_json() | {"message": ""} == {
            "error": "unknown_feed", "message": "", "allowed": chain.chain_feeds(load_config(sv.config_path))}
    assert set(OPTION_FEEDS) <= set(chain.chain_feeds(load_config(sv.config_path)))

    # listing fields are read once per contract: a repeated request reads only the chosen chain's hashes
    first = c.get("/api/chain/bybit_options").get_json()
    r = redis_server.client()
    r.config_resetstat()
    again = c.get("/api/chain/bybit_options").get_json()
    contracts = sum((row["call"] is not None) + (row["put"] is not None) for row in again["rows"])
    assert again["expiry"] == first["expiry"] and r.info("commandstats")["cmdstat_hmget"]["calls"] == contracts
    assert contracts < r.scard("ltp:symbols:bybit_options")

    # a stopped feed's contracts are marked stale, and so are their rows
    sv.ctl("stop", "delta_options")
    stale = wait_for(lambda: (b := c.get("/api/chain/delta_options").get_json()) and all(r["stale"] for r in b["rows"]) and b, 10)
    assert stale["rows"][0]["call"]["stale_reason"].startswith("stopped")


def test_deribit_chain_is_shown_in_usd_with_the_coin_price_kept(make_supervisor, redis_server):
    """Deribit quotes options in the coin: the chain shows the hashes' *_usd prices and says so."""
    sv = make_supervisor(overrides={"deribit_options": {"discovery_interval": 0.5}})
    sv.rpc().supervisor.startProcess("deribit_options", True)
    app = create_app(load_config(sv.config_path), sv.server_url, settings=PanelSettings())
    c = app.test_client()
    ch = wait_for(lambda: _full(c, "deribit_options"), 40, 0.5)
    assert ch["price_unit"] == "USD" and ch["settle_coin"] == "BTC" and ch["underlying_price_field"] == "underlying_price"
    r = redis_server.client()
    at = next(row for row in ch["rows"] if row["atm"])
    side = at["call"]
    assert 0 < side["mark_coin"] < 1 and side["mark"] > 100  # BTC as quoted, USD as shown
    index = float(r.hget(f"deribit_options:{side['symbol']}", "index_price"))
    assert abs(side["mark"] - side["mark_coin"] * index) < side["mark"] * 0.01  # same frame's index, rounding only
    assert side["bid"] < side["mark"] < side["ask"]
    # A hash without *_usd prices (every other feed's) is shown as it is: no unit claimed, no coin price.
    plain = chain._contract("X", {"option_type": "CALL", "strike_price": "1", "underlying": "BTC", "expiry": "2030-01-01",
                                  "mark_price": "5"}, 0, 60)
    assert plain is not None and plain["usd"] is False and "mark_coin" not in plain["side"] and plain["side"]["mark"] == 5
    assert chain.assemble({"expiry": "2030-01-01"}, [plain], 0)["price_unit"] is None
