"""Fault 16b: a Redis Cluster master dies (kill -9); its replica takes its slots, and every key's latest
state is on the cluster within the cluster's failover time + 2 s.

Three masters with a replica each on loopback (cluster-node-timeout 1000 ms). A real RedisSink on
`redis+cluster://...` writes 200 keys continuously (stage + flush, as a socket thread does); its
writes are grouped per master. After the kill, the sends to that master fail; the sink re-reads the
slot map before each retry, and once the replica is promoted it rewrites every key's full last state
(replication is asynchronous: what the old master had not passed on comes back with that rewrite).
"""

from __future__ import annotations

import time

import pytest

from tests.harness import RedisClusterSet, wait_for
from tests.reliability.util import SinkProducer, state_back_after_failover
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats

SYMBOLS = [f"S{i:03d}" for i in range(200)]
PREFIX = "cf"


@pytest.fixture
def cluster():
    nodes = RedisClusterSet(masters=3, replicas=1).start()
    yield nodes
    nodes.cleanup()


@pytest.mark.timing
def test_master_killed_state_back_on_promoted_replica(cluster, figures):
    stats = FeedStats("cluster-failover", SYMBOLS)
    sink = RedisSink(cluster.url, PREFIX, stats)
    sink.start()
    producer = SinkProducer(sink, SYMBOLS)
    rc = cluster.cluster()
    try:
        producer.start()
        wait_for(lambda: all(rc.hget(f"{PREFIX}:{s}", "ltp") for s in SYMBOLS), 10)
        victim = cluster.node_for_key(f"{PREFIX}:S000")
        on_victim = [s for s in SYMBOLS if cluster.node_for_key(f"{PREFIX}:{s}") is victim]
        assert 0 < len(on_victim) < len(SYMBOLS)  # the keys are spread: the other masters keep taking writes
        time.sleep(0.3)
        victim.kill()
        t_kill = time.monotonic()
        at_kill = producer.seq

        def promoted() -> bool:
            try:
                return cluster.node_for_key(f"{PREFIX}:S000") is not victim
            except Exception:  # noqa: BLE001 - a node mid-failover may not answer CLUSTER SLOTS
                return False

        wait_for(promoted, 30, 0.05)
        t_switch = time.monotonic() - t_kill  # the cluster's failover time, as a client sees it
        fresh = cluster.cluster()  # a reader that learns the new slot map

        state_back_after_failover(fresh, PREFIX, SYMBOLS, at_kill, t_kill, t_switch, figures, "16 cluster failover",
                                  "cluster failover (kill -9 -> replica owns the slots)",
                                  "every key's latest state on the cluster")

        producer.stop()
        sink.close()
        last = str(producer.seq)
        wait_for(lambda: all(fresh.hget(f"{PREFIX}:{s}", "ltp") == last for s in SYMBOLS), 5)
        assert fresh.scard(f"ltp:symbols:{PREFIX}") == len(SYMBOLS)
    finally:
        producer.stop()
        sink.close()
