"""The Redis control path end to end: the real `controlpanel` program of a private supervisord.

Before: one non-UTF-8 value or deeply nested JSON killed the watcher thread until the panel was
restarted, and a command with a timestamp long past was carried out.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from tests.harness import wait_for

pytestmark = pytest.mark.e2e

DEEP = b"[" * 100_000 + b"]" * 100_000


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _result(r, sid: str) -> str:
    return r.hget(f"service:status:{sid}", "control_result") or ""


@pytest.fixture
def panel_ready(system):
    wait_for(lambda: system.sv.info("controlpanel")["statename"] == "RUNNING", 15)
    time.sleep(1)  # the watcher polls twice a second once the panel serves
    return system


def test_the_supervised_panel_survives_hostile_input(panel_ready):
    system = panel_ready
    """End to end: the real panel program's watcher (before: one bad value killed it until the panel restarted)."""
    r = system.redis.client()
    for value in (b"\xff\xfe", DEEP):
        r.set("service:control:delta_spot", value, ex=60)
        wait_for(lambda: not r.exists("service:control:delta_spot"), 5)
    wait_for(lambda: _result(r, "delta_spot").startswith("refused: command is "), 5)
    r.set("service:control:delta_spot", json.dumps({"action": "start", "timestamp": _iso(datetime.now(UTC))}), ex=60)
    try:
        wait_for(lambda: system.sv.info("delta_spot")["statename"] == "RUNNING", 15)
        wait_for(lambda: _result(r, "delta_spot") == "ok", 5)
    finally:
        system.sv.rpc().supervisor.stopProcess("delta_spot", True)


def test_the_supervised_panel_ignores_a_command_whose_timestamp_is_long_past(panel_ready):
    system = panel_ready
    r, rpc = system.redis.client(), system.sv.rpc().supervisor
    rpc.startProcess("delta_spot", True)
    try:
        r.set("service:control:delta_spot", json.dumps({"action": "stop", "timestamp": "2025-10-19T12:00:00Z"}), ex=60)
        wait_for(lambda: not r.exists("service:control:delta_spot"), 5)
        time.sleep(1)
        assert system.sv.info("delta_spot")["statename"] == "RUNNING"
        result = wait_for(lambda: _result(r, "delta_spot").startswith("refused") and _result(r, "delta_spot"), 5)
        assert result.startswith("refused: command timestamp 2025-10-19T12:00:00Z is ") and " days old " in result
        # A fresh one is carried out.
        r.set("service:control:delta_spot", json.dumps({"action": "stop", "timestamp": _iso(datetime.now(UTC))}), ex=60)
        wait_for(lambda: system.sv.info("delta_spot")["statename"] == "STOPPED", 15)
    finally:
        if system.sv.info("delta_spot")["statename"] == "RUNNING":
            rpc.stopProcess("delta_spot", True)
