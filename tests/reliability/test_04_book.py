"""Fault 4: an order-book sequence gap and out-of-order frames.

A gap makes the feed drop its book and re-subscribe for a fresh snapshot; an
out-of-order (stale) delta is refused. A watcher reads the hash the whole time:
Redis must never show a crossed book. Extends the e2e gap check in
tests/e2e/test_bybit_derivatives_e2e.py with out-of-order frames, continuous
crossed-book watching and the measured rebuild time.
"""

from __future__ import annotations

import json
import time

from tests.harness import wait_for
from tests.reliability.util import Watcher, inject, status, time_until

KEY = "bybit_futures:BTCUSDT"


def test_gap_rebuilds_from_snapshot_and_redis_never_shows_a_crossed_book(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_futures_orderbook": {"symbols": ["BTCUSDT"], "levels": 5}})
    r = redis_server.client()
    sv.ctl("start", "bybit_futures_orderbook")
    wait_for(lambda: int(r.hget(KEY, "update_id") or 0) > 10, 20)

    def not_crossed() -> None:
        row = r.hgetall(KEY)
        bids, asks = json.loads(row["bids"]), json.loads(row["asks"])
        assert float(row["best_bid"]) < float(row["best_ask"]), row
        if bids and asks:
            assert float(bids[0][0]) < float(asks[0][0]), (bids[0], asks[0])
            assert [float(p) for p, _ in bids] == sorted((float(p) for p, _ in bids), reverse=True)
            assert [float(p) for p, _ in asks] == sorted(float(p) for p, _ in asks)

    bysim = sim.exchanges["bybit"]
    with Watcher(not_crossed, interval=0.01) as watch:
        # Out of order: a stale delta (u=1) whose bid would cross the book if it were applied.
        u_before = int(r.hget(KEY, "update_id"))
        stale = {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": int(time.time() * 1000),
                 "data": {"s": "BTCUSDT", "b": [["999999999", "5"]], "a": [], "u": 1, "seq": 1}}
        inject(sim, "bybit", [json.dumps(stale)])
        wait_for(lambda: json.loads(status(r, "bybit_futures_orderbook")["errors_by_kind"]).get("stale_book_update"), 5)
        assert int(r.hget(KEY, "update_id")) > u_before  # the stream carried on from where it was

        # Gap: the next delta skips an update id. The simulator restarts the book at u=1 for the fresh
        # snapshot, so a write with update_id below the pre-gap id is the rebuilt book.
        u_gap = int(r.hget(KEY, "update_id"))
        t0 = time.monotonic()
        bysim.faults.gap_next = 1
        rebuilt = time_until(lambda: int(r.hget(KEY, "update_id")) < u_gap, 5, since=t0)
        u_new = int(r.hget(KEY, "update_id"))
        wait_for(lambda: int(r.hget(KEY, "update_id")) > u_new + 5, 5)  # deltas apply on the new snapshot
        time.sleep(0.5)
    watch.assert_clean()
    st = wait_for(lambda: (s := status(r, "bybit_futures_orderbook")) and "resync" in s["errors_by_kind"] and s, 3)
    assert json.loads(st["errors_by_kind"])["resync"] == 1, st["errors_by_kind"]
    assert st["reconnects"] == "0"  # a gap costs one topic's resubscription, not the connection
    figures.record("4 book gap", "gap -> book rebuilt from a fresh snapshot in Redis", rebuilt)
    figures.record("4 book gap", "crossed books seen in Redis", f"0 of {watch.samples} reads", "")
