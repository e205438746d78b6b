"""LTP_PANEL_NODES: every refusal names the variable and file, the key and what is allowed; the panel still serves."""

from __future__ import annotations

import pytest

from controlpanel import PanelSettings, create_app
from controlpanel.node_config import DEFAULT_TIMEOUT_S, NodeConfigError, load_nodes, parse_nodes
from tests.harness import sim_config
from workers.runtime.config import parse_config

SRC = "LTP_PANEL_NODES=/etc/ltp/nodes.yaml"


def _error(data, env=None) -> str:
    with pytest.raises(NodeConfigError) as info:
        parse_nodes(data, SRC, env or {})
    return str(info.value)


def test_a_good_file_with_unix_http_and_https_nodes(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = parse_nodes({"timeout": 1.5, "nodes": [
        {"name": "local", "url": "unix:///srv/ltp/var/supervisor.sock"},
        {"name": "feeds-2", "url": "http://10.0.0.12:9001", "username": "ltp", "password_env": "PW"},
        {"name": "feeds_3", "url": "https://sv3.internal:443/RPC2", "username": "ltp", "password": "p", "ca_file": str(ca)},
    ]}, SRC, {"PW": "from-env"})
    assert [n.name for n in cfg.nodes] == ["local", "feeds-2", "feeds_3"] and cfg.timeout == 1.5
    assert cfg.nodes[1].password == "from-env" and "from-env" not in repr(cfg.nodes[1])
    assert parse_nodes({"nodes": [{"name": "a", "url": "unix:///x.sock"}]}, SRC, {}).timeout == DEFAULT_TIMEOUT_S


@pytest.mark.parametrize(("data", "key", "needle"), [
    ({"nodes": [{"name": "Feeds 2", "url": "unix:///x.sock"}]}, "nodes[0].name", "lowercase letters"),
    ({"nodes": [{"name": "a", "url": "ftp://h:1"}]}, "nodes[0].url", "unix:///absolute/path"),
    ({"nodes": [{"name": "a", "url": "http://10.0.0.5"}]}, "nodes[0].url", "http://host:port"),
    ({"nodes": [{"name": "a", "url": "http://10.0.0.5:9001/other"}]}, "nodes[0].url", "/RPC2"),
    ({"nodes": [{"name": "a", "url": "unix://relative.sock"}]}, "nodes[0].url", "unix:///absolute/path"),
    ({"nodes": [{"name": "a", "url": "http://u:p@10.0.0.5:9001"}]}, "nodes[0].url", "password_env"),
    ({"nodes": [{"name": "a", "url": "http://8.8.8.8:9001"}]}, "nodes[0].url", "SSH tunnel"),
    ({"nodes": [{"name": "a", "url": "unix:///x.sock", "pasword": "x"}]}, "nodes[0].pasword", "password_env"),
    ({"nodes": [{"name": "a", "url": "unix:///x.sock"}, {"name": "a", "url": "unix:///y.sock"}]}, "nodes[1].name", "used once"),
    ({"nodes": [{"name": "a", "url": "http://10.0.0.5:9001", "username": "u"}]}, "nodes[0].username", "go together"),
    ({"nodes": [{"name": "a", "url": "http://10.0.0.5:9001", "username": "u", "password_env": "NOPE"}]},
     "nodes[0].password_env", "NOPE is not set"),
    ({"nodes": [{"name": "a", "url": "unix:///x.sock", "ca_file": "/x"}]}, "nodes[0].ca_file", "https://"),
    ({"nodes": []}, "nodes", "non-empty list"),
    ({"nodes": [{"name": "a", "url": "unix:///x.sock"}], "timeout": 0}, "timeout", "0.1 to 60"),
    ({"nodes": [{"name": "a", "url": "unix:///x.sock"}], "node": 1}, "node", "nodes, timeout"),
    ({"nodes": ["unix:///x.sock"]}, "nodes[0]", "name"),
])
def test_each_refusal_names_source_key_and_allowed_values(data, key, needle):
    message = _error(data)
    assert message.startswith(f"{SRC}: {key}: "), message
    assert needle in message, message


def test_unreadable_or_broken_files_give_an_error_not_an_exception(tmp_path):
    missing = load_nodes(str(tmp_path / "absent.yaml"))
    assert missing.error.startswith(f"LTP_PANEL_NODES={tmp_path / 'absent.yaml'}: cannot read the file")
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes: [\n")
    assert "not valid YAML" in load_nodes(str(broken)).error


def test_the_panel_serves_and_says_what_is_wrong_with_the_nodes_file(tmp_path):
    bad = tmp_path / "nodes.yaml"
    bad.write_text("nodes:\n  - name: b\n    url: tcp://10.0.0.5:9001\n")
    config = parse_config(sim_config("redis://127.0.0.1:9/0", 9))  # no Redis either: the panel must still answer
    c = create_app(config, settings=PanelSettings(nodes_file=str(bad))).test_client()
    status = c.get("/api/status")
    assert status.status_code == 200
    body = status.get_json()
    assert body["nodes_config"]["ok"] is False and body["supervisor"]["ok"] is False
    for text in (body["supervisor"]["error"], body["nodes_config"]["error"]):
        assert f"LTP_PANEL_NODES={bad}" in text and "nodes[0].url" in text and "http://host:port" in text
    health = c.get("/api/health")
    assert health.status_code == 503 and any("nodes[0].url" in r for r in health.get_json()["reasons"])
    act = c.post("/api/service/bybit_spot/start")
    assert act.status_code == 503 and "nodes[0].url" in act.get_json()["message"]
