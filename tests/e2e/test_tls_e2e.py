"""Feeds over TLS end to end: real supervisord, real Redis, the simulator in TLS mode (wss:// and https://)
with a certificate from a test CA (tests.harness.TlsCerts) that the feeds trust through the environment.

The pair a user sets: SSL_CERT_FILE (websocket-client, through OpenSSL's default verify path) and
REQUESTS_CA_BUNDLE (requests, which ignores SSL_CERT_FILE). An untrusted certificate is refused, and
the feed's status hash says so, and which variables to set.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness import Supervisor, TlsCerts, sim_config, wait_for
from tests.sim import Simulator
from workers.runtime.ws import CA_HINT

pytestmark = pytest.mark.e2e

FEEDS = ("bybit_spot", "delta_futures_ltp")  # a WebSocket-only feed and one that discovers over REST first


@pytest.fixture
def tls_sim(tls_certs):
    sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    yield sim
    sim.stop()


@pytest.fixture
def tls_supervisor(redis_server, tls_sim):
    started: list[Supervisor] = []

    def make(env: dict[str, str]) -> Supervisor:
        sv = Supervisor(sim_config(redis_server.url, tls_sim.port, tls=True), redis_server.url, env)
        started.append(sv.start())
        return sv

    yield make
    for sv in started:
        sv.stop()


def test_websocket_and_rest_feeds_over_tls(tls_supervisor, tls_certs, redis_server, tls_sim):
    sv = tls_supervisor(tls_certs.trust_env("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"))
    r = redis_server.client()
    for feed in FEEDS:
        assert "started" in sv.ctl("start", feed)

    spot = wait_for(lambda: (h := r.hgetall("bybit_spot:BTCUSDT")) and "ltp" in h and h, 20)
    assert float(spot["ltp"]) > 0 and spot["original_symbol"] == "BTCUSDT"
    # volume_24h comes from the REST tickers (https), ltp from the WebSocket (wss).
    fut = wait_for(lambda: (h := r.hgetall("delta_futures:BTCUSD")) and {"ltp", "volume_24h", "funding_rate"} <= h.keys() and h, 20)
    assert float(fut["ltp"]) > 0
    for feed in FEEDS:
        st = wait_for(lambda f=feed: (s := r.hgetall(f"service:status:{f}")) and s.get("state") == "subscribed" and s, 10)
        assert st["last_error"] == "" and st["reconnects"] == "0", st
    assert tls_sim.exchanges["bybit"].connects >= 1 and tls_sim.exchanges["delta"].rest_requests >= 1

    # A 300 KB frame (the simulator writes it at once: 19 TLS records), for a symbol nothing else updates.
    big = json.dumps({"topic": "tickers.LARGEUSDT", "ts": int(time.time() * 1000), "type": "snapshot",
                      "data": {"symbol": "LARGEUSDT", "lastPrice": "4242.5"}, "pad": "x" * 300_000})
    tls_sim.exchanges["bybit"].faults.garbage = [big]
    assert wait_for(lambda: r.hget("bybit_spot:LARGEUSDT", "ltp"), 10) == "4242.5"
    # Full speed: one TLS record per frame, thousands a second, coalesced per read by the feed.
    before = int(r.hget("service:status:bybit_spot", "messages_total"))
    tls_sim.rate_hz = 0
    try:
        wait_for(lambda: int(r.hget("service:status:bybit_spot", "messages_total")) > before + 5000, 15)
    finally:
        tls_sim.rate_hz = 20.0
    st = r.hgetall("service:status:bybit_spot")
    assert st["parse_errors"] == "0" and st["reconnects"] == "0" and st["last_error"] == "", st


def test_untrusted_certificate_is_refused_and_the_status_says_what_to_set(tls_supervisor, redis_server, tmp_path,
                                                                          tls_sim):
    other = TlsCerts(tmp_path / "other", name="a CA that signed nothing here")
    sv = tls_supervisor(other.trust_env())  # every variable set, to the wrong CA
    r = redis_server.client()
    for feed in FEEDS:
        assert "started" in sv.ctl("start", feed)
    errors = {feed: wait_for(lambda f=feed: CA_HINT in (e := r.hget(f"service:status:{f}", "last_error") or "") and e, 10)
              for feed in FEEDS}
    ws_url = f"wss://127.0.0.1:{tls_sim.port}/bybit/v5/public/spot"
    assert errors["bybit_spot"] == (f"connect_failed: certificate verify failed — {CA_HINT} "
                                    f"(unable to get local issuer certificate); {ws_url}")
    # Delta discovers its symbols over REST before it connects: the REST error carries the same words.
    assert errors["delta_futures_ltp"].startswith("rest_error: GET https://127.0.0.1:")
    assert f"failed: certificate verify failed — {CA_HINT} (unable to get local issuer certificate)" in errors["delta_futures_ltp"]
    assert not r.keys("bybit_spot:*") and not r.keys("delta_futures:*")
    assert tls_sim.exchanges["bybit"].connects == 0
    for feed in FEEDS:
        assert sv.info(feed)["statename"] == "RUNNING"  # it keeps retrying; the card shows the error, not green
