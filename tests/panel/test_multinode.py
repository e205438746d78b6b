"""One panel, two supervisord nodes: node `a` over its unix socket, node `b` over http://127.0.0.1:<port> with a
username and password (its [inet_http_server]). Real supervisord, real Redis, real feeds on the simulator.

Node a runs bybit_spot and has delta_spot; node b runs hyperliquid_spot and has delta_futures_ltp and a
non-feed program `helper`; both define delta_options (a sleeper, for the conflict check). Each test leaves
the programs as it found them; the one that crashes node b (kill -9 of supervisord and its programs) has
a cluster of its own.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient

from controlpanel import PanelSettings, create_app
from tests.harness import ROOT, RedisServer, free_port, sim_config, stop_programs, wait_for
from tests.sim import Simulator
from workers.runtime.config import Config, load_config
from workers.runtime.supervisor_rpc import supervisor_proxy

pytestmark = pytest.mark.e2e

PASSWORD = "node-b-s3cret"
SLEEPER = f'{sys.executable} -c "import time; time.sleep(1e6)"'
NODE_TIMEOUT_S = 1.0


class Node:
    """A private supervisord with only the programs given: {name: (command, autostart)}."""

    def __init__(self, programs: dict[str, tuple[str, bool]], env: dict[str, str], inet_port: int | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ltp-node-"))
        (self.dir / "var").mkdir()
        self.inet_port = inet_port
        env_line = ",".join(f'{k}="{v}"' for k, v in {**env, "LTP_VAR": str(self.dir / "var")}.items())
        conf = [
            f"[unix_http_server]\nfile={self.dir}/supervisor.sock\nchmod=0700\n",
            f"[supervisord]\nlogfile={self.dir}/supervisord.log\npidfile={self.dir}/supervisord.pid\n"
            f"childlogdir={self.dir}\nnodaemon=true\ndirectory={ROOT}\nenvironment={env_line}\n",
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        ]
        if inet_port:  # bound to loopback: supervisord's inet server is plain HTTP with basic auth
            conf.append(f"[inet_http_server]\nport=127.0.0.1:{inet_port}\nusername=ltp\npassword={PASSWORD}\n")
        for name, (command, autostart) in programs.items():
            conf.append(f"[program:{name}]\ncommand={command}\nautostart={str(autostart).lower()}\nautorestart=true\n"
                        f"startsecs=1\nstopwaitsecs=3\nstdout_logfile={self.dir}/{name}.log\nredirect_stderr=true\n")
        self.conf = self.dir / "supervisord.conf"
        self.conf.write_text("\n".join(conf))
        self.proc: subprocess.Popen | None = None

    @property
    def unix_url(self) -> str:
        return f"unix://{self.dir}/supervisor.sock"

    def rpc(self) -> xmlrpc.client.ServerProxy:
        """The test's own way in (the unix socket, supervisor's transport): independent of the panel's."""
        return supervisor_proxy(self.unix_url)

    def state(self, name: str) -> str:
        return self.rpc().supervisor.getProcessInfo(name)["statename"]

    def start(self) -> Node:
        self.proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        wait_for(lambda: self.rpc().supervisor.getState()["statename"] == "RUNNING", 20)
        return self

    def crash(self) -> None:
        """The host dies: kill -9 of supervisord and of every program at once, none says a word (a feed that
        got its SIGTERM from the parent's death would write a clean `stopped` status first)."""
        pids = [p["pid"] for p in self.rpc().supervisor.getAllProcessInfo() if p["pid"]]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                stop_programs(self.rpc())
                self.rpc().supervisor.shutdown()
                self.proc.wait(20)
            except (OSError, xmlrpc.client.Error, subprocess.TimeoutExpired):
                self.proc.kill()


@dataclass
class Cluster:
    redis: RedisServer
    a: Node
    b: Node
    config: Config
    nodes_file: Path
    client: FlaskClient


def _feed(sid: str) -> str:
    return f"{sys.executable} -m workers {sid}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    yield from _cluster(tmp_path_factory.mktemp("multinode"))


