"""The snapshot's per-feed verdicts for states the e2e tests can't reach quickly (FATAL after many retries,
supervisord unreachable), and the pure helpers behind restarts and `no_data`. No servers: plain data in, as
supervisord's getProcessInfo and the feed's status hash give it."""

from __future__ import annotations

import time

import pytest

from controlpanel.health import evaluate
from controlpanel.snapshot import _Raw, _service_entry, parse_list, stale_marker, unexpected_restarts
from workers.runtime.config import ServiceConfig

NOW = time.time()


def _svc(enabled: bool = True) -> ServiceConfig:
    return ServiceConfig(service_id="bybit_spot", exchange="bybit", enabled=enabled, redis_prefix="bybit_spot",
                         symbols=("BTCUSDT",), endpoints={"spot_ws": "ws://x"}, endpoint="spot_ws", rest_endpoint=None,
                         ping_interval=20, silence_timeout=30, stale_after=60, poll_interval=2, depth=50, levels=10,
                         book_top=True, discovery_interval=300)


def _proc(state: str, pid: int = 0, start: float = NOW - 100, **extra) -> dict:
    return {"name": "bybit_spot", "statename": state, "pid": pid, "start": start, "exitstatus": 0, "spawnerr": "", **extra}


def _snap(*entries: dict) -> dict:
    return {"services": list(entries), "redis": {"ok": True, "error": ""}, "supervisor": {"ok": True, "error": ""}}


def test_fatal_is_unhealthy_with_supervisords_reason_and_the_feeds_last_error():
    raw = _Raw(status={"pid": "41", "state": "reconnecting", "last_error": "connect_failed: refused"}, points=3)
    entry = _service_entry(_svc(), raw, _proc("FATAL", spawnerr="Exited too quickly (process log may have details)"), NOW)
    assert entry["badge"] == "failed" and entry["stale"] and not entry["delivering"] and entry["messages_per_s"] == 0.0
    [problem] = entry["problems"]
    assert problem["severity"] == "unhealthy" and problem["kind"] == "fatal"
    assert problem["message"] == ("supervisord gave up starting it (Exited too quickly (process log may have details)); "
                                  "last error: connect_failed: refused; see its log")
    body = evaluate(_snap(entry))
    assert body["status"] == "unhealthy" and body["feeds"]["bybit_spot"]["kinds"] == ["fatal"]


def test_backoff_is_degraded_and_a_disabled_stopped_feed_is_no_problem():
    entry = _service_entry(_svc(), _Raw(status={"pid": "9", "last_error": "boom"}), _proc("BACKOFF"), NOW)
    assert entry["badge"] == "starting" and [p["kind"] for p in entry["problems"]] == ["backoff"]
    stopped = _service_entry(_svc(enabled=False), _Raw(status={"state": "stopped"}, points=4), _proc("STOPPED"), NOW)
    assert stopped["problems"] == [] and stopped["stale"] and not stopped["expected"]
    assert evaluate(_snap(stopped))["status"] == "healthy"


def test_running_feed_grace_then_no_data_and_a_hash_from_another_pid_is_not_trusted():
    fresh = _service_entry(_svc(), _Raw(status={"pid": "7", "state": "connecting"}), _proc("RUNNING", 7, NOW - 3), NOW)
    assert fresh["starting"] and fresh["badge"] == "starting" and fresh["problems"] == []
    assert evaluate(_snap(fresh))["status"] == "healthy"
    late = _service_entry(_svc(), _Raw(status={"pid": "7", "state": "subscribed"}), _proc("RUNNING", 7, NOW - 30), NOW)
    assert [p["kind"] for p in late["problems"]] == ["no_data_since_start"] and late["stale"]
    assert "(feed state: subscribed)" in late["problems"][0]["message"]
    old = {"pid": "6", "state": "subscribed", "messages_per_s": "12.0", "last_error": "old", "last_message_at": "2020-01-01T00:00:00Z"}
    other = _service_entry(_svc(), _Raw(status=old), _proc("RUNNING", 7, NOW - 1), NOW)
    assert other["messages_per_s"] == 0.0 and other["last_error"] == "" and other["starting"]
    silent = _service_entry(_svc(), _Raw(status=old), _proc("RUNNING", 7, NOW - 60), NOW)
    assert {p["kind"] for p in silent["problems"]} == {"no_data_since_start", "no_status"}


def test_supervisord_unreachable_keeps_the_feeds_own_report():
    status = {"pid": "7", "state": "subscribed", "messages_per_s": "5.0", "last_message_at": "2099-01-01T00:00:00Z"}
    entry = _service_entry(_svc(), _Raw(status=status, stamps=[str(int(NOW * 1000))]), None, NOW, supervisor_ok=False)
    assert entry["process_state"] == "UNKNOWN" and entry["badge"] == "unknown" and not entry["stale"]
    body = evaluate({"services": [entry], "redis": {"ok": True, "error": ""}, "supervisor": {"ok": False, "error": "gone"}})
    assert body["status"] == "unhealthy" and "supervisord unreachable: gone" in body["reasons"]


@pytest.mark.parametrize(("starts", "operator", "expected"), [
    (0, {}, 0),
    (1, {}, 0),                                   # autostart's start
    (3, {}, 2),                                   # no operator start: every later start is a restart
    (4, {"base": "3", "starts": "3"}, 0),         # six clicks after autostart
    (5, {"base": "3", "starts": "3"}, 1),         # then one crash
    (2, {"base": "0", "starts": "1"}, 1),         # first start by an operator, then one crash
    (7, {"base": "5", "crashes": "2", "starts": "2"}, 3),
    (2, {"base": "x"}, 1),
])
def test_unexpected_restarts(starts, operator, expected):
    assert unexpected_restarts(starts, operator) == expected


def test_parse_list_and_stale_marker():
    assert parse_list('["A", "B"]') == ["A", "B"]
    assert parse_list('{"A": "why"}') == ["A"]
    assert parse_list("A, B,") == ["A", "B"]
    assert parse_list("") == [] and parse_list("[]") == [] and parse_list("[[[[") == ["[[[["]
    assert stale_marker("") is None
    mark = stale_marker("stopped 2026-11-29T20:01:02.123Z")
    assert mark is not None and mark["cause"] == "stopped" and mark["since"] == "2026-11-29T20:01:02.123Z"
