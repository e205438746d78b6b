"""`make demo`: the whole system on the local simulator, every feed live, no exchange reachable."""

from __future__ import annotations

import pytest

from tests.harness import Supervisor, free_port, wait_for
from tests.sim.demo import demo_config
from workers.registry import feeds

FEEDS = feeds()

pytestmark = pytest.mark.e2e


def test_demo_runs_the_simulator_under_supervisord_and_every_feed_delivers(redis_server):
    port = free_port()
    config = demo_config(port)
    config["redis"]["url"] = redis_server.url
    sv = Supervisor(config, redis_server.url, env={"LTP_DEMO": "1", "LTP_SIM_PORT": str(port)}).start()
    try:
        r = redis_server.client()
        wait_for(lambda: sv.info("simulator")["statename"] == "RUNNING", 20)
        prefixes = {fid: svc["redis_prefix"] for ex in config["exchanges"].values() for fid, svc in ex["services"].items()}
        assert set(prefixes) == set(FEEDS)

        def silent() -> list[str]:
            return [fid for fid, prefix in prefixes.items() if not r.scard(f"ltp:symbols:{prefix}")]

        wait_for(lambda: not silent(), 60)
        for fid in FEEDS:
            assert sv.info(fid)["statename"] == "RUNNING", fid
            wait_for(lambda fid=fid: r.hget(f"service:status:{fid}", "state") == "subscribed", 5)
    finally:
        sv.stop()
