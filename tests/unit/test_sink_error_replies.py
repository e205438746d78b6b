"""Redis error replies are failed writes: with Redis at maxmemory (noeviction) every HSET/SADD is
refused with OOM; once Redis takes writes again, every key is back whole and in the symbol index."""

from __future__ import annotations

import time

from tests.harness import wait_for
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats

SYMBOLS = [f"S{i}USDT" for i in range(20)]


def test_oom_replies_are_rewritten_when_redis_takes_writes_again(redis_server):
    r = redis_server.client()
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)  # every write refused: OOM command not allowed when used memory > 'maxmemory'
    stats = FeedStats("oom", SYMBOLS)
    sink = RedisSink(redis_server.url, "oom", stats)
    sink.start()
    try:
        now = int(time.time() * 1000)
        for i, sym in enumerate(SYMBOLS):  # first snapshot: fields sent only once
            sink.put(sym, {"ltp": f"{100 + i}", "original_symbol": sym, "funding_rate": "0.0001"}, now, now)
        wait_for(lambda: stats.errors_by_kind.get("redis_reply", 0) > 0, 5)
        assert r.dbsize() == 0
        r.config_set("maxmemory", 0)
        # no new data at all: the rewrite must come from the error replies alone
        wait_for(lambda: r.scard("ltp:symbols:oom") == len(SYMBOLS), 10)
        for i, sym in enumerate(SYMBOLS):
            h = r.hgetall(f"oom:{sym}")
            assert h.get("ltp") == f"{100 + i}" and h.get("funding_rate") == "0.0001", (sym, h)
        # one more update after recovery: a delta, merged into the full key
        later = now + 1000
        sink.put(SYMBOLS[0], {"ltp": "999"}, later, later)
        wait_for(lambda: r.hget(f"oom:{SYMBOLS[0]}", "ltp") == "999", 5)
        assert r.hget(f"oom:{SYMBOLS[0]}", "original_symbol") == SYMBOLS[0]
    finally:
        r.config_set("maxmemory", 0)
        sink.close()


def test_refusals_while_oom_do_not_rewrite_everything_on_every_write(redis_server):
    r = redis_server.client()
    r.config_set("maxmemory-policy", "noeviction")
    stats = FeedStats("oom2", SYMBOLS)
    sink = RedisSink(redis_server.url, "oom2", stats)
    sink.start()
    try:
        now = int(time.time() * 1000)
        for sym in SYMBOLS:
            sink.put(sym, {"ltp": "1"}, now, now)
        wait_for(lambda: r.scard("ltp:symbols:oom2") == len(SYMBOLS), 5)
        r.config_set("maxmemory", 1)
        before = stats.writes_total
        t0, flushes = time.monotonic(), 0
        while time.monotonic() - t0 < 2.0:  # 2 s of one key's updates, ~200 flushes
            ts = int(time.time() * 1000)
            sink.stage([(SYMBOLS[0], {"ltp": "2"}, ts)], ts)  # type: ignore[list-item]
            sink.flush()
            flushes += 1
            time.sleep(0.01)
        rewrites = (stats.writes_total - before - flushes) // (len(SYMBOLS) - 1)
        assert 1 <= rewrites <= 6, rewrites  # backoff 0.25 s doubling (~4 in 2 s), not one per flush (~150)
    finally:
        r.config_set("maxmemory", 0)
        sink.close()
