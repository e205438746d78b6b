"""The wss:// read path (ws.tls_reader): every TLS record that has arrived goes to the decoder in one read.

An SSL read returns one record (<= 16 KiB, often one WebSocket frame), so reading once per batch
would hand the sink one frame at a time. These tests drive a raw TLS server byte by byte: records
that are all there are read together, a frame larger than the read buffer (>= 256 KB, 16 KiB
records) and a burst of >= 1000 frames in one write arrive whole through a WsConnection into Redis.
"""

from __future__ import annotations

import fcntl
import json
import struct
import termios
import threading
import time

import pytest
import websocket

from tests.harness import RawWsServer, wait_for, ws_frame
from tests.sim import Simulator
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.sink import RedisSink
from workers.runtime.stats import SUBSCRIBED, FeedStats
from workers.runtime.ws import RECV_BYTES, WsConnection, nonblocking_sends_wait, socket_reader
from workers.runtime.wsframe import TEXT, FrameDecoder

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


def ticker(symbol: str, price: float, ts_ms: int, pad: int = 0) -> bytes:
    msg = {"topic": f"tickers.{symbol}", "ts": ts_ms, "type": "snapshot", "data": {"symbol": symbol, "lastPrice": f"{price:.2f}"}}
    if pad:
        msg["pad"] = "x" * pad
    return json.dumps(msg).encode()


@pytest.fixture
def tls_server(tls_certs, monkeypatch):
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(tls_certs.ca_cert))
    server = RawWsServer(tls_certs.server_context())
    yield server
    server.close()


def read_frames(read, count: int, timeout: float = 10.0) -> tuple[list[tuple[int, bytes]], list[int]]:
    """Decode `count` frames with `read`, on a thread (a reader stuck waiting must fail, not hang the run);
    return the frames and how many each read() call carried."""
    decoder = FrameDecoder(4 << 20)
    frames: list[tuple[int, bytes]] = []
    per_read: list[int] = []

    def run() -> None:
        while len(frames) < count and (data := read()):
            got = decoder.feed(data)
            per_read.append(len(got))
            frames.extend(got)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return frames, per_read


def test_records_that_have_arrived_are_read_together(tls_server):
    """400 frames, each its own TLS record, all in the client's socket buffer before it reads: one read
    takes them all (a blocking SSL read would return one record, i.e. one frame, per call)."""
    ws = websocket.create_connection(tls_server.url, timeout=5, skip_utf8_validation=True)
    try:
        conn = tls_server.wait_connections()
        now = int(time.time() * 1000)
        payloads = [ticker(SYMBOLS[i % 4], 100 + i, now + i) for i in range(400)]
        for p in payloads:
            conn.sendall(ws_frame(p))  # one record per frame, as exchange servers write them
        assert sum(len(ws_frame(p)) for p in payloads) < RECV_BYTES  # all of it fits one read
        # Every record is in the client's kernel buffer (TLS 1.3 adds 22 bytes per record) before it reads.
        ciphertext = sum(len(ws_frame(p)) + 22 for p in payloads)
        wait_for(lambda: struct.unpack("i", fcntl.ioctl(ws.sock.fileno(), termios.FIONREAD, b"\0" * 4))[0] >= ciphertext, 5)
        frames, per_read = read_frames(socket_reader(ws.sock), len(payloads))
        assert frames == [(TEXT, p) for p in payloads]
        assert per_read == [400]
    finally:
        ws.shutdown()


def test_a_frame_larger_than_the_buffer_and_records_split_by_it(tls_server):
    """A 100-byte record then a 300 KB frame (16 KiB records): reads end inside records, and the bytes
    OpenSSL already decrypted (`pending()`) must be read before waiting for the kernel."""
    ws = websocket.create_connection(tls_server.url, timeout=5, skip_utf8_validation=True)
    try:
        conn = tls_server.wait_connections()
        now = int(time.time() * 1000)
        small, big, last = ticker("BTCUSDT", 1, now), ticker("BTCUSDT", 2, now + 1, pad=300_000), ticker("BTCUSDT", 3, now + 2)
        sender = threading.Thread(target=lambda: [conn.sendall(ws_frame(p)) for p in (small, big, last)], daemon=True)
        sender.start()
        frames, _ = read_frames(socket_reader(ws.sock), 3)
        assert [len(p) for _, p in frames] == [len(small), len(big), len(last)]
        assert frames == [(TEXT, small), (TEXT, big), (TEXT, last)]
        sender.join(5)
    finally:
        ws.shutdown()


@pytest.fixture
def feed(tls_server, redis_server):
    stats = FeedStats("tlsr", SYMBOLS)
    sink = RedisSink(redis_server.url, "tlsr", stats)
    sink.start()
    [stream] = bybit.spot_streams(tls_server.url, SYMBOLS, book_top=False, ping_interval=60)
    conn = WsConnection(stream, sink, stats, silence_timeout=30, backoff=Backoff(initial=0.2, maximum=1.0))
    conn.start()
    yield stats, tls_server.wait_connections()
    conn.stop()
    conn.join(2)
    sink.close()


