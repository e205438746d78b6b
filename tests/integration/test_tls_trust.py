"""Which environment variables make each library trust a private CA, and what an untrusted certificate
looks like in the status: `certificate verify failed — set SSL_CERT_FILE/REQUESTS_CA_BUNDLE/
WEBSOCKET_CLIENT_CA_BUNDLE to your CA bundle (...)`, for WebSocket connections and REST alike.

Confirmed here (websocket-client 1.x, urllib3 2.x, OpenSSL 3):
- websocket-client: WEBSOCKET_CLIENT_CA_BUNDLE (its own), SSL_CERT_FILE (OpenSSL's default verify
  path, which websocket-client loads when no CA is given); not REQUESTS_CA_BUNDLE.
- REST (`poll.RestSession`, urllib3): REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE (read as requests did),
  else OpenSSL's default paths, so SSL_CERT_FILE too; not WEBSOCKET_CLIENT_CA_BUNDLE.
"""

from __future__ import annotations

import ssl

import pytest
import websocket

from tests.harness import TRUST_ENV_VARS, RawWsServer, TlsCerts, wait_for
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.poll import RestError, RestSession, get_json
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import CA_HINT, WsConnection, connection_error_text

ALL_VARS = (*TRUST_ENV_VARS, "CURL_CA_BUNDLE", "SSL_CERT_DIR")
UNTRUSTED = f"certificate verify failed — {CA_HINT} (unable to get local issuer certificate)"


@pytest.fixture
def clean_env(monkeypatch):
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def tls_ws(tls_certs):
    server = RawWsServer(tls_certs.server_context())
    yield server
    server.close()




@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """A CA nobody's certificate is signed by: trusting only it trusts nothing here."""
    certs = TlsCerts(tmp_path_factory.mktemp("other-ca"), name="some other CA")
    yield certs
    certs.cleanup()


@pytest.mark.parametrize(("var", "trusted"), [
    ("WEBSOCKET_CLIENT_CA_BUNDLE", True), ("SSL_CERT_FILE", True), ("REQUESTS_CA_BUNDLE", False), (None, False)])
def test_websocket_client_honours(var, trusted, clean_env, tls_ws, tls_certs):
    if var:
        clean_env.setenv(var, str(tls_certs.ca_cert))
    if trusted:
        websocket.create_connection(tls_ws.url, timeout=5).shutdown()
    else:
        with pytest.raises(ssl.SSLCertVerificationError):
            websocket.create_connection(tls_ws.url, timeout=5)


@pytest.mark.parametrize(("var", "trusted"), [
    ("REQUESTS_CA_BUNDLE", True), ("CURL_CA_BUNDLE", True), ("SSL_CERT_FILE", True),
    ("WEBSOCKET_CLIENT_CA_BUNDLE", False), (None, False)])
def test_rest_honours(var, trusted, clean_env, tls_sim, tls_certs):
    if var:
        clean_env.setenv(var, str(tls_certs.ca_cert))
    url = f"{tls_sim.http_url('delta')}/v2/products"
    with RestSession() as session:
        if trusted:
            assert get_json(session, url, timeout=5)["success"] is True
        else:
            with pytest.raises(RestError) as info:
                get_json(session, url, timeout=5)
            assert str(info.value) == f"GET {url} failed: {UNTRUSTED}"


def test_untrusted_certificate_is_in_last_error_at_once(clean_env, other_ca, tls_ws, redis_server):
    for name, value in other_ca.trust_env().items():  # every variable set, to a CA that did not sign the server's
        clean_env.setenv(name, value)
    stats = FeedStats("tls", ["BTCUSDT"])
    sink = RedisSink(redis_server.url, "tls", stats)
    sink.start()
    [stream] = bybit.spot_streams(tls_ws.url, ["BTCUSDT"], book_top=False, ping_interval=60)
    conn = WsConnection(stream, sink, stats, backoff=Backoff(initial=0.2, maximum=1.0))
    conn.start()
    try:
        assert wait_for(lambda: stats.last_error, 5) == f"connect_failed: {UNTRUSTED}; {tls_ws.url}"
        wait_for(lambda: stats.errors_by_kind["connect_failed"] >= 2, 5)  # retried with backoff, still reported
        assert stats.messages_total == 0 and not tls_ws.conns
    finally:
        conn.stop()
        conn.join(2)
        sink.close()


def test_wss_to_a_plain_port_says_so(clean_env, sim):
    """A wss:// or https:// URL aimed at a server without TLS (the plain simulator)."""
    url = f"wss://127.0.0.1:{sim.port}/bybit/v5/public/spot"
    hint = "TLS: wrong version number (the server does not speak TLS on this port: ws:// or http://?)"
    with pytest.raises(ssl.SSLError) as info:
        websocket.create_connection(url, timeout=5)
    assert connection_error_text(info.value) == hint
    rest = f"https://127.0.0.1:{sim.port}/delta/v2/products"
    with pytest.raises(RestError) as err, RestSession() as session:
        get_json(session, rest, timeout=5)
    assert str(err.value) == f"GET {rest} failed: {hint}"
