"""Fault 17 (hostile conditions): Bybit subscription refusals.

- A refusal naming no topic ("Internal error, please retry", then the server closes). Before:
  every topic of the request was dropped for good; the next connection logged "sending 0
  subscribe request(s)" and no data ever came. Now the topics are kept and retried.
- Acks naming a topic nobody asked for. Before: each made the feed resend the whole batch at
  once (a resubscribe storm: 23,960 requests in 3 s). Now re-subscriptions go through a
  per-connection limiter (3 at once, then one per 2 s).
"""

from __future__ import annotations

import time

from tests.harness import wait_for
from tests.reliability.util import fresh
from tests.sim import Simulator
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import WsConnection

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def feed(sim, redis_server, name):
    stats = FeedStats(name, SYMBOLS)
    sink = RedisSink(redis_server.url, name, stats)
    sink.start()
    [stream] = bybit.spot_streams(sim.ws_url("bybit", "v5/public/spot"), SYMBOLS, ping_interval=0.5)
    conn = WsConnection(stream, sink, stats, silence_timeout=5, backoff=Backoff(initial=0.1, maximum=0.5))
    return stats, sink, stream, conn


def test_an_unattributed_refusal_keeps_the_topics(redis_server, figures):
    sim = Simulator(rate_hz=20.0).start()
    ex = sim.exchanges["bybit"]
    ex.faults.sub_internal_error = 2  # the first two connections: refused, naming no topic, then closed
    stats, sink, stream, conn = feed(sim, redis_server, "unattr")
    r = redis_server.client()
    t0 = time.monotonic()
    try:
        conn.start()
        wait_for(lambda: fresh(r, [f"unattr:{s}" for s in SYMBOLS], 0), 15)
        back = time.monotonic() - t0
        assert stats.rejected == {}
        assert len(stream.topics) == 4
        figures.record("17 refusal naming no topic (x2, server closes)", "start -> every symbol's data", back)
    finally:
        conn.stop()
        conn.join(2)
        sink.close()
        sim.stop()


def test_acks_naming_unrequested_topics_do_not_storm(redis_server, figures):
    sim = Simulator(rate_hz=20.0).start()
    ex = sim.exchanges["bybit"]
    ex.faults.ack_unrequested = 1_000_000  # every subscribe request answered so
    stats, sink, stream, conn = feed(sim, redis_server, "storm")
    try:
        conn.start()
        wait_for(lambda: ex.subscribe_requests > 0, 10)
        time.sleep(3.0)
        sent = ex.subscribe_requests
        assert sent <= 10, sent  # 1 + 3 at once + one per 2 s; was ~24,000 in 3 s
        assert stats.reconnects == 0
        ex.faults.ack_unrequested = 0  # the exchange recovers: the next held-back retry subscribes
        r = redis_server.client()
        t0 = time.monotonic()
        wait_for(lambda: fresh(r, [f"storm:{s}" for s in SYMBOLS], 0), 10)
        figures.record("17 acks naming unrequested topics (3 s)", "subscribe requests sent", sent, "")
        figures.record("17 acks naming unrequested topics (3 s)", "exchange recovers -> data", time.monotonic() - t0)
    finally:
        conn.stop()
        conn.join(2)
        sink.close()
        sim.stop()
