"""Fault 4: an order book fed as Bybit's docs describe it, and frames that can't be trusted.

Bybit's `u` is an update id, not a gapless sequence: ids that jump are applied (no
resync); a frame whose id is not above the book's is stale and refused; `u` = 1 is the
service-restart snapshot (typed `delta` here) and replaces the book; a book crossed
after a delta is dropped and its topic re-subscribed, at most once per 5 s
(workers/runtime/limiter.py), the refused ones counted. Book frames carry `ts` as a
digit string throughout, as the docs' reminder shows. A watcher reads the hash the
whole time: Redis must never show a crossed book.
"""

from __future__ import annotations

import json
import time

from tests.harness import wait_for
from tests.reliability.util import Watcher, inject, status, time_until
from workers.runtime.limiter import RESYNC_INTERVAL_S

KEY = "bybit_futures:BTCUSDT"
FEED = "bybit_futures_orderbook"


def errors(r) -> dict[str, int]:
    return json.loads(status(r, FEED).get("errors_by_kind") or "{}")


def crossing(u: int) -> str:
    return json.dumps({"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": str(int(time.time() * 1000)),
                       "data": {"s": "BTCUSDT", "b": [["999999999", "5"]], "a": [], "u": u, "seq": 1}})


def test_book_follows_id_jumps_and_restarts_and_resyncs_a_crossed_book_at_most_once_per_interval(
        redis_server, sim, make_supervisor, figures):
    bysim = sim.exchanges["bybit"]
    bysim.ts_as_string = True  # every book frame's ts is a digit string
    sv = make_supervisor(overrides={FEED: {"symbols": ["BTCUSDT"], "levels": 5}})
    r = redis_server.client()
    sv.ctl("start", FEED)
    wait_for(lambda: r.hget(KEY, "update_id"), 20)
    uid = lambda: int(r.hget(KEY, "update_id"))  # noqa: E731

    def not_crossed() -> None:
        row = r.hgetall(KEY)
        bids, asks = json.loads(row["bids"]), json.loads(row["asks"])
        assert float(row["best_bid"]) < float(row["best_ask"]), row
        if bids and asks:
            assert float(bids[0][0]) < float(asks[0][0]), (bids[0], asks[0])
            assert [float(p) for p, _ in bids] == sorted((float(p) for p, _ in bids), reverse=True)
            assert [float(p) for p, _ in asks] == sorted(float(p) for p, _ in asks)

    try:
        with Watcher(not_crossed, interval=0.01) as watch:
            # Ids that jump (1..7 per delta, more on gap_next) are the normal stream: applied, no resync.
            bysim.u_max_step = 7
            bysim.faults.gap_next = 3
            u0 = uid()
            wait_for(lambda: uid() > u0 + 40, 10)
            assert "resync" not in errors(r) and "stale_book_update" not in errors(r)

            # Stale: an id not above the book's, whose bid would cross the book if it were applied.
            inject(sim, "bybit", [crossing(uid() - 1)])
            wait_for(lambda: errors(r).get("stale_book_update"), 5)
            u1 = uid()
            wait_for(lambda: uid() > u1, 5)  # the stream carried on from where it was

            # Restart: the whole book again with u = 1, typed delta; it replaces the book, no resync.
            u_before = uid()
            t0 = time.monotonic()
            bysim.book_restart_next = 1
            restarted = time_until(lambda: uid() < 1000, 5, since=t0)
            wait_for(lambda: 20 < uid() < u_before, 5)  # deltas apply on the restarted ids
            assert "resync" not in errors(r)

            # Crossed after a delta: the local book is wrong. One resubscribe at once; a second one within
            # the interval is suppressed (counted) and goes out once the interval has passed.
            # (A new subscription's snapshot carries the book's current id, 1000 past the last one sent.)
            bysim.u_max_step = 1
            u2 = uid()
            t1 = time.monotonic()
            inject(sim, "bybit", [crossing(10**15)])
            rebuilt = time_until(lambda: uid() >= u2 + 1000, 5, since=t1)  # the fresh snapshot's book, written
            u3 = uid()
            t2 = time.monotonic()
            inject(sim, "bybit", [crossing(10**15 + 1)])
            rebuilt2 = time_until(lambda: uid() >= u3 + 1000, RESYNC_INTERVAL_S + 5, since=t2)
            wait_for(lambda: errors(r).get("resync") == 2, 3)
            assert errors(r).get("resync_suppressed") == 1
            time.sleep(0.5)
        watch.assert_clean()
    finally:
        bysim.ts_as_string, bysim.u_max_step = False, 1
    st = status(r, FEED)
    assert st["reconnects"] == "0"  # a resync costs one topic's resubscription, not the connection
    second = (t2 - t1) + rebuilt2  # from the first crossed frame to the second rebuilt book
    assert second >= RESYNC_INTERVAL_S - 0.1, f"second resubscribe {second:.2f}s after the first"
    figures.record("4 book", "u = 1 restart frame -> book replaced in Redis", restarted)
    figures.record("4 book", "crossed -> resubscribed, rebuilt from a fresh snapshot in Redis", rebuilt)
    figures.record("4 book", "crossed again at once -> suppressed; rebuilt after the 5 s limit", rebuilt2)
    figures.record("4 book", "first crossed frame -> second rebuilt book", second)
    figures.record("4 book", "crossed books seen in Redis", f"0 of {watch.samples} reads", "")