@pytest.fixture
def own_cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A cluster for a test that crashes a node: the module's stays whole, whatever order the tests run in."""
    yield from _cluster(tmp_path_factory.mktemp("multinode-crash"))


def _cluster(tmp: Path) -> Iterator[Cluster]:
    redis_server = RedisServer().start()
    sim = Simulator(rate_hz=20.0).start()
    config_path = tmp / "exchanges.yaml"
    config_path.write_text(yaml.safe_dump(sim_config(redis_server.url, sim.port)))
    env = {"LTP_CONFIG": str(config_path), "REDIS_URL": redis_server.url,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    a = Node({"bybit_spot": (_feed("bybit_spot"), True), "delta_spot": (_feed("delta_spot"), False),
              "delta_options": (SLEEPER, False)}, env)
    b = Node({"hyperliquid_spot": (_feed("hyperliquid_spot"), True), "delta_futures_ltp": (_feed("delta_futures_ltp"), False),
              "delta_options": (SLEEPER, False), "helper": (SLEEPER, True)}, env, inet_port=free_port())
    leftovers: list[int] = []
    previous_pw: str | None = None
    try:
        a.start()
        b.start()
        # Every test starts from a settled cluster, whatever order they run in: the autostarted programs
        # are past supervisord's startsecs (a test that reads the cluster at once would see STARTING).
        for node, program in ((a, "bybit_spot"), (b, "hyperliquid_spot"), (b, "helper")):
            wait_for(lambda n=node, p=program: n.state(p) == "RUNNING", 30)
        nodes_file = tmp / "nodes.yaml"
        nodes_file.write_text(yaml.safe_dump({"timeout": NODE_TIMEOUT_S, "nodes": [
            {"name": "a", "url": a.unix_url},
            {"name": "b", "url": f"http://127.0.0.1:{b.inet_port}", "username": "ltp", "password_env": "LTP_TEST_NODE_B_PW"},
        ]}))
        previous_pw = os.environ.get("LTP_TEST_NODE_B_PW")  # a module's cluster and a test's own may overlap
        os.environ["LTP_TEST_NODE_B_PW"] = PASSWORD
        app = create_app(load_config(config_path), settings=PanelSettings(rate_burst=1000, nodes_file=str(nodes_file)))
        yield Cluster(redis_server, a, b, load_config(config_path), nodes_file, app.test_client())
    finally:
        if previous_pw is None:
            os.environ.pop("LTP_TEST_NODE_B_PW", None)
        for node in (a, b):
            if node.proc and node.proc.poll() is None:
                leftovers += [p["pid"] for p in node.rpc().supervisor.getAllProcessInfo() if p["pid"]]
            node.stop()
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sim.stop()
        redis_server.cleanup()


def _status(c: FlaskClient) -> dict:
    resp = c.get("/api/status")
    assert resp.status_code == 200
    return resp.get_json()


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _svc(body: dict, sid: str) -> dict:
    return next(s for s in body["services"] if s["id"] == sid)


@pytest.mark.timing
def test_status_aggregates_both_nodes_with_node_tags(cluster):
    body = wait_for(lambda: (b := _status(cluster.client)) and _svc(b, "bybit_spot")["delivering"]
                    and _svc(b, "hyperliquid_spot")["delivering"] and b, 30)
    assert [(n["name"], n["ok"]) for n in body["nodes"]] == [("a", True), ("b", True)]
    assert body["nodes"][1]["url"] == f"http://127.0.0.1:{cluster.b.inet_port}"
    assert PASSWORD not in str(body)
    assert body["supervisor"] == {"ok": True, "error": "", "answered": 2, "nodes_down": []}
    spot, hl = _svc(body, "bybit_spot"), _svc(body, "hyperliquid_spot")
    assert (spot["node"], spot["process_state"]) == ("a", "RUNNING")
    assert (hl["node"], hl["process_state"]) == ("b", "RUNNING")
    assert hl["pid"] == cluster.b.rpc().supervisor.getProcessInfo("hyperliquid_spot")["pid"]
    assert (_svc(body, "delta_spot")["node"], _svc(body, "delta_spot")["process_state"]) == ("a", "STOPPED")
    assert (_svc(body, "delta_futures_ltp")["node"], _svc(body, "delta_futures_ltp")["process_state"]) == ("b", "STOPPED")
    assert _svc(body, "delta_options")["nodes_defining"] == ["a", "b"] and _svc(body, "delta_options")["node"] == "a"
    nowhere = _svc(body, "coindcx_spot")
    assert nowhere["node"] is None and nowhere["process_state"] == "NO_PROGRAM"
    helper = next(p for p in body["programs"] if p["name"] == "helper")
    assert (helper["state"], helper["node"]) == ("RUNNING", "b")
    timings = sorted(_timed(lambda: _status(cluster.client)) for _ in range(20))
    print(f"\n/api/status, two nodes up: median {timings[10] * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms")
    assert timings[10] < 0.2, timings
    health = cluster.client.get("/api/health").get_json()
    assert health["nodes"] == {"a": {"ok": True, "error": ""}, "b": {"ok": True, "error": ""}}
    assert not any("node" in r for r in health["reasons"]), health["reasons"]


def test_start_and_stop_go_to_the_node_that_has_the_program(cluster):
    c = cluster.client
    for sid, node, other in (("delta_spot", cluster.a, cluster.b), ("delta_futures_ltp", cluster.b, cluster.a)):
        resp = c.post(f"/api/service/{sid}/start")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["node"] == ("a" if node is cluster.a else "b")
        try:
            assert node.state(sid) == "RUNNING"
            with pytest.raises(xmlrpc.client.Fault):  # the other node has no such program
                other.state(sid)
            again = c.post(f"/api/service/{sid}/start")
            assert again.status_code == 409 and again.get_json()["message"].endswith(f"(node {resp.get_json()['node']})")
            assert _svc(_status(c), sid)["process_state"] == "RUNNING"
        finally:
            assert c.post(f"/api/service/{sid}/stop").status_code == 200
        assert node.state(sid) == "STOPPED"
    # The log comes from the owner too.
    lines = c.get("/api/service/hyperliquid_spot/log?lines=20").get_json()["lines"]
    assert lines and any("hyperliquid_spot" in line for line in lines)
    missing = c.post("/api/service/coindcx_spot/start")
    assert missing.status_code == 404 and "nodes: a, b" in missing.get_json()["message"]


def test_a_program_active_on_both_nodes_is_a_conflict(cluster):
    a, b = cluster.a.rpc().supervisor, cluster.b.rpc().supervisor
    a.startProcess("delta_options", True)
    b.startProcess("delta_options", True)
    try:
        s = _svc(_status(cluster.client), "delta_options")
        assert s["node"] == "a" and s["pid"] == a.getProcessInfo("delta_options")["pid"]  # first in the nodes file
        conflict = next(p for p in s["problems"] if p["kind"] == "node_conflict")
        assert "runs on 2 nodes (a, b)" in conflict["message"] and "controlled: a" in conflict["message"]
    finally:
        a.stopProcess("delta_options", True)
        b.stopProcess("delta_options", True)
    # Stopped on a, running on b: b owns it now (it is active there), no conflict.
    b.startProcess("delta_options", True)
    try:
        s = _svc(_status(cluster.client), "delta_options")
        assert s["node"] == "b" and not any(p["kind"] == "node_conflict" for p in s["problems"])
    finally:
        b.stopProcess("delta_options", True)


def test_a_silent_node_costs_its_timeout_only(cluster, tmp_path):
    """A node that accepts TCP and never answers (a hung supervisord, a half-dead host): /api/status waits
    its timeout, in parallel, not forever, and the other nodes are still shown."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts: connect works, no answer ever comes
    try:
        nodes = yaml.safe_load(cluster.nodes_file.read_text())
        nodes["nodes"].append({"name": "c", "url": f"http://127.0.0.1:{silent.getsockname()[1]}"})
        path = tmp_path / "nodes.yaml"
        path.write_text(yaml.safe_dump(nodes))
        os.environ["LTP_TEST_NODE_B_PW"] = PASSWORD
        c = create_app(cluster.config, settings=PanelSettings(nodes_file=str(path))).test_client()
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            body = _status(c)
            timings.append(time.perf_counter() - t0)
        print(f"\n/api/status with a silent node (timeout {NODE_TIMEOUT_S:g} s): "
              + ", ".join(f"{t * 1000:.0f} ms" for t in timings))
        assert max(timings) < NODE_TIMEOUT_S + 1.0, timings
        assert [(n["name"], n["ok"]) for n in body["nodes"]] == [("a", True), ("b", True), ("c", False)]
        assert "no answer within 1 s" in body["nodes"][2]["error"]
        assert _svc(body, "bybit_spot")["process_state"] == "RUNNING" and _svc(body, "bybit_spot")["node"] == "a"
        assert body["supervisor"]["nodes_down"] == ["c"]
    finally:
        silent.close()


def test_wrong_password_is_a_down_node_with_the_http_status(cluster, tmp_path):
    nodes = yaml.safe_load(cluster.nodes_file.read_text())
    nodes["nodes"][1]["password_env"] = "LTP_TEST_WRONG_PW"
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(nodes))
    os.environ["LTP_TEST_WRONG_PW"] = "wrong"
    try:
        body = _status(create_app(cluster.config, settings=PanelSettings(nodes_file=str(path))).test_client())
    finally:
        os.environ.pop("LTP_TEST_WRONG_PW")
    assert body["nodes"][1]["ok"] is False and "HTTP 401" in body["nodes"][1]["error"]


def test_https_node_behind_a_tls_reverse_proxy(cluster, tmp_path, tls_certs):
    """The recommended way to reach a remote node's inet_http_server: a TLS reverse proxy. With the proxy's
    CA in `ca_file` the node answers through it; with another CA it is a down node naming the certificate."""
    from tests.harness import TlsCerts, TlsTerminator

    proxy = TlsTerminator(cluster.b.inet_port, tls_certs.server_context())
    other = TlsCerts(tmp_path / "other", name="another CA")
    os.environ["LTP_TEST_NODE_B_PW"] = PASSWORD
    try:
        for ca, ok in ((tls_certs.ca_cert, True), (other.ca_cert, False)):
            nodes = yaml.safe_load(cluster.nodes_file.read_text())
            nodes["nodes"][1].update({"url": f"https://127.0.0.1:{proxy.port}", "ca_file": str(ca)})
            path = tmp_path / "nodes.yaml"
            path.write_text(yaml.safe_dump(nodes))
            body = _status(create_app(cluster.config, settings=PanelSettings(nodes_file=str(path))).test_client())
            b = body["nodes"][1]
            assert (b["name"], b["ok"]) == ("b", ok), b
            if ok:
                assert _svc(body, "hyperliquid_spot")["node"] == "b"
                assert _svc(body, "hyperliquid_spot")["process_state"] == "RUNNING"
            else:
                assert "certificate" in b["error"].lower(), b["error"]
    finally:
        proxy.close()
        other.cleanup()


def _has_dead_mark(r, prefix: str) -> bool:
    return any((r.hget(f"{prefix}:{m}", "stale") or "").startswith("not_running")
               for m in r.smembers(f"ltp:symbols:{prefix}"))


def test_killing_one_node_leaves_the_other_working_and_health_degraded(own_cluster, browser, shots):
    cluster = own_cluster
    c, r = cluster.client, cluster.redis.client()
    wait_for(lambda: _svc(_status(c), "hyperliquid_spot")["delivering"], 30)
    assert r.scard("ltp:symbols:hyperliquid_spot") > 0
    cluster.b.crash()
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        body = _status(c)
        timings.append(time.perf_counter() - t0)
    print(f"\n/api/status with node b killed (timeout {NODE_TIMEOUT_S:g} s): " + ", ".join(f"{t * 1000:.0f} ms" for t in timings))
    assert max(timings) < NODE_TIMEOUT_S, timings
    assert [(n["name"], n["ok"]) for n in body["nodes"]] == [("a", True), ("b", False)]
    assert body["supervisor"]["ok"] is False and body["supervisor"]["answered"] == 1
    hl = _svc(body, "hyperliquid_spot")
    assert hl["node"] == "b" and hl["process_state"] == "UNKNOWN" and hl["badge"] != "running"
    down = next(p for p in hl["problems"] if p["kind"] == "node_down")
    assert down["message"].startswith(f"its supervisord node b (http://127.0.0.1:{cluster.b.inet_port}) is down: ")
    assert _svc(body, "delta_futures_ltp")["process_state"] == "UNKNOWN"  # on b as last seen, not "no program"
    assert _svc(body, "coindcx_spot")["process_state"] == "NO_PROGRAM"  # b answered before without it
    helper = next(p for p in body["programs"] if p["name"] == "helper")
    assert helper["state"] == "UNKNOWN" and helper["node"] == "b" and "node b is down" in helper["description"]
    spot = _svc(body, "bybit_spot")
    assert spot["node"] == "a" and spot["process_state"] == "RUNNING" and not spot["problems"]
    # Node a is still controlled; node b's programs say where they are and why nothing can be done.
    stop = c.post("/api/service/delta_futures_ltp/stop")
    assert stop.status_code == 503 and "on node b" in stop.get_json()["message"] and "which is down" in stop.get_json()["message"]
    assert c.post("/api/service/delta_spot/start").status_code == 200
    assert c.post("/api/service/delta_spot/stop").status_code == 200

    health = c.get("/api/health")
    assert health.status_code == 503
    h = health.get_json()
    assert h["status"] == "degraded", h["reasons"]
    assert any(x.startswith("supervisord node b (http://127.0.0.1:") and "unreachable" in x for x in h["reasons"]), h["reasons"]
    assert h["nodes"]["b"]["ok"] is False and h["feeds"]["bybit_spot"]["status"] == "ok"
    scrape = c.get("/metrics").get_data(as_text=True)
    assert 'ltp_supervisor_node_up{node="a"} 1.0' in scrape and 'ltp_supervisor_node_up{node="b"} 0.0' in scrape
    assert "ltp_supervisor_up 0.0" in scrape
    _dashboard_shows_the_down_node(c.application, browser, shots, cluster.b.inet_port)

    # The dead feed's status hash expires (TTL 10 s): still its keys are not marked `not_running`, since the
    # node that ran it never said it stopped.
    wait_for(lambda: not r.exists("service:status:hyperliquid_spot"), 20, 0.5)
    for _ in range(3):
        _status(c)
    assert not _has_dead_mark(r, "hyperliquid_spot")
    # The contrast: a panel that knows only node a takes hyperliquid_spot for a program nobody has, and marks.
    only_a = cluster.nodes_file.parent / "only-a.yaml"
    only_a.write_text(yaml.safe_dump({"nodes": [{"name": "a", "url": cluster.a.unix_url}]}))
    _status(create_app(cluster.config, settings=PanelSettings(nodes_file=str(only_a))).test_client())
    assert _has_dead_mark(r, "hyperliquid_spot")


def _dashboard_shows_the_down_node(app, browser, shots, b_port: int) -> None:
    """What the operator sees in headless Chromium: a node tag per feed, node b's in red with its cause,
    and a banner naming node b, while node a's feeds show as running."""
    from playwright import sync_api
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        banner = page.locator("#system")
        sync_api.expect(banner).to_contain_text(f"supervisord node b (http://127.0.0.1:{b_port}) is down")
        spot = page.locator('.svc[data-service="bybit_spot"] [data-role="node"]')
        sync_api.expect(spot).to_have_text("a")
        sync_api.expect(spot).not_to_have_class(re.compile("svc__node--down"))
        sync_api.expect(page.locator('.svc[data-service="bybit_spot"] [data-role="badge"]')).to_have_attribute("data-badge", "running")
        hl = page.locator('.svc[data-service="hyperliquid_spot"] [data-role="node"]')
        sync_api.expect(hl).to_have_text("b")
        sync_api.expect(hl).to_have_class(re.compile("svc__node--down"))
        sync_api.expect(hl).to_have_attribute("title", re.compile("^supervisord node b is down: "))
        page.screenshot(path=str(shots / "node-down.png"), full_page=True)
        assert not errors, errors
    finally:
        server.shutdown()
