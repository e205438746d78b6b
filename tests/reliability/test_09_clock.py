"""Fault 9: exchange clocks in the past and in the future.

`timestamp` must never go backwards for a key (a clock jumping back leaves it
where it was while ltp keeps updating), and an exchange clock more than 5 s
ahead is replaced by the receive time. Watched continuously on a Bybit and a
Delta feed. The sink's clock rules are unit-tested in tests/unit/test_sink.py.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from tests.harness import wait_for
from tests.reliability.util import Watcher, fresh, status

KEYS = {"bybit_spot": "bybit_spot:BTCUSDT", "delta_futures_ltp": "delta_futures:BTCUSD"}


def _ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_timestamp_never_goes_backwards_and_far_future_is_clamped(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT"]},
                                    "delta_futures_ltp": {"symbols": ["BTCUSD"], "discovery_interval": 30}})
    r = redis_server.client()
    for feed in KEYS:
        sv.ctl("start", feed)
    wait_for(lambda: fresh(r, KEYS.values(), 0), 20)
    last: dict[str, int] = {}
    ahead: dict[str, int] = {}  # largest timestamp - recv_ts seen per key

    def never_backwards() -> None:
        for key in KEYS.values():
            ts_s, recv = r.hmget(key, "timestamp", "recv_ts")
            ts = _ms(ts_s)
            assert ts >= last.get(key, 0), f"{key}: timestamp went back {last.get(key)} -> {ts}"
            last[key] = ts
            ahead[key] = max(ahead.get(key, -10**9), ts - int(recv))

    def set_skew(ms: int) -> None:
        for ex in ("bybit", "delta"):
            sim.exchanges[ex].faults.future_ts_ms = ms

    phases = {}
    with Watcher(never_backwards, interval=0.01) as watch:
        set_skew(-60_000)  # a minute in the past: timestamp holds, ltp moves
        ltp_before = {k: r.hget(k, "ltp") for k in KEYS.values()}
        time.sleep(1.5)
        assert all(r.hget(k, "ltp") != v for k, v in ltp_before.items()), "ltp stopped updating"
        set_skew(86_400_000)  # a day ahead: clamped to the receive time
        time.sleep(0.2)
        ahead.clear()
        time.sleep(1.3)
        phases["day ahead"] = dict(ahead)
        set_skew(3_000)  # 3 s ahead is within tolerance: kept as sent
        time.sleep(0.2)
        ahead.clear()
        time.sleep(1.3)
        phases["3 s ahead"] = dict(ahead)
        set_skew(0)
        t0 = time.monotonic()
        # Back to a true clock: timestamp is held at the last (3 s ahead) value until real time passes it.
        wait_for(lambda: all(_ms(r.hget(k, "timestamp")) <= int(r.hget(k, "recv_ts")) for k in KEYS.values()), 6)
        caught_up = time.monotonic() - t0
    watch.assert_clean()
    for key in KEYS.values():
        assert phases["day ahead"][key] <= 0, f"{key}: a day-ahead clock was not clamped ({phases['day ahead'][key]} ms)"
        assert 2_000 <= phases["3 s ahead"][key] <= 3_100, phases["3 s ahead"]
    for feed in KEYS:
        assert json.loads(status(r, feed)["errors_by_kind"]).get("clock_skew", 0) >= 1
    figures.record("9 clock", "backwards timestamps seen", f"0 of {watch.samples} reads x 2 keys", "")
    figures.record("9 clock", "day-ahead clock: max timestamp - recv_ts", max(phases["day ahead"].values()), "ms")
    figures.record("9 clock", "3 s-ahead clock, then true: timestamp <= recv_ts again after", caught_up)
