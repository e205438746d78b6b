"""10,000 configured symbols, 9,000 of them unknown to the exchange: one summary log line (count +
the first few), and a status hash whose `rejected` field stays small (first 100 + `rejected_count`)."""

from __future__ import annotations

import json
import logging

from workers.runtime.feed import FeedContext
from workers.runtime.stats import FeedStats
from workers.runtime.status import StatusReporter

LOG_FIRST_N = 20  # workers.runtime.stats.LOG_FIRST_N
REJECTED_CAP = 100  # workers.runtime.status.REJECTED_CAP


def test_unknown_symbols_are_summarised_in_the_log(caplog):
    stats = FeedStats("t", [], log=logging.getLogger("t.many"))
    wanted = [f"S{i:05d}USDT" for i in range(10_000)]
    listed = set(wanted[:1000])
    ctx = FeedContext.__new__(FeedContext)
    ctx.stats = stats
    with caplog.at_level(logging.WARNING, logger="t.many"):
        ok = ctx.accept_listed(wanted, listed, "spot symbol")
    assert len(ok) == 1000 and len(stats.rejected) == 9000
    lines = [r for r in caplog.records if r.name == "t.many"]
    assert len(lines) == 1  # was 9,000
    msg = lines[0].getMessage()
    assert "9000" in msg and "S01000USDT" in msg and f"and {9000 - LOG_FIRST_N} more" in msg
    assert len(msg) < 2000


def test_rejected_field_is_capped(redis_server):
    stats = FeedStats("t", [f"S{i:05d}USDT" for i in range(10_000)])
    for i in range(1000, 10_000):
        stats.reject(f"S{i:05d}USDT", "not a spot symbol; not subscribed")
    status = StatusReporter(redis_server.url, stats)
    snap = status.snapshot()
    rejected = json.loads(snap["rejected"])
    assert len(rejected) == REJECTED_CAP and snap["rejected_count"] == "9000"
    assert len(snap["rejected"]) < 10_000  # was ~450 KB
    stats.reject("ZZZ", "refused")
    assert status.snapshot()["rejected_count"] == "9001"
