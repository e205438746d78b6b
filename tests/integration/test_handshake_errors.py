"""A connection that fails before or right after the WebSocket handshake is in `last_error` at once, with
its cause in words a user can act on; REST requests report the same causes in the same words.

Before: `WsConnection` kept every OSError (refused, timeout, TLS) out of `last_error`, so the card
stayed green on a feed that never connected; REST errors kept only the exception's class name.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tests.harness import RawWsServer, free_port, wait_for
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.poll import RestError, RestSession, get_json
from workers.runtime.sink import RedisSink
from workers.runtime.stats import RECONNECTING, SUBSCRIBED, FeedStats
from workers.runtime.ws import WsConnection


@pytest.fixture
def connect(redis_server):
    """Start a Bybit spot WsConnection to `url` (in process, real Redis); returns its stats."""
    made = []

    def make(url: str, connect_timeout: float = 5.0) -> FeedStats:
        stats = FeedStats("err", ["BTCUSDT"])
        sink = RedisSink(redis_server.url, "err", stats)
        sink.start()
        [stream] = bybit.spot_streams(url, ["BTCUSDT"], book_top=False, ping_interval=60)
        conn = WsConnection(stream, sink, stats, silence_timeout=30, connect_timeout=connect_timeout,
                            backoff=Backoff(initial=0.2, maximum=1.0))
        conn.start()
        made.append((conn, sink))
        return stats

    yield make
    for conn, sink in made:
        conn.stop()
        conn.join(2)
        sink.close()


def first_error(stats: FeedStats, timeout: float = 5.0) -> str:
    return wait_for(lambda: stats.last_error, timeout)


def test_refused_connection(connect):
    url = f"ws://127.0.0.1:{free_port()}/bybit/v5/public/spot"
    stats = connect(url)
    assert first_error(stats) == f"connect_failed: connection refused; {url}"
    assert stats.errors_by_kind["connect_failed"] >= 1 and stats.parse_errors == 0
    assert stats.state in ("connecting", RECONNECTING)


def test_unknown_host(connect):
    stats = connect("ws://no-such-exchange.invalid/v5/public/spot")
    assert first_error(stats) == "connect_failed: DNS: name not known; ws://no-such-exchange.invalid/v5/public/spot"


@pytest.mark.parametrize("tls", [False, True], ids=["ws-upgrade-unanswered", "wss-tls-handshake-unanswered"])
def test_server_that_never_answers(connect, tls, tls_certs):
    server = RawWsServer(tls_certs.server_context() if tls else None, handshake=False)
    try:
        stats = connect(server.url, connect_timeout=0.5)
        assert first_error(stats) == f"connect_failed: timed out; {server.url}"
    finally:
        server.close()


def test_upgrade_refused_with_an_http_status(connect, sim):
    sim.exchanges["bybit"].faults.refuse_connections = True
    url = sim.ws_url("bybit", "v5/public/spot")
    stats = connect(url)
    assert first_error(stats) == (f"connect_failed: HTTP 503 Service Unavailable: upgrade refused "
                                  f"(simulator refusing connections); {url}")
    sim.exchanges["bybit"].faults.refuse_connections = False
    wait_for(lambda: stats.state == SUBSCRIBED and stats.messages_total > 0, 10)


def test_stream_ending_without_a_close_frame(connect):
    server = RawWsServer()
    try:
        stats = connect(server.url)
        # FIN: close() would send a reset instead if the client's subscribe request sat unread in the socket
        server.wait_connections().shutdown(socket.SHUT_WR)
        assert first_error(stats) == f"connection_lost: connection closed by the server without a close frame; {server.url}"
    finally:
        server.close()


def test_connection_reset(connect):
    server = RawWsServer()
    try:
        stats = connect(server.url)
        conn = server.wait_connections()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST
        conn.close()
        assert first_error(stats) == f"connection_lost: connection reset by the server; {server.url}"
    finally:
        server.close()


def test_a_close_frame_is_a_clean_end_not_an_error(connect, sim):
    stats = connect(sim.ws_url("bybit", "v5/public/spot"))
    wait_for(lambda: stats.state == SUBSCRIBED)
    sim.drop("bybit")  # close frame 1001, then a reconnect
    wait_for(lambda: stats.reconnects == 1 and stats.state == SUBSCRIBED)
    assert stats.last_error == "" and not stats.errors_by_kind


# -- REST: same causes, same words --------------------------------------------------------------


def rest_error(url: str, timeout: float = 5.0) -> str:
    with pytest.raises(RestError) as info, RestSession() as session:
        get_json(session, url, timeout=timeout)
    return str(info.value)


def test_rest_refused_unknown_host_and_timeout():
    url = f"http://127.0.0.1:{free_port()}/v2/products"
    assert rest_error(url) == f"GET {url} failed: connection refused"
    assert rest_error("http://no-such-exchange.invalid/v2/products") == \
        "GET http://no-such-exchange.invalid/v2/products failed: DNS: name not known"
    hung = RawWsServer(handshake=False)  # accepts TCP, never answers
    try:
        url = f"http://127.0.0.1:{hung.port}/v2/products"
        assert rest_error(url, timeout=0.5) == f"GET {url} failed: timed out"
    finally:
        hung.close()
