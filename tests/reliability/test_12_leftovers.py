"""Fault 12b: keys left in Redis by an earlier process.

A feed restarted with fewer symbols, or whose option chain moved (contracts expired, a narrower
selection) while it was down, must leave Redis holding exactly what it follows: the hash, the
history list and the index entry of every other symbol removed at start (fixed symbol lists) or
at the first discovery (chains), and what remains marked `restarted` until rewritten.
"""

from __future__ import annotations

import threading
import time

import yaml

from tests.harness import sim_config, wait_for
from tests.reliability.util import none_marked, status, time_until

SPOT = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
WIDE = {"discovery_interval": 30, "selection": {"underlyings": ["BTC"], "expiries": 2, "strike_range_pct": 10}}
NARROW = {"discovery_interval": 30, "selection": {"underlyings": ["BTC"], "expiries": 1, "strike_range_pct": 3}}
EXPIRED = "C-BTC-10000-010120"  # a contract that expired while the feed was down


def _reconfigure(sv, redis_server, sim, overrides: dict) -> None:
    sv.config_path.write_text(yaml.safe_dump(sim_config(redis_server.url, sim.port, overrides=overrides)))


def _start(sv, feed: str) -> float:
    """supervisorctl start in the background (it returns only after startsecs); the monotonic time it was launched."""
    t0 = time.monotonic()
    threading.Thread(target=sv.ctl, args=("start", feed), daemon=True).start()
    return t0


def test_fixed_symbol_list_restart_removes_symbols_no_longer_configured(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": SPOT}})
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: r.scard("ltp:symbols:bybit_spot") == 3 and r.llen("ltp:history:bybit_spot:SOLUSDT"), 15)
    sv.ctl("stop", "bybit_spot")
    _reconfigure(sv, redis_server, sim, {"bybit_spot": {"symbols": SPOT[:2]}})
    t0 = _start(sv, "bybit_spot")
    removed = time_until(lambda: r.scard("ltp:symbols:bybit_spot") == 2, 5, since=t0)
    assert not r.exists("bybit_spot:SOLUSDT", "ltp:history:bybit_spot:SOLUSDT")
    assert r.smembers("ltp:symbols:bybit_spot") == set(SPOT[:2])
    wait_for(lambda: none_marked(r, [f"bybit_spot:{s}" for s in SPOT[:2]]), 5)
    assert "removed 1 key(s) left in Redis that are no longer configured: SOLUSDT" in sv.log("bybit_spot")
    figures.record("12 leftovers (bybit_spot)", "restart with 3 -> 2 symbols (supervisorctl start -> the third removed)", removed)


def test_option_chain_restart_removes_what_is_no_longer_selected_or_live(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"delta_options": WIDE})
    r = redis_server.client()
    sv.ctl("start", "delta_options")
    wide = wait_for(lambda: (s := status(r, "delta_options").get("symbols")) and r.scard("ltp:symbols:delta_options")
                    == len(s.split(",")) and set(s.split(",")), 25)
    sv.ctl("stop", "delta_options")
    r.hset(f"delta_options:{EXPIRED}", mapping={"mark_price": "1", "original_symbol": EXPIRED})
    r.lpush(f"ltp:history:delta_options:{EXPIRED}", "1:1")
    r.sadd("ltp:symbols:delta_options", EXPIRED)
    _reconfigure(sv, redis_server, sim, {"delta_options": NARROW})
    t0 = _start(sv, "delta_options")
    new_pid = str(wait_for(lambda: sv.info("delta_options")["pid"], 5))

    def reconciled() -> set[str] | None:
        st = status(r, "delta_options")
        chain = set(st.get("symbols", "").split(",")) - {""}
        return chain if st.get("pid") == new_pid and chain and r.smembers("ltp:symbols:delta_options") == chain else None

    took = time_until(reconciled, 20, since=t0)
    narrow = reconciled()
    assert narrow and narrow < wide, (len(narrow or ()), len(wide))
    gone = sorted(wide - narrow) + [EXPIRED]
    assert not any(r.exists(f"delta_options:{s}", f"ltp:history:delta_options:{s}") for s in gone)
    log = sv.log("delta_options")
    assert f"instrument set: {len(narrow)} symbol(s), 0 new, {len(gone)} gone" in log, log[-2000:]
    wait_for(lambda: none_marked(r, [f"delta_options:{s}" for s in narrow]), 10)
    figures.record("12 leftovers (delta_options)",
                   f"restart, chain {len(wide)} -> {len(narrow)} + 1 expired leftover (start -> SCARD = chain)", took)
