"""The sink's write path on one Redis and on a 3-master Redis Cluster, in alternating rounds of one run.

    python -m bench.cluster_writes [--keys 1000] [--batches 200] [--rounds 3]

A real RedisSink (publish on, as the feeds run) stages every key once per batch and flushes, on this
thread, as a feed's socket thread does after each read; then waits for every reply. Reported per
target: the sink thread's CPU per key write (time.thread_time: staging, packing, routing, sending,
reading replies) and wall-clock key writes/s until the last reply. The cluster's three masters and
the single server run on the same machine as the writer, so the cluster's wall figure shows the
routing cost, not the capacity of three machines. Ratios are cluster / single, same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tests.harness import RedisClusterSet, RedisServer
from workers.runtime.model import Update
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats


def one_round(url: str, keys: list[str], batches: int, prefix: str) -> tuple[float, float]:
    """(CPU µs per key write on the writing thread, key writes/s wall) for `batches` x len(keys) writes."""
    sink = RedisSink(url, prefix, FeedStats(prefix, keys))
    now = int(time.time() * 1000)
    sink.stage([Update(k, {"ltp": "0"}, now) for k in keys], now)  # connect and index outside the measurement
    sink.flush()
    sink._settle()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for b in range(1, batches + 1):
        now = int(time.time() * 1000)
        sink.stage([Update(k, {"ltp": str(b), "best_bid": str(b - 1)}, now) for k in keys], now)
        sink.flush()
    sink._settle()  # every reply read: the writes are done
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    if sink.stats.redis_errors:
        raise RuntimeError(f"{url}: {sink.stats.redis_errors} Redis errors")
    sink.close()
    n = batches * len(keys)
    return cpu / n * 1e6, n / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    keys = [f"S{i:05d}" for i in range(args.keys)]
    single = RedisServer().start()
    cluster = RedisClusterSet(masters=3).start()
    results: dict[str, list[tuple[float, float]]] = {"single": [], "cluster": []}
    try:
        for r in range(args.rounds):
            for name, url in (("single", single.url), ("cluster", cluster.url)):
                results[name].append(one_round(url, keys, args.batches, f"bw{r}{name[0]}"))
        last = str(args.batches)
        rc = cluster.cluster()
        assert all(rc.hget(f"bw0c:{k}", "ltp") == last for k in keys[:50]), "cluster: a key lacks the last write"
        spread = [n.client().dbsize() for n in cluster.nodes]
    finally:
        cluster.cleanup()
        single.cleanup()
    print(f"{args.keys} keys x {args.batches} batches, {args.rounds} alternating rounds; keys per master: {spread}")
    print("| target | CPU µs per key write (rounds) | key writes/s (rounds) |")
    print("| --- | --- | --- |")
    for name, rows in results.items():
        cpu = ", ".join(f"{c:.1f}" for c, _ in rows)
        rate = ", ".join(f"{w:,.0f}" for _, w in rows)
        print(f"| {name} | {cpu} | {rate} |")
    ratios_cpu = [c / s for (c, _), (s, _) in zip(results["cluster"], results["single"], strict=True)]
    ratios_rate = [c / s for (_, c), (_, s) in zip(results["cluster"], results["single"], strict=True)]
    print(f"cluster / single, same round: CPU per key {min(ratios_cpu):.2f}-{max(ratios_cpu):.2f} "
          f"(median {statistics.median(ratios_cpu):.2f}); writes/s {min(ratios_rate):.2f}-{max(ratios_rate):.2f}")


if __name__ == "__main__":
    main()
