"""Fault 11: connections that fail, each feed a different way, under the real system.

A refused port, an unknown host, an HTTP 503 instead of the WebSocket upgrade, a server that
accepts TCP and never answers, an untrusted TLS certificate on the WebSocket and on REST
discovery: each feed keeps retrying, and its status hash (and the panel's /api/status) says
why at the first failure, in words a user can act on. Before, OSErrors (refused, timeout, TLS)
never reached `last_error` and REST errors kept only the exception's class name.
"""

from __future__ import annotations

import time

import requests

from tests.harness import RawWsServer, Supervisor, TlsCerts, free_port, sim_config, wait_for
from tests.reliability.util import status
from tests.sim import Simulator
from workers.runtime.ws import CA_HINT

UNTRUSTED = f"certificate verify failed — {CA_HINT} (unable to get local issuer certificate)"


def test_every_connection_failure_is_in_the_status_hash_with_its_cause(redis_server, sim, tls_certs, tmp_path, figures):
    tls_sim = Simulator(rate_hz=5.0, ssl_context=tls_certs.server_context()).start()
    hung = RawWsServer(handshake=False)  # accepts TCP, answers nothing: WebSocket upgrade and REST time out
    other_ca = TlsCerts(tmp_path / "other-ca", name="a CA that signed nothing here")
    closed = free_port()
    sim.exchanges["bybit"].faults.refuse_connections = True
    cfg = sim_config(redis_server.url, sim.port)
    tls_cfg = sim_config(redis_server.url, tls_sim.port, tls=True)
    bybit, delta = cfg["exchanges"]["bybit"], cfg["exchanges"]["delta"]
    bybit["endpoints"]["spot_ws"] = f"ws://127.0.0.1:{closed}/bybit/v5/public/spot"
    bybit["endpoints"]["testnet_spot_ws"] = "ws://no-such-exchange.invalid/v5/public/spot"
    bybit["endpoints"]["linear_ws"] = tls_cfg["exchanges"]["bybit"]["endpoints"]["linear_ws"]
    delta["endpoints"] = {**delta["endpoints"], "india_ws": tls_cfg["exchanges"]["delta"]["endpoints"]["india_ws"],
                          "india_rest": tls_cfg["exchanges"]["delta"]["endpoints"]["india_rest"],
                          "hung_rest": f"http://127.0.0.1:{hung.port}/delta"}
    delta["services"]["delta_spot"]["rest_endpoint"] = "hung_rest"
    expected = {  # feed -> (what it meets, last_error it must show)
        "bybit_spot": ("refused port", f"connect_failed: connection refused; {bybit['endpoints']['spot_ws']}"),
        "bybit_spot_testnet_spot": ("unknown host", "connect_failed: DNS: name not known; ws://no-such-exchange.invalid/v5/public/spot"),
        "bybit_options": ("HTTP 503 upgrade", "connect_failed: HTTP 503 Service Unavailable: upgrade refused "
                          f"(simulator refusing connections); {bybit['endpoints']['option_ws']}"),
        "bybit_futures_orderbook": ("untrusted TLS (wss)", f"connect_failed: {UNTRUSTED}; {bybit['endpoints']['linear_ws']}"),
        "delta_futures_ltp": ("untrusted TLS (https discovery)", f"rest_error: GET {delta['endpoints']['india_rest']}"),
        "delta_spot": ("REST server never answers", f"rest_error: GET http://127.0.0.1:{hung.port}/delta"),
    }
    sv = Supervisor(cfg, redis_server.url, other_ca.trust_env())  # every CA variable names the wrong CA
    try:
        sv.start()
        r = redis_server.client()
        t0 = time.monotonic()
        rpc = sv.rpc()
        for feed in expected:
            rpc.supervisor.startProcess(feed, False)  # don't wait for startsecs: the clock runs from here
        shown: dict[str, float] = {}

        def all_reported() -> bool:
            for feed, (_, want) in expected.items():
                if feed not in shown and (status(r, feed).get("last_error") or "").startswith(want):
                    shown[feed] = time.monotonic() - t0
            return len(shown) == len(expected)

        try:
            wait_for(all_reported, 30)
        except AssertionError:
            raise AssertionError({f: status(r, f).get("last_error") for f in expected if f not in shown}) from None
        errors = {feed: status(r, feed)["last_error"] for feed in expected}
        assert errors["delta_futures_ltp"].split(" failed: ", 1)[1].startswith(UNTRUSTED), errors
        assert errors["delta_spot"].split(" failed: ", 1)[1].startswith("timed out"), errors
        for feed in expected:
            st = status(r, feed)
            assert st["state"] in ("connecting", "reconnecting") and st["messages_total"] == "0", (feed, st)
            assert sv.info(feed)["statename"] == "RUNNING"  # retrying, not crashed

        body = wait_for(lambda: requests.get(f"http://127.0.0.1:{sv.panel_port}/api/status", timeout=5).json(), 15)
        panel = {svc["id"]: svc.get("last_error", "") for svc in body["services"]}
        assert all(panel[feed] == errors[feed] for feed in expected), panel

        for feed, (fault, _) in expected.items():
            figures.record("11 connection failures", f"{fault} ({feed}): start -> cause in status hash", shown[feed])
        # The cause stays while the fault lasts: the feed retried with backoff and says the same thing.
        time.sleep(2)
        assert status(r, "bybit_spot")["last_error"] == errors["bybit_spot"]
        assert int(status(r, "bybit_spot")["reconnects"]) >= 2
    finally:
        sv.stop()
        tls_sim.stop()
        hung.close()
        other_ca.cleanup()
