"""Fault 17 (hostile conditions): a server that stops reading and floods RFC 6455 pings.

Before: on ws:// the reader thread blocked for good in `ws.pong` (websocket-client waits in
select() with no timeout once SO_SNDTIMEO expires), the keepalive thread blocked on the send
lock behind it, the silence watchdog never ran, and stop() hung in `send_close`. Now every send
has a deadline (`send_timeout`, the connect timeout), the keepalive thread never waits on the
send lock, and stop() never sends behind it.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.harness import RawWsServer, ws_frame
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import WsConnection
from workers.runtime.wsframe import PING


def flood_pings(conn: socket.socket, until: threading.Event) -> None:
    """Pings as fast as the client takes them; the server itself reads nothing."""
    ping = ws_frame(b"p" * 100, PING) * 100
    conn.settimeout(None)  # whole frames only: sendall blocks while the client reads nothing
    while not until.is_set():
        try:
            conn.sendall(ping)
        except OSError:
            return


@pytest.mark.timing
def test_a_server_that_reads_nothing_and_floods_pings_is_dropped_and_stop_is_prompt(redis_server, figures):
    server = RawWsServer()
    stats = FeedStats("stuck", ["BTCUSDT"])
    sink = RedisSink(redis_server.url, "stuck", stats)
    sink.start()
    [stream] = bybit.spot_streams(server.url, ["BTCUSDT"], ping_interval=0.2)
    conn = WsConnection(stream, sink, stats, silence_timeout=30, connect_timeout=1.0,
                        backoff=Backoff(initial=0.1, maximum=0.2))
    done = threading.Event()
    try:
        conn.start()
        first = server.wait_connections(1)
        t0 = time.monotonic()
        threading.Thread(target=flood_pings, args=(first, done), daemon=True).start()
        # the client's pongs fill both socket buffers; a send then gives up after 1 s and the feed reconnects
        second = server.wait_connections(2, timeout=15)
        reconnect = time.monotonic() - t0
        assert stats.reconnects >= 1
        assert "send" in stats.last_error or "timed out" in stats.last_error, stats.last_error
        figures.record("17 stuck send (ws://, server reads nothing, ping flood)", "flood -> reconnect", reconnect)

        # stuck again on the new connection, then stop(): the thread must end within the 2 s budget
        threading.Thread(target=flood_pings, args=(second, done), daemon=True).start()
        time.sleep(0.5)
        t1 = time.monotonic()
        threading.Thread(target=conn.stop, daemon=True).start()  # before: stop() itself hung in send_close
        conn.join(2.0)
        stopped = time.monotonic() - t1
        assert not conn._thread.is_alive(), "reader still stuck after stop()"
        assert stopped < 2.0
        conn._watch.join(2.0)
        assert not conn._watch.is_alive(), "keepalive still stuck after stop()"
        figures.record("17 stuck send (ws://, server reads nothing, ping flood)", "stop() while stuck", stopped)
    finally:
        done.set()
        server.close()  # frees a client stuck in a send
        threading.Thread(target=conn.stop, daemon=True).start()
        conn.join(2.0)
        sink.close()
