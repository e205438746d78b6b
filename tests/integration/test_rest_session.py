"""The feeds' REST client (`poll.RestSession`, urllib3 without requests) keeps what requests gave them:
keep-alive, query params, JSON POST bodies, redirects (bounded, methods rewritten as requests does),
proxies from the environment (HTTP_PROXY / HTTPS_PROXY / NO_PROXY, a real local proxy counts what
went through it), CA bundles from the environment, no automatic retries (429 / 5xx are one request,
Retry-After goes to the poller), and urllib3 stays out of feeds without REST.
"""

from __future__ import annotations

import json
import select
import socket
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.harness import TlsCerts, wait_for
from workers.runtime.model import ParseError
from workers.runtime.poll import (
    MAX_REDIRECTS,
    RestError,
    RestPoller,
    RestSession,
    get_json,
    get_parsed,
    post_json,
    post_parsed,
    proxy_for,
)
from workers.runtime.stats import FeedStats

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy")
CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "WEBSOCKET_CLIENT_CA_BUNDLE")


@pytest.fixture
def env(monkeypatch):
    for name in PROXY_VARS + CA_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class Origin:
    """A small HTTP server: /json, /echo (method, query, body, headers), redirects, 429 and 500, and
    a connection count (keep-alive)."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self.connections = 0
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                origin.connections += 1
                super().setup()

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n) if n else b""
                path = urlsplit(self.path)
                origin.hits.append((self.command, self.path))
                if path.path == "/json":
                    self._answer(200, b'{"ok": true}', {"Content-Type": "application/json"})
                elif path.path == "/echo":
                    self._answer(200, json.dumps({"method": self.command, "query": path.query, "body": data.decode(),
                                                  "content_type": self.headers.get("Content-Type"),
                                                  "user_agent": self.headers.get("User-Agent")}).encode())
                elif path.path.startswith("/redirect/"):  # /redirect/<status>/<n>: n more hops, then /echo
                    _, _, status, hops = path.path.split("/")
                    target = "/echo" if hops == "0" else f"/redirect/{status}/{int(hops) - 1}"
                    self._answer(int(status), headers={"Location": target + (f"?{path.query}" if path.query else "")})
                elif path.path == "/loop":
                    self._answer(302, headers={"Location": "/loop"})
                elif path.path == "/429":
                    self._answer(429, b"slow down", {"Retry-After": "7"})
                elif path.path == "/500":
                    self._answer(500, b"oops")
                elif path.path == "/html":
                    self._answer(200, b"<html>maintenance</html>")
                else:
                    self._answer(404)

            do_GET = do_POST = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    """A forward HTTP proxy: absolute-URI requests are relayed to the origin, CONNECT is tunnelled.
    `seen` lists each request line it got (`GET http://...`, `CONNECT host:port`)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                line = head.split(b"\r\n", 1)[0].decode()
                method, target, _ = line.split(" ", 2)
                proxy.seen.append(f"{method} {target}")
                if method == "CONNECT":
                    host, port = target.rsplit(":", 1)
                    upstream = socket.create_connection((host, int(port)))
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    rest = head.split(b"\r\n\r\n", 1)[1]
                else:  # the absolute URI as a path to the origin; one request per connection (Connection: close)
                    url = urlsplit(target)
                    upstream = socket.create_connection((url.hostname, url.port or 80))
                    path = url.path + (f"?{url.query}" if url.query else "")
                    rest = head.replace(target.encode(), path.encode(), 1)
                    rest = rest.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
                upstream.sendall(rest)
                if method == "CONNECT":
                    pipe(client, upstream)
                    return
                answer = b""
                while chunk := upstream.recv(65536):
                    answer += chunk
                upstream.close()
                status, _, tail = answer.partition(b"\r\n")  # tell the client this connection ends here
                client.sendall(status + b"\r\nConnection: close\r\n" + tail)
                client.close()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes."""
    socks = [a, b]
    try:
        while True:
            readable, _, _ = select.select(socks, [], [], 10)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()


@pytest.fixture
def origin():
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def proxy():
    server = Proxy()
    yield server
    server.close()




# -- requests' behaviour kept ----------------------------------------------------------------------


def test_keep_alive_params_and_json_post(env, origin):
    with RestSession() as session:
        got = get_json(session, f"{origin.url}/echo?a=1", params={"b": "x y", "c": ["1", "2"], "skip": None})
        assert got["query"] == "a=1&b=x+y&c=1&c=2" and got["method"] == "GET"
        assert got["user_agent"] == "ltp-market-data/1"
        got = post_json(session, f"{origin.url}/echo", {"type": "meta", "n": [1, 2]})
        assert got["method"] == "POST" and json.loads(got["body"]) == {"type": "meta", "n": [1, 2]}
        assert got["content_type"] == "application/json"
        for _ in range(3):
            assert get_json(session, f"{origin.url}/json") == {"ok": True}
    assert origin.connections == 1, "one kept-alive connection for every request of a session"


def test_redirects_followed_and_bounded(env, origin):
    with RestSession() as session:
        got = get_json(session, f"{origin.url}/redirect/302/2", params={"q": "1"})
        assert got["method"] == "GET" and got["query"] == "q=1"
        assert [p for _, p in origin.hits] == ["/redirect/302/2?q=1", "/redirect/302/1?q=1", "/redirect/302/0?q=1", "/echo?q=1"]
        # 307/308 keep the method and the body; 302/303 turn a POST into a GET, as requests does.
        got = post_json(session, f"{origin.url}/redirect/307/0", {"a": 1})
        assert got["method"] == "POST" and json.loads(got["body"]) == {"a": 1}
        got = post_json(session, f"{origin.url}/redirect/303/0", {"a": 1})
        assert got["method"] == "GET" and got["body"] == "" and got["content_type"] is None
        url = f"{origin.url}/loop"
        origin.hits.clear()
        with pytest.raises(RestError) as info:
            get_json(session, url)
        assert str(info.value) == f"GET {url} failed: too many redirects (more than {MAX_REDIRECTS})"
        assert len(origin.hits) == MAX_REDIRECTS + 1


def test_429_and_5xx_are_one_request_each_with_retry_after_for_the_poller(env, origin):
    with RestSession() as session:
        with pytest.raises(RestError) as info:
            get_json(session, f"{origin.url}/429")
        assert str(info.value) == f"GET {origin.url}/429: 429 rate limited" and info.value.retry_after == 7.0
        with pytest.raises(RestError) as info:
            get_json(session, f"{origin.url}/500")
        assert str(info.value) == f"GET {origin.url}/500: HTTP 500" and info.value.retry_after is None
        with pytest.raises(RestError) as info:
            get_json(session, f"{origin.url}/html")
        assert str(info.value) == f"GET {origin.url}/html: answer is not JSON ('<html>maintenance</html>')"
    assert [p for _, p in origin.hits] == ["/429", "/500", "/html"], "urllib3 must not retry on its own"


def refuse(body: object) -> object:
    raise ParseError("bad_reply", f"no prices in {body}")


def test_a_reply_the_protocol_refuses_is_a_rest_error_the_poller_counts_and_retries(env, origin):
    """The one place a protocol module's ParseError becomes a RestError (counted as rest_error,
    retried with backoff; the poll writes nothing from that reply)."""
    with RestSession() as session:
        assert get_parsed(session, f"{origin.url}/json", {"q": "1"}, parse=lambda body: body["ok"]) is True
        assert post_parsed(session, f"{origin.url}/echo", {"a": 1}, parse=lambda body: body["method"]) == "POST"
        with pytest.raises(RestError) as info:
            get_parsed(session, f"{origin.url}/json", parse=refuse)
        assert str(info.value) == f"GET {origin.url}/json: unusable answer (bad_reply: no prices in {{'ok': True}})"
        with pytest.raises(RestError, match=r"^POST .*/echo: unusable answer \(bad_reply: no prices in"):
            post_parsed(session, f"{origin.url}/echo", {}, parse=refuse)
    stats = FeedStats("t", [])
    written: list[object] = []
    poller = RestPoller("t", lambda s: written.append(get_parsed(s, f"{origin.url}/json", parse=refuse)), 0.05, stats)
    poller.start()
    try:
        wait_for(lambda: stats.errors_by_kind.get("rest_error", 0) >= 2, 10)
    finally:
        poller.stop()
        poller.join(2)
    assert written == [] and "poll_bug" not in stats.errors_by_kind
    assert poller.backoff.next_delay() > 1.0  # backing off, not polling at the interval


# -- proxies from the environment -------------------------------------------------------------------


def test_http_proxy_from_the_environment(env, origin, proxy):
    env.setenv("HTTP_PROXY", proxy.url)
    with RestSession() as session:
        assert get_json(session, f"{origin.url}/json") == {"ok": True}
        assert get_json(session, f"{origin.url}/redirect/302/0")["method"] == "GET"  # every hop through the proxy
    assert proxy.seen == [f"GET {origin.url}/json", f"GET {origin.url}/redirect/302/0", f"GET {origin.url}/echo"]
    assert len(origin.hits) == 3


def test_no_proxy_bypasses_it(env, origin, proxy):
    env.setenv("http_proxy", proxy.url)
    env.setenv("no_proxy", "localhost,127.0.0.1")
    assert proxy_for(f"{origin.url}/json") is None
    with RestSession() as session:
        assert get_json(session, f"{origin.url}/json") == {"ok": True}
    assert proxy.seen == [] and len(origin.hits) == 1


def test_https_through_a_proxy_tunnel_verifies_the_origin(env, proxy, tls_sim, tls_certs):
    env.setenv("HTTPS_PROXY", proxy.url)
    env.setenv("REQUESTS_CA_BUNDLE", str(tls_certs.ca_cert))
    url = f"{tls_sim.http_url('delta')}/v2/products"
    with RestSession() as session:
        assert get_json(session, url, timeout=5)["success"] is True
    assert proxy.seen == [f"CONNECT 127.0.0.1:{tls_sim.port}"]


def test_proxy_that_refuses_says_so(env):
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    env.setenv("HTTP_PROXY", f"127.0.0.1:{port}")  # no scheme: read as http://, as requests does
    assert proxy_for("http://example.test/x") == f"http://127.0.0.1:{port}"
    with pytest.raises(RestError) as info, RestSession() as session:
        get_json(session, "http://example.test/x", timeout=5)
    assert str(info.value) == "GET http://example.test/x failed: connection refused"


# -- CA bundles from the environment ----------------------------------------------------------------


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    certs = TlsCerts(tmp_path_factory.mktemp("other-ca"), name="some other CA")
    yield certs
    certs.cleanup()


def test_requests_ca_bundle_replaces_the_default_store(env, tls_sim, tls_certs, other_ca):
    """As with requests: the bundle variable wins over SSL_CERT_FILE (OpenSSL's default path), and replaces it."""
    url = f"{tls_sim.http_url('delta')}/v2/products"
    env.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    env.setenv("REQUESTS_CA_BUNDLE", str(other_ca.ca_cert))
    with pytest.raises(RestError) as info, RestSession() as session:
        get_json(session, url, timeout=5)
    assert "certificate verify failed — set SSL_CERT_FILE/REQUESTS_CA_BUNDLE" in str(info.value)
    env.setenv("REQUESTS_CA_BUNDLE", str(tls_certs.ca_cert.parent / "missing.pem"))
    with pytest.raises(RestError) as info, RestSession() as session:
        get_json(session, url, timeout=5)
    assert str(info.value) == f"GET {url} failed: CA bundle not found: REQUESTS_CA_BUNDLE={tls_certs.ca_cert.parent / 'missing.pem'}"


# -- memory: urllib3 only where REST is used ---------------------------------------------------------


def test_feeds_without_rest_never_import_urllib3():
    code = ("import sys, workers.runtime.ws, workers.runtime.poll, workers.runtime.discovery, workers.exchanges.bybit, "
            "workers.exchanges.delta, workers.exchanges.coindcx, workers.exchanges.hyperliquid, workers.runtime.rest\n"
            "assert 'urllib3' not in sys.modules and 'requests' not in sys.modules, sorted(sys.modules)\n"
            "from workers.runtime.poll import RestSession\nRestSession()\n"
            "assert 'urllib3' in sys.modules and 'requests' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
