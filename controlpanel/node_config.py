"""Which supervisord nodes the panel watches: `LTP_PANEL_NODES=/path/nodes.yaml`, validated.

    timeout: 2                      # seconds per node and call (optional)
    nodes:
      - name: local
        url: unix:///srv/ltp/var/supervisor.sock
      - name: feeds-2
        url: http://10.0.0.12:9001  # supervisord's [inet_http_server], on a private address
        username: ltp
        password_env: LTP_NODE_FEEDS_2_PASSWORD

Without the variable the panel has one node, `local`, at the supervisord URL it was given
(SUPERVISOR_SERVER_URL, else the repo's socket). Every refusal names the variable and file,
the key and what is allowed, like exchanges.yaml's errors.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

log = logging.getLogger(__name__)

ENV_VAR = "LTP_PANEL_NODES"
LOCAL = "local"
DEFAULT_TIMEOUT_S = 2.0
TIMEOUT_RANGE = (0.1, 60.0)
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NAME_ALLOWED = "1-63 characters: lowercase letters, digits, _ and -, starting with a letter or digit"
URL_ALLOWED = "unix:///absolute/path/supervisor.sock, http://host:port, https://host:port (optionally ending in /RPC2)"
TOP_KEYS = ("nodes", "timeout")
NODE_KEYS = ("name", "url", "username", "password", "password_env", "ca_file")


class NodeConfigError(ValueError):
    """A bad node configuration; the message says where, what and what is allowed."""

    def __init__(self, source: str, key: str, problem: str, allowed: str = "") -> None:
        super().__init__(source, key, problem, allowed)
        self.source, self.key, self.problem, self.allowed = source, key, problem, allowed

    def __str__(self) -> str:
        msg = f"{self.source}: {self.key}: {self.problem}" if self.key else f"{self.source}: {self.problem}"
        return f"{msg} (allowed: {self.allowed})" if self.allowed else msg


@dataclass(frozen=True)
class NodeConfig:
    name: str
    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]


@dataclass(frozen=True)
class NodesConfig:
    nodes: tuple[NodeConfig, ...] = ()
    timeout: float = DEFAULT_TIMEOUT_S
    source: str = ""     # "LTP_PANEL_NODES=/path" when read from a file; "" for the implicit local node
    error: str = ""      # set when the file is unusable: the panel serves and says so


def _check_url(source: str, key: str, url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise NodeConfigError(source, key, f"must be a URL, got {url!r}", URL_ALLOWED)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
            raise NodeConfigError(source, key, f"{url!r} is not unix:// followed by an absolute socket path", URL_ALLOWED)
        return url
    if parts.scheme not in ("http", "https"):
        raise NodeConfigError(source, key, f"scheme {parts.scheme or url!r} is not supported", URL_ALLOWED)
    if parts.username is not None or parts.password is not None:
        raise NodeConfigError(source, key, "credentials in the URL are refused (they would show in the panel and logs)",
                              "username plus password or password_env")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/", "/RPC2") or parts.query or parts.fragment:
        raise NodeConfigError(source, key, f"{url!r} needs a host and a port, and no other path than /RPC2", URL_ALLOWED)
    if parts.scheme == "http" and _public_ip(parts.hostname):
        # supervisord's inet server speaks plain HTTP with basic auth: password and control in clear text.
        raise NodeConfigError(source, key, f"plain http:// to the public address {parts.hostname} sends supervisord's "
                              "password and commands in clear text", "a private or loopback address (an SSH tunnel), "
                              "or https:// through a TLS reverse proxy")
    return url


def _public_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return False  # a host name: checked by whoever names it (warned below)


def _node(source: str, i: int, raw: Any, env: Mapping[str, str]) -> NodeConfig:
    where = f"nodes[{i}]"
    if not isinstance(raw, dict):
        raise NodeConfigError(source, where, f"must be a mapping with name and url, got {type(raw).__name__}", ", ".join(NODE_KEYS))
    for key in raw:
        if key not in NODE_KEYS:
            raise NodeConfigError(source, f"{where}.{key}", "unknown key", ", ".join(NODE_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise NodeConfigError(source, f"{where}.name", f"{name!r} is not a valid node name", NAME_ALLOWED)
    url = _check_url(source, f"{where}.url", raw.get("url")).removesuffix("/")
    text = {k: raw.get(k, "") for k in ("username", "password", "password_env", "ca_file")}
    for key, value in text.items():
        if not isinstance(value, str):
            raise NodeConfigError(source, f"{where}.{key}", f"must be text, got {type(value).__name__}")
    password = text["password"]
    if text["password"] and text["password_env"]:
        raise NodeConfigError(source, f"{where}.password_env", "give password or password_env, not both")
    if text["password_env"]:
        if text["password_env"] not in env:
            raise NodeConfigError(source, f"{where}.password_env", f"environment variable {text['password_env']} is not set")
        password = env[text["password_env"]]
    if bool(text["username"]) != bool(password):
        raise NodeConfigError(source, f"{where}.username", "username and a password go together (supervisord's "
                              "[inet_http_server] or [unix_http_server] username/password)")
    if text["ca_file"]:
        if not url.startswith("https://"):
            raise NodeConfigError(source, f"{where}.ca_file", "only for https:// URLs")
        if not Path(text["ca_file"]).is_file():
            raise NodeConfigError(source, f"{where}.ca_file", f"{text['ca_file']} is not a readable file")
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and host not in ("localhost",) and not _loopback(host):
        log.warning("%s: node %s: %s is plain HTTP off this host: keep supervisord's inet_http_server on a private "
                    "address, or reach it through an SSH tunnel or a TLS reverse proxy", source, name, url)
    return NodeConfig(name=name, url=url, username=text["username"], password=password, ca_file=text["ca_file"])


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_nodes(data: Any, source: str, env: Mapping[str, str] | None = None) -> NodesConfig:
    """Validate a parsed nodes file; raises NodeConfigError."""
    env = os.environ if env is None else env
    if not isinstance(data, dict):
        raise NodeConfigError(source, "", "must be a mapping with a `nodes` list", ", ".join(TOP_KEYS))
    for key in data:
        if key not in TOP_KEYS:
            raise NodeConfigError(source, str(key), "unknown key", ", ".join(TOP_KEYS))
    timeout = data.get("timeout", DEFAULT_TIMEOUT_S)
    lo, hi = TIMEOUT_RANGE
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not lo <= timeout <= hi:
        raise NodeConfigError(source, "timeout", f"{timeout!r} is not a number of seconds", f"{lo:g} to {hi:g}")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise NodeConfigError(source, "nodes", "must be a non-empty list of {name, url, ...}", ", ".join(NODE_KEYS))
    nodes = [_node(source, i, raw, env) for i, raw in enumerate(raw_nodes)]
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.name in seen:
            raise NodeConfigError(source, f"nodes[{i}].name", f"{node.name!r} is already the name of nodes[{seen[node.name]}]",
                                  "a name used once")
        seen[node.name] = i
    return NodesConfig(nodes=tuple(nodes), timeout=float(timeout), source=source)


def load_nodes(path: str, env: Mapping[str, str] | None = None) -> NodesConfig:
    """Read and validate the nodes file; an unusable one gives a NodesConfig with `error` (logged), never raises."""
    source = f"{ENV_VAR}={path}"
    try:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise NodeConfigError(source, "", f"cannot read the file: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise NodeConfigError(source, "", f"not valid YAML: {str(exc).splitlines()[0]}") from None
        return parse_nodes(data, source, env)
    except NodeConfigError as exc:
        log.error("%s", exc)
        return NodesConfig(source=source, error=str(exc))


def local_nodes(server_url: str, timeout: float) -> NodesConfig:
    """Today's panel: one node on the local supervisord's unix socket."""
    return NodesConfig(nodes=(NodeConfig(LOCAL, server_url),), timeout=timeout)
