"""Fault 5: Redis killed for 10 s and restarted on the same port.

The feeds keep running (same pids), hold one pending entry per key, and the
latest state of every symbol is back within 2 s of Redis answering again.
The restarted Redis is empty (no persistence), the harshest case: the symbol
index and the status hash have to come back too. Feed RSS is sampled
throughout the outage. The sink's own restart handling is unit-tested in
tests/unit/test_sink.py; this is the whole system.
"""

from __future__ import annotations

import time

import pytest

from tests.harness import wait_for
from tests.reliability.util import fresh, now_ms, rss_kb, status, time_until

OUTAGE_S = 10.0
RSS_GROWTH_LIMIT_KB = 16 * 1024
FEEDS = {  # feed -> (prefix, symbols)
    "bybit_spot": ("bybit_spot", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT"]),
    "bybit_futures_orderbook": ("bybit_futures", ["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
    "delta_futures_ltp": ("delta_futures", ["BTCUSD", "ETHUSD", "SOLUSD", "XRPUSD"]),
}


def _keys(prefix: str, symbols: list[str]) -> list[str]:
    return [f"{prefix}:{s}" for s in symbols]


@pytest.mark.timing
def test_redis_outage_feeds_survive_and_every_symbol_is_back_within_2s(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={
        "bybit_futures_orderbook": {"symbols": FEEDS["bybit_futures_orderbook"][1]},
        "delta_futures_ltp": {"discovery_interval": 30},
    })
    r = redis_server.client()
    for feed in FEEDS:
        sv.ctl("start", feed)
    for prefix, symbols in FEEDS.values():
        wait_for(lambda p=prefix, s=symbols: fresh(r, _keys(p, s), 0), 20)
    pids = {feed: sv.info(feed)["pid"] for feed in FEEDS}
    time.sleep(1.0)
    rss_before = {feed: rss_kb(pid) for feed, pid in pids.items()}

    redis_server.stop()
    t_down = time.monotonic()
    rss_peak = dict(rss_before)
    while time.monotonic() - t_down < OUTAGE_S:
        for feed, pid in pids.items():
            rss_peak[feed] = max(rss_peak[feed], rss_kb(pid))
        time.sleep(0.25)
    for feed, pid in pids.items():
        assert sv.info(feed)["pid"] == pid and sv.info(feed)["statename"] == "RUNNING", f"{feed} died during the outage"

    back_at = now_ms()
    redis_server.start()  # returns once it answers PING
    t_back = time.monotonic()
    r = redis_server.client()
    every_key = [k for prefix, symbols in FEEDS.values() for k in _keys(prefix, symbols)]
    recovered = time_until(lambda: fresh(r, every_key, back_at), 2.0, since=t_back)
    indexed = time_until(lambda: all(r.scard(f"ltp:symbols:{p}") == len(s) for p, s in FEEDS.values()), 2.0, since=t_back)
    statused = time_until(lambda: all(status(r, f).get("pid") == str(pids[f]) for f in FEEDS), 2.0, since=t_back)
    for key in every_key:
        row = r.hgetall(key)
        assert float(row["ltp"]) > 0 and row["timestamp"] and int(row["recv_ts"]) >= back_at, (key, row)
    # Fields a stream sends only in its snapshot (Bybit linear: original_symbol, index_price, funding_rate)
    # are back too: the sink rewrites every key's full last state after an outage.
    missing = sorted({f for p, syms in FEEDS.values() for k in _keys(p, syms) for f in ("original_symbol", "index_price",
                      "funding_rate") if p == "bybit_futures" and f not in r.hgetall(k)})
    figures.record("5 Redis outage (bybit_futures_orderbook)", "snapshot-only fields missing after an empty restart",
                   ", ".join(missing) or "none", "")
    assert not missing, missing

    for feed in FEEDS:
        assert int(status(r, feed)["redis_errors"]) >= 1
        growth = rss_peak[feed] - rss_before[feed]
        assert growth < RSS_GROWTH_LIMIT_KB, f"{feed}: RSS grew {growth} kB during a {OUTAGE_S:g} s outage"
        figures.record(f"5 Redis outage ({feed})", f"RSS before / peak during {OUTAGE_S:g} s outage",
                       f"{rss_before[feed] // 1024} / {rss_peak[feed] // 1024}", "MiB")
    figures.record("5 Redis outage", f"Redis back -> all {len(every_key)} symbols of 3 feeds fresh", recovered)
    figures.record("5 Redis outage", "Redis back -> symbol indexes complete", indexed)
    figures.record("5 Redis outage", "Redis back -> status hashes back", statused)
