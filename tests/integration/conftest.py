"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.sim import Simulator
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import WsConnection


@pytest.fixture(scope="module")
def tls_sim(tls_certs):
    """The simulator in TLS mode, its certificate from the session's test CA (tests/conftest.py)."""
    sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    yield sim
    sim.stop()


@pytest.fixture
def spot_connection(redis_server, sim):
    """make(symbols, **WsConnection options) -> (connection, stats): a started Bybit spot WsConnection and
    its RedisSink (prefix "t") on the simulator; every one made is stopped after the test."""
    made = []

    def make(symbols=("BTCUSDT", "ETHUSDT"), **options):
        stats = FeedStats("t", symbols)
        sink = RedisSink(redis_server.url, "t", stats)
        sink.start()
        [stream] = bybit.spot_streams(sim.ws_url("bybit", "v5/public/spot"), list(symbols), ping_interval=1.0)
        options.setdefault("backoff", Backoff(initial=0.2, maximum=2.0))
        conn = WsConnection(stream, sink, stats, **options)
        conn.start()
        made.append((conn, sink))
        return conn, stats

    yield make
    for conn, sink in made:
        conn.stop()
        conn.join(2)
        sink.close()
