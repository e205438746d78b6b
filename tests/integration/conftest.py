"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.sim import Simulator


@pytest.fixture(scope="module")
def tls_sim(tls_certs):
    """The simulator in TLS mode, its certificate from the session's test CA (tests/conftest.py)."""
    sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    yield sim
    sim.stop()
