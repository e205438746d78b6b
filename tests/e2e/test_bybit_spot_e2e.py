"""bybit_spot end to end: real supervisord, real Redis, the Bybit simulator."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CONTRACT = {"ltp", "timestamp", "recv_ts", "original_symbol", "volume_24h", "high_24h", "low_24h",
            "price_change_percent", "best_bid", "best_ask"}


@pytest.mark.timing
def test_bybit_spot_started_by_supervisorctl_fills_redis_publishes_and_stops(redis_server, sim, make_supervisor):
    sv = make_supervisor()
    r = redis_server.client()
    pubsub = r.pubsub()
    pubsub.subscribe("bybit_spot:BTCUSDT")

    assert "started" in sv.ctl("start", "bybit_spot")
    row = wait_for(lambda: (h := r.hgetall("bybit_spot:BTCUSDT")) and CONTRACT <= h.keys() and h, 15)
    assert float(row["ltp"]) > 0
    assert row["original_symbol"] == "BTCUSDT"
    assert ISO_MS.match(row["timestamp"]), row["timestamp"]
    assert abs(int(row["recv_ts"]) - time.time() * 1000) < 10_000
    assert float(row["best_bid"]) < float(row["best_ask"])

    def published():
        msg = pubsub.get_message(timeout=0.2)
        return msg if msg and msg["type"] == "message" else None

    payload = json.loads(wait_for(published, 10)["data"])
    assert payload["ltp"] and ISO_MS.match(payload["timestamp"])

    status = wait_for(lambda: (s := r.hgetall("service:status:bybit_spot")) and s.get("state") == "subscribed" and s, 10)
    assert int(status["pid"]) == sv.info("bybit_spot")["pid"]
    assert int(status["messages_total"]) > 0
    assert 0 < r.ttl("service:status:bybit_spot") <= 10
    assert r.scard("ltp:symbols:bybit_spot") == 6

    t0 = time.monotonic()
    assert "stopped" in sv.ctl("stop", "bybit_spot")
    assert time.monotonic() - t0 < 2.5
    assert sv.info("bybit_spot")["exitstatus"] == 0
    assert r.hget("service:status:bybit_spot", "state") == "stopped"
    assert "connected to ws://127.0.0.1" in sv.log("bybit_spot")
    pubsub.close()


def test_enabled_feeds_autostart_and_panel_answers(redis_server, sim, make_supervisor):
    sv = make_supervisor(enabled=True)
    wait_for(lambda: sv.info("bybit_spot")["statename"] == "RUNNING", 15)
    wait_for(lambda: redis_server.client().hget("bybit_spot:ETHUSDT", "ltp"), 15)
    # The testnet feed is enabled here too and reaches the simulator's spot endpoint.
    wait_for(lambda: redis_server.client().hget("bybit_spot_testnet:BTCUSDT", "ltp"), 15)
    assert sv.info("redis")["statename"] == "EXITED"  # a Redis already answered: it is reused
    health = wait_for(lambda: requests.get(f"http://127.0.0.1:{sv.panel_port}/api/health", timeout=2), 15)
    assert health.status_code == 200 and health.json()["status"] == "healthy"


def test_unknown_symbol_is_reported_and_the_rest_keeps_flowing(redis_server, sim, make_supervisor):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT", "NOSUCHUSDT", "ETHUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: r.hget("bybit_spot:ETHUSDT", "ltp") and r.hget("bybit_spot:BTCUSDT", "best_bid"), 15)
    rejected = wait_for(lambda: json.loads(r.hget("service:status:bybit_spot", "rejected") or "{}"), 10)
    assert "tickers.NOSUCHUSDT" in rejected
    assert not r.exists("bybit_spot:NOSUCHUSDT")
