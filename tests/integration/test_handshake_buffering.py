"""The feeds read the socket themselves after websocket-client's handshake (ws.py, wsframe.py).

That is only right if websocket-client reads the 101 response without reading past it: a
server may send its first frames in the same TCP segment (or TLS record) as the 101, and
bytes buffered inside websocket-client would never reach our decoder. websocket-client 1.x
reads the status line and headers one byte at a time; these tests pin that down, over ws://
and wss://, at the decode path and through a whole WsConnection into Redis.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import websocket

from tests.harness import RawWsServer, wait_for, ws_frame
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.sink import RedisSink
from workers.runtime.stats import SUBSCRIBED, FeedStats
from workers.runtime.ws import WsConnection, socket_reader
from workers.runtime.wsframe import TEXT, FrameDecoder


def ticker(symbol: str, price: str, ts_ms: int) -> bytes:
    return json.dumps({"topic": f"tickers.{symbol}", "ts": ts_ms, "type": "snapshot",
                       "data": {"symbol": symbol, "lastPrice": price}}).encode()


def first_frames() -> list[bytes]:
    now = int(time.time() * 1000)
    return [ticker("BTCUSDT", "65000.5", now), ticker("ETHUSDT", "3200.25", now), ticker("BTCUSDT", "65001.5", now + 1)]


@pytest.fixture(params=["ws", "wss"])
def server_with_frames_after_101(request, tls_certs):
    """A server whose 101 and first three frames leave in one sendall() (one segment; over TLS one record)."""
    frames = first_frames()
    server = RawWsServer(tls_certs.server_context() if request.param == "wss" else None,
                         after_101=b"".join(ws_frame(f) for f in frames))
    yield server, frames
    server.close()


def test_frames_in_the_101_segment_reach_the_decoder(server_with_frames_after_101, tls_certs):
    server, frames = server_with_frames_after_101
    sslopt = {"ca_certs": str(tls_certs.ca_cert)}
    ws = websocket.create_connection(server.url, timeout=5, sslopt=sslopt, skip_utf8_validation=True)
    try:
        server.wait_connections()
        read, decoder = socket_reader(ws.sock), FrameDecoder(1 << 20)
        got: list[tuple[int, bytes]] = []

        def read_all() -> None:
            while len(got) < len(frames) and (data := read()):
                got.extend(decoder.feed(data))

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        reader.join(5)  # a frame left inside websocket-client would leave the reader waiting forever
        assert got == [(TEXT, f) for f in frames]
    finally:
        ws.shutdown()


def test_a_feed_writes_the_frames_that_came_with_the_101(server_with_frames_after_101, tls_certs, redis_server,
                                                         monkeypatch):
    server, frames = server_with_frames_after_101
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(tls_certs.ca_cert))
    stats = FeedStats("hs", ["BTCUSDT", "ETHUSDT"])
    sink = RedisSink(redis_server.url, "hs", stats)
    sink.start()
    [stream] = bybit.spot_streams(server.url, ["BTCUSDT", "ETHUSDT"], book_top=False, ping_interval=60)
    conn = WsConnection(stream, sink, stats, silence_timeout=30, backoff=Backoff(initial=0.2, maximum=1.0))
    conn.start()
    try:
        r = redis_server.client()
        # Nothing else is ever sent: these values can only come from the bytes that shared the 101's segment.
        wait_for(lambda: r.hget("hs:BTCUSDT", "ltp") == "65001.5" and r.hget("hs:ETHUSDT", "ltp") == "3200.25", 5)
        assert stats.messages_total == len(frames)
        assert stats.state == SUBSCRIBED and stats.reconnects == 0 and stats.last_error == ""
    finally:
        conn.stop()
        conn.join(2)
        sink.close()