@pytest.mark.parametrize("one_write", [True, False], ids=["burst-in-one-write", "one-record-per-frame"])
def test_large_frame_and_a_burst_of_1000_frames_reach_redis(feed, redis_server, one_write):
    stats, conn = feed
    r = redis_server.client()
    now = int(time.time() * 1000)
    big = ticker("BTCUSDT", 50_000, now, pad=300_000)
    conn.sendall(ws_frame(big))
    wait_for(lambda: r.hget("tlsr:BTCUSDT", "ltp") == "50000.00", 5)
    assert stats.messages_total == 1

    burst = [ticker(SYMBOLS[i % 4], 1000 + i, now + 1 + i) for i in range(1200)]
    if one_write:
        conn.sendall(b"".join(ws_frame(p) for p in burst))  # ~150 KB: one write, TLS splits it into 16 KiB records
    else:
        for p in burst:
            conn.sendall(ws_frame(p))
    wait_for(lambda: stats.messages_total == 1 + len(burst), 10)
    # Latest value of each symbol wins: frames 1196..1199 carry each symbol's last price.
    assert [r.hget(f"tlsr:{s}", "ltp") for s in SYMBOLS] == [f"{1000 + i:.2f}" for i in range(1196, 1200)]
    assert stats.parse_errors == 0 and stats.reconnects == 0 and stats.last_error == ""


def test_sends_on_the_nonblocking_tls_socket_wait_for_room_then_time_out(tls_server):
    """The reader makes the SSL socket non-blocking; websocket-client's sends (pings, pongs, resubscribes)
    must still wait for a slow server instead of failing, and give up after the send timeout."""
    ws = websocket.create_connection(tls_server.url, timeout=5, skip_utf8_validation=True)
    try:
        conn = tls_server.wait_connections()
        socket_reader(ws.sock)  # switches the socket to non-blocking
        nonblocking_sends_wait(ws.sock, 1.0)
        reading = threading.Event()
        reading.set()
        received = 0

        def slow_server() -> None:  # reads 64 KiB every 10 ms while `reading` is set
            nonlocal received
            conn.settimeout(0.2)
            while reading.is_set():
                try:
                    received += len(conn.recv(65536))
                except (TimeoutError, OSError):
                    pass
                time.sleep(0.01)

        t = threading.Thread(target=slow_server, daemon=True)
        t.start()
        for _ in range(64):  # 4 MiB: far more than the socket buffers hold, so sends must wait for room
            ws.send("x" * 65536)
        reading.clear()
        t.join(2)
        assert received > 0
        with pytest.raises(websocket.WebSocketTimeoutException, match="the server reads nothing"):
            for _ in range(1000):  # nobody reads now: the buffers fill, then one send gives up after 1 s
                ws.send("x" * 65536)
    finally:
        ws.shutdown()


def test_pings_and_pongs_over_tls(tls_certs, redis_server, monkeypatch):
    """Application pings (keepalive thread) and answers to the server's RFC 6455 pings (reader thread)
    go out on the non-blocking SSL socket: aiohttp drops a client whose pong is late."""
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(tls_certs.ca_cert))
    sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    sim.exchanges["bybit"].faults.ws_heartbeat = 0.2
    stats = FeedStats("tlsp", ["BTCUSDT"])
    sink = RedisSink(redis_server.url, "tlsp", stats)
    sink.start()
    [stream] = bybit.spot_streams(sim.ws_url("bybit", "v5/public/spot"), ["BTCUSDT"], ping_interval=0.2)
    conn = WsConnection(stream, sink, stats, silence_timeout=30, backoff=Backoff(initial=0.2, maximum=1.0))
    conn.start()
    try:
        wait_for(lambda: stats.state == SUBSCRIBED and stats.messages_total > 0)
        before = stats.messages_total
        time.sleep(2.0)  # ~10 server pings and ~10 application pings
        assert stats.reconnects == 0 and stats.messages_total > before and stats.last_error == ""
    finally:
        conn.stop()
        conn.join(2)
        sink.close()
        sim.stop()


def test_silence_watchdog_and_stop_wake_a_reader_waiting_in_poll(tls_server, redis_server):
    """The reader waits in poll() when nothing is buffered: the watchdog's and stop()'s shutdown must wake it."""
    stats = FeedStats("tlss", ["BTCUSDT"])
    sink = RedisSink(redis_server.url, "tlss", stats)
    sink.start()
    [stream] = bybit.spot_streams(tls_server.url, ["BTCUSDT"], book_top=False, ping_interval=60)
    conn = WsConnection(stream, sink, stats, silence_timeout=1.0, backoff=Backoff(initial=0.2, maximum=1.0))
    conn.start()
    try:
        tls_server.wait_connections()  # upgraded, then nothing is ever sent
        wait_for(lambda: stats.reconnects >= 1, 5)
        assert stats.errors_by_kind.get("silence_timeout", 0) >= 1
        assert "silence timeout" in stats.last_error and "connection_lost" not in stats.errors_by_kind
        tls_server.wait_connections(2)
    finally:
        conn.stop()
        conn.join(2)
        sink.close()
    assert not conn._thread.is_alive()
