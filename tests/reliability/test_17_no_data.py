"""Fault 17 (hostile conditions): a server that answers application pings but sends no market data.

Before: pongs reset the silence watchdog, so the connection was kept for good with nothing
flowing. Now data frames are watched per connection (`data_timeout`): on data silence the
connection re-subscribes, and if that brings nothing either, it reconnects.
"""

from __future__ import annotations

import time

from tests.harness import wait_for
from tests.sim import Simulator
from workers.exchanges import bybit
from workers.runtime.backoff import Backoff
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import WsConnection


def test_pongs_without_data_resubscribe_then_reconnect(redis_server, figures):
    sim = Simulator(rate_hz=20.0).start()
    ex = sim.exchanges["bybit"]
    stats = FeedStats("nodata", ["BTCUSDT"])
    sink = RedisSink(redis_server.url, "nodata", stats)
    sink.start()
    [stream] = bybit.spot_streams(sim.ws_url("bybit", "v5/public/spot"), ["BTCUSDT"], ping_interval=0.2)
    conn = WsConnection(stream, sink, stats, silence_timeout=2.0, data_timeout=1.0,
                        backoff=Backoff(initial=0.1, maximum=0.5))
    try:
        conn.start()
        wait_for(lambda: stats.messages_total > 0, 10)
        connects = ex.connects
        ex.faults.no_data = True  # pongs and acks still come, every 0.2 s
        t0 = time.monotonic()
        wait_for(lambda: stats.errors_by_kind.get("no_data_resubscribe", 0) >= 1, 10)
        resubscribed = time.monotonic() - t0
        assert stats.reconnects == 0  # first a re-subscription on the same connection
        wait_for(lambda: ex.connects > connects, 10)
        reconnected = time.monotonic() - t0
        assert stats.errors_by_kind.get("no_data_timeout", 0) >= 1
        assert stats.errors_by_kind.get("silence_timeout", 0) == 0  # frames did keep coming
        ex.faults.no_data = False
        before, t1 = stats.messages_total, time.monotonic()
        wait_for(lambda: stats.messages_total > before, 10)
        back = time.monotonic() - t1
        fault = "17 pongs but no data (data_timeout 1 s)"
        figures.record(fault, "data stops -> re-subscribe", resubscribed)
        figures.record(fault, "data stops -> reconnect", reconnected)
        figures.record(fault, "data resumes -> data in", back)
    finally:
        conn.stop()
        conn.join(2)
        sink.close()
        sim.stop()
