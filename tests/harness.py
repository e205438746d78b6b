"""Real servers for tests: a private redis-server, a private supervisord, the simulator.

Nothing here touches a server the tests did not start: every port is picked
free, every socket and log lives in a temp dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import yaml

from workers.runtime.supervisor_rpc import supervisor_proxy

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; return its value or raise with what was last seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling through transient errors
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ltp-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.client().ping(), 10)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def sim_config(redis_url: str, sim_port: int, *, enabled: bool = False, overrides: dict | None = None) -> dict:
    """exchanges.yaml with every endpoint pointed at the simulator; services enabled or not."""
    data = yaml.safe_load((ROOT / "exchanges.yaml").read_text())
    data["redis"]["url"] = redis_url
    for name, ex in data["exchanges"].items():
        for key, url in ex.get("endpoints", {}).items():
            scheme, rest = url.split("://", 1)
            path = rest.split("/", 1)[1] if "/" in rest else ""
            local = "ws" if scheme.startswith("ws") else "http"
            ex["endpoints"][key] = f"{local}://127.0.0.1:{sim_port}/{name}/{path}".rstrip("/")
        for svc in ex.get("services", {}).values():
            svc["enabled"] = enabled
    for service_id, values in (overrides or {}).items():
        for ex in data["exchanges"].values():
            if service_id in ex.get("services", {}):
                ex["services"][service_id].update(values)
    return data


class Supervisor:
    """A private supervisord running the repo's supervisord.conf with temp logs and socket."""

    def __init__(self, config: dict, redis_url: str, env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ltp-sv-"))
        (self.dir / "logs").mkdir()
        (self.dir / "var").mkdir()
        self.config_path = self.dir / "exchanges.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        conf = (ROOT / "supervisord.conf").read_text()
        conf = conf.replace("%(here)s/logs", str(self.dir / "logs")).replace("%(here)s/var", str(self.dir / "var"))
        conf = conf.replace("%(here)s", str(ROOT))
        self.conf_path = self.dir / "supervisord.conf"
        self.conf_path.write_text(conf)
        self.panel_port = free_port()
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "LTP_CONFIG": str(self.config_path),
            "REDIS_URL": redis_url,
            "LTP_PANEL_PORT": str(self.panel_port),
            "LTP_VAR": str(self.dir / "var"),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def server_url(self) -> str:
        return f"unix://{self.dir / 'var' / 'supervisor.sock'}"

    def rpc(self) -> xmlrpc.client.ServerProxy:
        return supervisor_proxy(self.server_url)

    def start(self) -> Supervisor:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_path)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        )
        wait_for(lambda: self.rpc().supervisor.getState()["statename"] == "RUNNING", 15)
        return self

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf_path), *args],
            env=self.env, capture_output=True, text=True, timeout=30,
        )
        return out.stdout + out.stderr

    def info(self, name: str) -> dict:
        return self.rpc().supervisor.getProcessInfo(name)

    def log(self, name: str) -> str:
        path = self.dir / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.rpc().supervisor.shutdown()
            except (OSError, xmlrpc.client.Error):
                self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
