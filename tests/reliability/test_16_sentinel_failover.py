"""Fault 16: the Redis master dies (kill -9) under Sentinel; the promoted replica has every key's
latest state within the sentinels' failover time + 2 s.

One master, one replica, three sentinels on loopback (down-after 1000 ms, failover-timeout 2000 ms).
A real RedisSink on `redis+sentinel://...` writes continuously from a producer thread (stage +
flush, as a socket thread does). After the kill, writes fail; every reconnect asks the sentinels
for the master; once one is promoted the sink rewrites every key's full last state (replication
is asynchronous: what the old master had not passed on is restored by that rewrite).
"""

from __future__ import annotations

import time

import pytest

from controlpanel.deps import panel_redis
from tests.harness import SentinelSet, wait_for
from tests.reliability.util import SinkProducer, state_back_after_failover
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats

SYMBOLS = [f"S{i:03d}" for i in range(200)]
PREFIX = "fo"


@pytest.mark.timing
def test_master_killed_state_back_on_promoted_master(figures):
    cluster = SentinelSet().start()
    stats = FeedStats("failover", SYMBOLS)
    sink = RedisSink(cluster.url, PREFIX, stats)
    sink.start()
    producer = SinkProducer(sink, SYMBOLS)
    try:
        producer.start()
        old = cluster.master_addr()
        master = cluster.master.client()
        wait_for(lambda: len(master.keys(f"{PREFIX}:*")) == len(SYMBOLS), 10)
        panel = panel_redis(cluster.url, 2)  # the panel's bounded pool, connected to the old master
        assert panel.hget(f"{PREFIX}:S000", "ltp") is not None
        time.sleep(0.3)
        cluster.master.kill()
        t_kill = time.monotonic()
        at_kill = producer.seq

        new = wait_for(lambda: (addr := cluster.master_addr()) != old and addr, 30, 0.05)
        t_switch = time.monotonic() - t_kill  # the sentinels' failover time, as a client sees it
        promoted = cluster.replica.client()
        assert new == ("127.0.0.1", cluster.replica.port)

        state_back_after_failover(promoted, PREFIX, SYMBOLS, at_kill, t_kill, t_switch, figures, "16 sentinel failover",
                                  "sentinels' failover (kill -9 -> new master announced)",
                                  "every key's latest state on the promoted master")

        # Writes keep flowing to the new master; the panel's client (same URL) reads them there.
        before = producer.seq
        wait_for(lambda: int(promoted.hget(f"{PREFIX}:S199", "ltp") or 0) > before, 5)
        assert int(panel.hget(f"{PREFIX}:S000", "ltp")) >= at_kill  # its idle connection re-asks the sentinels
        producer.stop()
        sink.close()
        last = str(producer.seq)
        wait_for(lambda: all(promoted.hget(f"{PREFIX}:{s}", "ltp") == last for s in SYMBOLS), 5)
        assert promoted.scard(f"ltp:symbols:{PREFIX}") == len(SYMBOLS)
        assert stats.redis_errors >= 1 and sink.connected
    finally:
        producer.stop()
        sink.close(0.5)
        cluster.cleanup()


@pytest.mark.timing
def test_real_feed_under_supervisord_follows_the_failover(sim, figures):
    """The same with a real feed (bybit_spot on the simulator, under supervisord) and its status
    reporter, both on the Sentinel URL: fresh data and the status hash on the promoted master."""
    from tests.harness import Supervisor, sim_config
    from tests.reliability.util import fresh, now_ms, status

    cluster = SentinelSet().start()
    keys = ["bybit_spot:BTCUSDT", "bybit_spot:ETHUSDT"]
    sv = Supervisor(sim_config(cluster.url, sim.port, overrides={"bybit_spot": {"symbols": ["BTCUSDT", "ETHUSDT"]}}),
                    cluster.url)
    try:
        sv.start()
        sv.ctl("start", "bybit_spot")
        master = cluster.master.client()
        wait_for(lambda: fresh(master, keys, 0) and status(master, "bybit_spot").get("state") == "subscribed", 20)
        old = cluster.master_addr()
        t0, killed_at = time.monotonic(), now_ms()
        cluster.master.kill()
        wait_for(lambda: cluster.master_addr() != old, 30, 0.05)
        t_switch = time.monotonic() - t0
        promoted = cluster.replica.client()
        wait_for(lambda: fresh(promoted, keys, killed_at), 30, 0.02)
        t_back = time.monotonic() - t0
        st = wait_for(lambda: (s := status(promoted, "bybit_spot")) and int(s.get("redis_errors", 0)) >= 1 and s, 10)
        assert st["state"] == "subscribed"
        assert all(promoted.hget(k, "stale") is None for k in keys)
        figures.record("16 sentinel failover", "real feed: sentinels' failover", t_switch)
        figures.record("16 sentinel failover", "real feed: kill -9 -> fresh data on the promoted master", t_back)
        assert t_back <= t_switch + 2.0, f"fresh data {t_back:.2f} s after the kill; failover took {t_switch:.2f} s"
    finally:
        sv.stop()
        cluster.cleanup()
