"""The joined view of supervisord and Redis that /api/status, /api/health and /metrics share.

Cost per call: one pipelined Redis round trip for every service together and
one getAllProcessInfo. Data points come from the sink's symbol index (SCARD),
never from scanning keys.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import redis

from workers.runtime.config import Config, ServiceConfig
from workers.runtime.sink import SYMBOL_INDEX
from workers.runtime.status import STATUS_KEY

from .supervisor_client import SupervisorClient, SupervisorError

# Newest data time of a feed = newest recv_ts among its first few configured
# symbols: bounded work per service, and it measures data, not pongs.
FRESHNESS_SAMPLE = 8
NUMERIC_FIELDS = ("messages_total", "reconnects", "restarts", "parse_errors", "redis_errors", "writes_total",
                  "pending_writes")
STOPPED_STATES = {"STOPPED", "EXITED", "FATAL"}
TRANSITION_STATES = {"STARTING", "BACKOFF", "STOPPING"}


def _iso_to_epoch(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if value else None
    except ValueError:
        return None


def _num(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _badge(proc_state: str, stale: bool) -> str:
    """green running, red stopped, amber stale or in transition (the UI colours by this)."""
    if proc_state == "RUNNING":
        return "stale" if stale else "running"
    if proc_state in TRANSITION_STATES:
        return "starting" if proc_state != "STOPPING" else "stopping"
    if proc_state in STOPPED_STATES:
        return "stopped"
    return "stale" if stale else "unknown"


def _service_entry(svc: ServiceConfig, feed: dict[str, str], points: int, recv_ts: list[Any],
                   proc: dict[str, Any] | None, now: float, supervisor_ok: bool = True) -> dict[str, Any]:
    stamps = [int(t) / 1000 for t in recv_ts if t and t.isdigit()]
    last_update = max(stamps) if stamps else _iso_to_epoch(feed.get("last_message_at", ""))
    proc_state = proc["statename"] if proc else "UNKNOWN" if not supervisor_ok else "NO_PROGRAM"
    if proc is not None and proc_state == "RUNNING":
        # A freshly started feed gets `stale_after` to deliver its first data.
        since = max(last_update or 0.0, float(proc.get("start") or 0))
        stale = now - since > svc.stale_after
    elif proc is None and not supervisor_ok and feed and feed.get("state") != "stopped":
        stale = last_update is None or now - last_update > svc.stale_after
    else:
        stale = False
    entry: dict[str, Any] = {
        "id": svc.service_id,
        "exchange": svc.exchange,
        "enabled": svc.enabled,
        "redis_prefix": svc.redis_prefix,
        "stale_after": svc.stale_after,
        "process_state": proc_state,
        "pid": proc.get("pid") if proc else None,
        "uptime_s": (now - proc["start"]) if proc and proc_state == "RUNNING" and proc.get("start") else None,
        "feed_state": feed.get("state", ""),
        "data_points": points,
        "last_update": last_update,
        "last_update_age_s": round(now - last_update, 3) if last_update else None,
        "messages_per_s": _num(feed.get("messages_per_s")),
        "last_error": feed.get("last_error", ""),
        "control_result": feed.get("control_result", ""),
        "stale": stale,
        "badge": _badge(proc_state, stale),
    }
    for name in NUMERIC_FIELDS:
        entry[name] = int(_num(feed.get(name)))
    return entry


def collect(config: Config, client: redis.Redis, supervisor: SupervisorClient) -> dict[str, Any]:
    """Everything the dashboard header and cards need, in one Redis round trip and one XML-RPC call."""
    services = list(config.services.values())
    samples = [svc.symbols[:FRESHNESS_SAMPLE] for svc in services]
    redis_error = ""
    try:
        pipe = client.pipeline(transaction=False)
        for svc, sample in zip(services, samples, strict=True):
            pipe.hgetall(STATUS_KEY.format(service_id=svc.service_id))
            pipe.scard(SYMBOL_INDEX.format(prefix=svc.redis_prefix))
            for sym in sample:
                pipe.hget(f"{svc.redis_prefix}:{sym}", "recv_ts")
        replies = pipe.execute()
    except redis.RedisError as exc:
        redis_error = str(exc) or type(exc).__name__
        replies = []
    supervisor_error = ""
    try:
        procs: dict[str, dict[str, Any]] | None = supervisor.processes()
    except SupervisorError as exc:
        procs, supervisor_error = None, exc.message
    now = time.time()
    out, i = [], 0
    for svc, sample in zip(services, samples, strict=True):
        if replies:
            feed, points, stamps = replies[i], replies[i + 1], replies[i + 2: i + 2 + len(sample)]
            i += 2 + len(sample)
        else:
            feed, points, stamps = {}, 0, []
        proc = procs.get(svc.service_id) if procs else None
        out.append(_service_entry(svc, feed, points, stamps, proc, now, procs is not None))
    configured = set(config.services)
    programs = [
        {"name": p["name"], "state": p["statename"], "description": p.get("description", "")}
        for p in (procs or {}).values() if p["name"] not in configured
    ]
    updates = [s["last_update"] for s in out if s["last_update"]]
    return {
        "time": now,
        "services": out,
        "programs": programs,
        "redis": {"ok": not redis_error, "error": redis_error},
        "supervisor": {"ok": procs is not None, "error": supervisor_error},
        "summary": {
            "total": len(out),
            "running": sum(s["process_state"] == "RUNNING" for s in out),
            "stale": sum(s["stale"] for s in out),
            "data_points": sum(s["data_points"] for s in out),
            "last_update": max(updates) if updates else None,
        },
    }
