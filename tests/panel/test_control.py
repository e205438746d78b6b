"""The Redis control path (`service:control:<id>`) against hostile values, stale commands and unknown ids.

Real Redis and real supervisord: the watcher is run in-process (with the supervised panel stopped, so
the two don't race for the keys) and, for the end-to-end check, as the real `controlpanel` program.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from controlpanel.control import MAX_COMMAND_BYTES, ControlWatcher, Refused, json_depth, parse_command
from controlpanel.deps import panel_redis
from controlpanel.supervisor_client import SupervisorClient
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC).timestamp()
DEEP = b"[" * 100_000 + b"]" * 100_000


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- parsing (pure) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"action":"stop"}',
    b'{"action":"stop","timestamp":"2026-11-29T12:00:00Z"}',
    b'{"action":"stop","timestamp":"2026-11-29T11:59:05+00:00"}',
    b'{"action":"stop","timestamp":"2026-11-29T12:00:50"}',   # no zone: UTC
    b'{"action":"stop","timestamp":1795953600}',             # epoch seconds
    b'{"action":"stop","timestamp":1795953600000}',          # epoch milliseconds
])
def test_accepted_commands(raw):
    assert parse_command(raw, NOW)[0] == "stop"


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"action":"stop","timestamp":"2025-10-19T12:00:00Z"}', "s old"),
    (b'{"action":"stop","timestamp":"2026-11-29T11:58:59Z"}', "61 s old"),
    (b'{"action":"stop","timestamp":"2026-11-29T12:01:01Z"}', "in the future"),
    (b'{"action":"stop","timestamp":"yesterday"}', "not ISO-8601"),
    (b'{"action":"stop","timestamp":true}', "timestamp must be"),
    (b'{"action":"stop","timestamp":null}', "timestamp must be"),
    (b'{"action":"stop","timestamp":1e400}', "finite"),
    (b"\xff\xfe", "not UTF-8"),
    (DEEP, "bytes"),
    (b"[" * 2000 + b"]" * 2000, "deeper"),
    (b'{"a":' * 20 + b"1" + b"}" * 20, "deeper"),
    (b'{"action":"start","pad":"' + b"x" * MAX_COMMAND_BYTES + b'"}', "bytes"),
    (b'"start"', "not a JSON object"),
    (b"{", "not a JSON object"),
    (b'{"action":"explode"}', "unknown action"),
    (b'{"action":["start"]}', "unknown action"),
])
def test_refused_commands(raw, reason):
    with pytest.raises(Refused, match=reason):
        parse_command(raw, NOW)


def test_json_depth_skips_strings():
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth('"\\"[[["') == 0


# -- the watcher against real Redis and supervisord -------------------------------------------------------

@pytest.fixture
def watcher(system):
    """An in-process watcher; the supervised panel is stopped meanwhile."""
    rpc = system.sv.rpc().supervisor
    wait_for(lambda: rpc.getProcessInfo("controlpanel")["statename"] in ("RUNNING", "STOPPED"), 10)
    if rpc.getProcessInfo("controlpanel")["statename"] == "RUNNING":
        rpc.stopProcess("controlpanel", True)
    w = ControlWatcher(system.config, panel_redis(system.redis.url, 4), SupervisorClient(system.sv.server_url))
    yield w
    w.stop()
    for sid in system.config.services:
        if rpc.getProcessInfo(sid)["statename"] == "RUNNING":
            rpc.stopProcess(sid, True)
    rpc.startProcess("controlpanel", True)


def _result(r, sid: str) -> str:
    return r.hget(f"service:status:{sid}", "control_result") or ""


def test_hostile_values_are_refused_one_by_one_and_the_rest_still_run(system, watcher):
    r = system.redis.client()
    hostile = {
        "bybit_futures_orderbook": b"\xff\xfe not utf-8",
        "bybit_options": DEEP,
        "delta_futures_ltp": b"[" * 2000 + b"]" * 2000,
        "delta_options": b'{"action":"stop","timestamp":"2025-10-19T12:00:00Z"}',
    }
    for sid, value in hostile.items():
        r.set(f"service:control:{sid}", value, ex=60)
    r.hset("service:control:bybit_spot_testnet_spot", "action", "start")  # wrong type: a hash
    r.set("service:control:bybit_spot", json.dumps({"action": "start", "timestamp": _iso(datetime.now(UTC))}), ex=60)

    done = dict(watcher.poll_once())
    assert done["bybit_spot"] == "ok" and system.sv.info("bybit_spot")["statename"] == "RUNNING"
    assert done["bybit_futures_orderbook"].startswith("refused: command is not UTF-8")
    assert done["bybit_options"] == f"refused: command is {len(DEEP)} bytes (at most {MAX_COMMAND_BYTES})"
    assert done["delta_futures_ltp"].startswith("refused: command nests JSON deeper")
    assert done["delta_options"].startswith("refused: command timestamp 2025-10-19T12:00:00Z is ")
    assert done["bybit_spot_testnet_spot"].startswith("refused: service:control:bybit_spot_testnet_spot is not a string")
    for sid in hostile:
        assert _result(r, sid) == done[sid]
        assert not r.exists(f"service:control:{sid}")
    assert not r.exists("service:control:bybit_spot_testnet_spot")
    assert r.hget("service:status:delta_options", "control_action") == "stop"
    assert watcher.poll_once() == []


def test_stale_command_is_refused_and_recorded_while_fresh_ones_run(system, watcher):
    r = system.redis.client()
    r.set("service:control:bybit_spot", '{"action":"start"}', ex=60)  # no timestamp: accepted (the TTL bounds it)
    assert watcher.poll_once() == [("bybit_spot", "ok")]
    r.set("service:control:bybit_spot", '{"action":"stop","timestamp":"2025-10-19T12:00:00Z"}', ex=60)
    [(sid, result)] = watcher.poll_once()
    assert sid == "bybit_spot" and result.startswith("refused: command timestamp 2025-10-19T12:00:00Z is ")
    assert "(commands more than 60 s old are ignored)" in result
    assert system.sv.info("bybit_spot")["statename"] == "RUNNING"
    status = r.hgetall("service:status:bybit_spot")
    assert status["control_result"] == result and status["control_action"] == "stop"
    future = _iso(datetime.now(UTC) + timedelta(minutes=5))
    r.set("service:control:bybit_spot", json.dumps({"action": "stop", "timestamp": future}), ex=60)
    assert "in the future" in watcher.poll_once()[0][1]
    r.set("service:control:bybit_spot", json.dumps({"action": "stop", "timestamp": _iso(datetime.now(UTC))}), ex=60)
    assert watcher.poll_once() == [("bybit_spot", "ok")]
    assert system.sv.info("bybit_spot")["statename"] == "STOPPED"
    # Operator actions through the control key count as such.
    op = r.hgetall("service:operator:bybit_spot")
    assert op["last_action"] == "stop" and op["last_via"] == "control key" and int(op["starts"]) >= 1


def test_unknown_ids_are_logged_once(system, watcher, caplog):
    r = system.redis.client()
    r.set("service:control:nosuch", '{"action":"start"}', ex=60)
    r.set(b"service:control:bad\xff", b"x", ex=60)
    with caplog.at_level(logging.WARNING, logger="controlpanel.control"):
        assert sorted(watcher.scan_unknown()) == ["service:control:bad\ufffd", "service:control:nosuch"]
        assert watcher.scan_unknown() == []
    assert any("'nosuch' names no configured service; ignored" in m for m in caplog.messages), caplog.messages
    r.delete("service:control:nosuch", b"service:control:bad\xff")


def test_the_watcher_thread_survives_hostile_input(system, watcher):
    r = system.redis.client()
    watcher.start()
    for value in (b"\xff", DEEP, b"[" * 900 + b"]" * 900, b"null", b'{"action": {"x": 1}}'):
        r.set("service:control:bybit_spot", value, ex=60)
        wait_for(lambda: not r.exists("service:control:bybit_spot"), 5)
    r.hset("service:control:bybit_spot", "a", "b")
    wait_for(lambda: not r.exists("service:control:bybit_spot"), 5)
    assert watcher.is_alive()
    t0 = time.monotonic()
    r.set("service:control:bybit_spot", '{"action":"start"}', ex=60)
    wait_for(lambda: system.sv.info("bybit_spot")["statename"] == "RUNNING", 15)
    wait_for(lambda: _result(r, "bybit_spot") == "ok", 5)
    print(f"valid command after 6 hostile ones carried out in {time.monotonic() - t0:.2f} s")


def _dead_marks(r, sid: str) -> list[bool]:
    return [(r.hget(f"{sid}:{m}", "stale") or "").startswith("not_running ") for m in r.smembers(f"ltp:symbols:{sid}")]


def test_the_sweep_and_api_status_mark_a_dead_feed_while_health_and_metrics_only_read(system, watcher):
    """snapshot.join only reads; the watcher's sweep (every SWEEP_S) and /api/status mark a dead feed's keys."""
    c, r, sid = system.client, system.redis.client(), "delta_spot"
    assert c.post(f"/api/service/{sid}/start").status_code == 200
    try:
        wait_for(lambda: r.scard(f"ltp:symbols:{sid}") > 0 and r.hget(f"service:status:{sid}", "messages_total") not in
                 (None, "0"), 15)
    finally:
        system.sv.rpc().supervisor.stopProcess(sid, True)
    r.delete(f"service:status:{sid}")  # its final report never arrived and the TTL ran out
    assert c.get("/api/health").status_code in (200, 503) and c.get("/metrics").status_code == 200
    assert not any(_dead_marks(r, sid))
    assert watcher.sweep() == [sid] and all(_dead_marks(r, sid))
    assert watcher.sweep() == []  # once per episode
    for m in r.smembers(f"ltp:symbols:{sid}"):
        r.hdel(f"{sid}:{m}", "stale")
    body = c.get("/api/status").get_json()  # the app's marker (its own memo) marks as it shows the feed dead
    assert next(s for s in body["services"] if s["id"] == sid)["process_state"] == "STOPPED"
    assert all(_dead_marks(r, sid)) and _dead_marks(r, sid)
