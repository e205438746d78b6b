from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RedisServer, Supervisor, TlsCerts, sim_config
from tests.sim import Simulator


def pytest_collection_modifyitems(config, items):
    if shutil.which("redis-server") is None:
        raise pytest.UsageError("redis-server is not installed: run `make install` (Debian package redis-server)")


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def sim():
    simulator = Simulator(rate_hz=20.0).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def make_supervisor(redis_server, sim):
    """Start a private supervisord with a config aimed at the simulator and the private Redis."""
    started: list[Supervisor] = []

    def make(enabled: bool = False, overrides: dict | None = None, env: dict | None = None) -> Supervisor:
        sv = Supervisor(sim_config(redis_server.url, sim.port, enabled=enabled, overrides=overrides), redis_server.url, env)
        started.append(sv.start())
        return sv

    yield make
    for sv in started:
        sv.stop()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """One private CA + server/client certificates for every TLS test (simulator, raw servers, Redis over TLS)."""
    certs = TlsCerts(tmp_path_factory.mktemp("tls"))
    yield certs
    certs.cleanup()


# -- headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) and a screenshot folder ----------------

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright import sync_api

    sync_api.expect.set_options(timeout=15_000)  # a loaded 2-core box can take more than the 5 s default
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield b
        b.close()


@pytest.fixture
def shots() -> Path:
    path = Path(os.environ.get("LTP_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="ltp-shots-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {path}")
    return path
