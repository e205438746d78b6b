"""Fault 10: graceful stop. `supervisorctl stop <feed>` of every configured feed, while data flows.

Each must exit within 2 s (measured from launching supervisorctl until the
process is gone, supervisorctl's own start-up included), exit 0, flush its
pending writes (the final status hash says pending_writes=0) and leave
state=stopped.
"""

from __future__ import annotations

import threading
import time

import yaml

from tests.harness import ROOT, wait_for
from tests.reliability.util import alive, status

STOP_BUDGET_S = 2.0
FAST = {
    "bybit_options": {"discovery_interval": 5, "selection": {"underlyings": ["BTC"], "expiries": 1, "strike_range_pct": 5}},
    "delta_options": {"discovery_interval": 5, "selection": {"underlyings": ["BTC"], "expiries": 1, "strike_range_pct": 3}},
    "delta_spot": {"discovery_interval": 5},
    "delta_futures_ltp": {"discovery_interval": 5},
}


def configured_feeds() -> dict[str, str]:
    """feed -> redis prefix, for every service in the repository's exchanges.yaml."""
    data = yaml.safe_load((ROOT / "exchanges.yaml").read_text())
    return {sid: svc["redis_prefix"] for ex in data["exchanges"].values() for sid, svc in ex["services"].items()}


def test_supervisorctl_stop_of_every_feed_is_prompt_and_flushes(redis_server, sim, make_supervisor, figures):
    feeds = configured_feeds()
    assert len(feeds) >= 7
    sv = make_supervisor(overrides=FAST)
    r = redis_server.client()
    rpc = sv.rpc().supervisor
    for feed in feeds:  # all at once: `supervisorctl start` would wait out startsecs for each feed in turn
        rpc.startProcess(feed, False)
    for feed in feeds:
        wait_for(lambda f=feed: sv.info(f)["statename"] == "RUNNING", 20)
    for feed, prefix in feeds.items():
        wait_for(lambda p=prefix: r.scard(f"ltp:symbols:{p}") > 0, 25)
        wait_for(lambda f=feed: status(r, f).get("state") == "subscribed", 10)

    took = {}
    for feed, prefix in feeds.items():
        pid = sv.info(feed)["pid"]
        out: list[str] = []
        t0 = time.monotonic()
        ctl = threading.Thread(target=lambda f=feed, out=out: out.append(sv.ctl("stop", f)))
        ctl.start()
        wait_for(lambda pid=pid: not alive(pid), 5, interval=0.005)
        took[feed] = time.monotonic() - t0
        ctl.join(10)
        assert "stopped" in out[0], out
        info = sv.info(feed)
        assert info["statename"] == "STOPPED" and info["exitstatus"] == 0, info
        st = status(r, feed)
        assert st["state"] == "stopped" and st["pending_writes"] == "0", (feed, st)
        assert r.ttl(f"service:status:{feed}") > 3600  # a clean stop stays visible
        assert r.scard(f"ltp:symbols:{prefix}") > 0
        assert "stopped after" in sv.log(feed)
    slow = {f: t for f, t in took.items() if t >= STOP_BUDGET_S}
    assert not slow, f"feeds slower than {STOP_BUDGET_S}s to stop: {slow}"
    figures.record("10 graceful stop", f"supervisorctl stop -> exited, max of {len(took)} feeds", max(took.values()))
    figures.record("10 graceful stop", "per feed", ", ".join(f"{f} {t:.2f}" for f, t in took.items()), "s")
