"""A module-wide system for the panel API tests: real redis-server, simulator and supervisord.

Starting supervisord once per module (not per test) keeps the suite quick;
each test leaves the feeds stopped and starts on an empty Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from controlpanel import PanelSettings, create_app
from tests.harness import RedisServer, Supervisor, sim_config
from tests.sim import Simulator
from workers.runtime.config import Config, load_config


@dataclass
class System:
    redis: RedisServer
    sim: Simulator
    sv: Supervisor
    config: Config
    app: Flask
    client: FlaskClient


@pytest.fixture
def system(module_system: System) -> System:
    """The module's system with Redis emptied: no test sees the counters, status hashes or data that an
    earlier one left, whatever the order (each test leaves the feeds stopped)."""
    module_system.redis.client().flushdb()
    return module_system


@pytest.fixture(scope="module")
def module_system() -> Iterator[System]:
    redis_server = RedisServer().start()
    sim = Simulator(rate_hz=20.0).start()
    sv = Supervisor(sim_config(redis_server.url, sim.port), redis_server.url)
    try:
        sv.start()
        config = load_config(sv.config_path)
        # A generous rate limit: this module fires many legitimate actions from one client.
        app = create_app(config, sv.server_url, settings=PanelSettings(rate_burst=1000))
        yield System(redis_server, sim, sv, config, app, app.test_client())
    finally:
        sv.stop()
        sim.stop()
        redis_server.cleanup()
