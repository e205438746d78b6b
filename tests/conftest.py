from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RedisServer, Supervisor, TlsCerts, sim_config
from tests.sim import Simulator

pytest_plugins = ["tests.figures"]  # the reliability suite's figures, gathered from every xdist worker


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shuffle", type=int, metavar="SEED",
                     help="shuffle the order of the test files and of the tests in each file with SEED (the same order "
                          "in every xdist worker): a test that passes only after another one fails here")


def pytest_collection_modifyitems(config, items):
    if shutil.which("redis-server") is None:
        raise pytest.UsageError("redis-server is not installed: run `make install` (Debian package redis-server)")
    seed = config.getoption("--shuffle")
    if seed is not None:  # files in a shuffled order, each file's tests shuffled (its module fixtures start once)
        rng = random.Random(seed)
        by_file: dict[str, list[pytest.Item]] = {}
        for item in items:
            by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
        files = list(by_file.values())
        rng.shuffle(files)
        for tests in files:
            rng.shuffle(tests)
        items[:] = [item for tests in files for item in tests]


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("--shuffle")
    return None if seed is None else f"test order shuffled: --shuffle {seed}"


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


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Any]:
    """One Chromium per pytest process (each xdist worker has its own), launched when a test first asks."""
    from playwright import sync_api

    sync_api.expect.set_options(timeout=15_000)  # a loaded 2-core box can take more than the 5 s default
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield b
        b.close()


@pytest.fixture
def browser(_chromium: Any) -> Iterator[Any]:
    """The session's Chromium; each `browser.new_page()` opens a fresh context (no cookies, storage or
    cache shared with another test), and every context a test opened is closed when it ends."""
    yield _chromium
    for context in list(_chromium.contexts):
        context.close()


@pytest.fixture
def shots() -> Path:
    path = Path(os.environ.get("LTP_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="ltp-shots-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {path}")
    return path
