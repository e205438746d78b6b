"""Every feed, the panel and the trader's views on a three-master Redis Cluster, unchanged.

A real cluster on loopback (`redis-cli --cluster create`), the simulator, every feed under a private
supervisord with REDIS_URL=redis+cluster://..., and the panel on the same URL. Keys keep the names the
README documents (no hash tags), so they spread over the masters; each feed's writes go to the master
owning each key's slot, and nothing anywhere uses a multi-slot command or a script touching keys it
does not declare (the cluster would refuse either).
"""

from __future__ import annotations

import json

import pytest

from controlpanel import PanelSettings, create_app
from tests.harness import RedisClusterSet, Supervisor, sim_config, wait_for
from tests.panel.test_compare_api import COINDCX_SPOT, _ready
from workers.runtime.config import load_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster():
    nodes = RedisClusterSet(masters=3).start()
    yield nodes
    nodes.cleanup()


def test_feeds_panel_and_views_on_a_cluster(cluster, sim):
    sv = Supervisor(sim_config(cluster.url, sim.port, enabled=True, overrides={"coindcx_spot": COINDCX_SPOT}),
                    cluster.url).start()
    try:
        config = load_config(sv.config_path)
        app = create_app(config, sv.server_url, settings=PanelSettings())
        c = app.test_client()
        rc = cluster.cluster()

        # the trader's view: every spot and perpetual market of BTC, live, with the INR rate
        btc = wait_for(lambda: _ready(c), 60, 0.5)
        assert len(btc["rows"]) == 9 and btc["fx"]["available"]

        # every feed running and delivering, counted from its symbol index
        def all_live() -> dict | None:
            body = c.get("/api/status").get_json()
            services = [s for s in body["services"] if s["enabled"]]  # exchanges disabled by default (deribit) stay out
            ok = all(s["process_state"] == "RUNNING" and s["data_points"] > 0 and s["delivering"] and not s["stale"]
                     for s in services)
            return body if ok and len(services) == 11 else None

        status = wait_for(all_live, 40, 0.5)
        assert status["redis"]["ok"]
        assert c.get("/api/health").get_json()["status"] == "healthy"

        # the keys are where a reader expects them, spread over the masters
        spot = rc.hgetall("bybit_spot:BTCUSDT")
        assert float(spot["ltp"]) > 0 and spot["original_symbol"] == "BTCUSDT" and "stale" not in spot
        per_master = [n.client().dbsize() for n in cluster.nodes]
        assert all(n > 10 for n in per_master), per_master
        assert rc.hgetall("service:status:bybit_spot")["state"] == "subscribed"

        chain = c.get("/api/chain/bybit_options").get_json()
        assert chain["expiries"] and chain["rows"] and any(r["call"] and r["call"]["ltp"] for r in chain["rows"])

        # a stop marks the feed's keys (client-side marking: no cross-slot script) and a start clears them
        assert c.post("/api/service/bybit_spot/stop").status_code == 200
        symbols = sorted(rc.smembers("ltp:symbols:bybit_spot"))
        assert symbols
        wait_for(lambda: all((rc.hget(f"bybit_spot:{s}", "stale") or "").startswith("stopped ") for s in symbols), 10)
        assert c.post("/api/service/bybit_spot/start").status_code == 200
        wait_for(lambda: not any(rc.hexists(f"bybit_spot:{s}", "stale") for s in symbols), 20)
        assert "redis_reply" not in rc.hget("service:status:bybit_spot", "errors_by_kind")
        operator = rc.hgetall("service:operator:bybit_spot")  # counted by a one-key script
        assert operator["stops"] == "1" and operator["starts"] == "1" and operator["last_via"]

        # the supervised panel's control-key watcher on the cluster: GETDEL per id, pipelined per master
        wait_for(lambda: sv.info("controlpanel")["statename"] == "RUNNING", 10)
        rc.set("service:control:bybit_spot", json.dumps({"action": "stop"}), ex=60)
        wait_for(lambda: sv.info("bybit_spot")["statename"] == "STOPPED", 15)
        wait_for(lambda: rc.hget("service:status:bybit_spot", "control_result") == "ok", 5)
        assert not rc.exists("service:control:bybit_spot")
        rc.set("service:control:nosuchfeed", json.dumps({"action": "stop"}), ex=60)  # seen by the cluster-wide scan
        wait_for(lambda: "names no configured service" in sv.log("controlpanel"), 20)
    finally:
        sv.stop()
