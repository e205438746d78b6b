"""The joined view of supervisord and Redis that /api/status, /api/health and /metrics share.

Cost per call: one pipelined Redis round trip for every service together and
one getAllProcessInfo per supervisord node (in parallel, each bounded by its
timeout: nodes.py). Data points come from the sink's symbol index (SCARD), never
from scanning keys.

Whatever a feed (or anyone) wrote is read as bytes and decoded with replacement:
one invalid byte in a status field must not turn the whole panel into a 500.

Each service gets `problems` (why it is not delivering, each with the cause a
user can act on) that health.py turns into healthy / degraded / unhealthy.

It only reads. Marking the keys of a feed that died without a word is
deadfeeds.DeadFeedMarker's job, given a Snapshot from join().
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from workers.runtime.config import Config, ServiceConfig
from workers.runtime.sink import SYMBOL_INDEX
from workers.runtime.stale import STALE_CAUSES
from workers.runtime.status import STARTS_KEY, STATUS_KEY
from workers.runtime.status import TTL_S as STATUS_TTL_S

from .nodes import NodeSet, Owner, Poll
from .supervisor_client import SupervisorClient
from .values import age_text, num

# Newest data time of a feed = newest recv_ts among its first few configured
# symbols (and the status hash's last_message_at): bounded work per service,
# and it measures data, not pongs.
FRESHNESS_SAMPLE = 8
# A started feed has this long (at most its stale_after) to deliver its first data; a failed
# connection attempt ends the grace at once.
START_GRACE_S = 10.0
NUMERIC_FIELDS = ("messages_total", "reconnects", "parse_errors", "redis_errors", "writes_total", "pending_writes")
STOPPED_STATES = {"STOPPED", "EXITED", "FATAL"}
TRANSITION_STATES = {"STARTING", "BACKOFF", "STOPPING"}
# supervisord states in which the feed's process is not running: its keys get no new data.
DEAD_STATES = {"STOPPED", "EXITED", "FATAL", "BACKOFF", "NO_PROGRAM"}
# Process states in which a feed is expected to deliver even when exchanges.yaml disables it
# (someone started it by hand, or supervisord is trying to).
ACTIVE_STATES = {"RUNNING", "STARTING", "BACKOFF", "FATAL"}
CONFIG_ERROR = "config_error"  # the feed's `state` when exchanges.yaml stops it
CONNECTION_ERRORS = ("connect_failed", "connection_lost", "rest_error", "silence_timeout", "ws_protocol")
NO_DATA_SHOWN = 100  # at most this many symbols of a `no_data` list in /api/status

# Operator actions (panel page, API, Redis control key), kept without a TTL like service:starts:<id>:
# starts, stops, base (process starts counted before the latest operator start), crashes
# (unexpected starts before that one), last_action, last_at, last_via. See control.record_operator.
OPERATOR_KEY = "service:operator:{service_id}"

UNHEALTHY = "unhealthy"
DEGRADED = "degraded"


def text(value: Any) -> str:
    """A Redis reply as text: bytes decoded as UTF-8 with replacement, None as ""."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None or isinstance(value, Exception) else str(value)


def text_hash(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {text(k): text(v) for k, v in value.items()}


def _iso_to_epoch(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _int(value: str | None, default: int = 0) -> int:
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else default


def parse_list(value: str) -> list[str]:
    """A list field of the status hash: JSON (list, or object whose keys are the items) or comma-separated."""
    value = value.strip()
    if not value:
        return []
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(data, dict):
        return [str(k) for k in data]
    if isinstance(data, list):
        return [str(v) for v in data]
    return [str(data)] if data not in (None, "") else []


def unexpected_restarts(process_starts: int, operator: dict[str, str]) -> int:
    """Process starts nobody asked for through the panel: supervisord's restarts after a crash.

    Every process start counts once in service:starts:<id>. An operator start records `base`, the
    count just before it: starts beyond base + 1 since then are unexpected, and so were those beyond
    the first before it (summed in `crashes`). Without any operator start, every start after the
    first is one (the first is autostart's, or a `supervisorctl start`)."""
    base = operator.get("base", "")
    if not (base.isascii() and base.isdigit()):
        return max(0, process_starts - 1)
    return _int(operator.get("crashes")) + max(0, process_starts - int(base) - 1)


def stale_marker(value: str) -> dict[str, str] | None:
    """A data hash's `stale` field, "<cause> <ISO time>", as {cause, since, meaning}."""
    if not value:
        return None
    cause, _, since = value.partition(" ")
    return {"cause": cause, "since": since, "meaning": STALE_CAUSES.get(cause, ""), "value": value}


@dataclass
class _Raw:
    status: dict[str, str] = field(default_factory=dict)
    status_error: str = ""
    points: int = 0
    starts: int = 0
    operator: dict[str, str] = field(default_factory=dict)
    stamps: list[str] = field(default_factory=list)


def _problem(severity: str, kind: str, message: str) -> dict[str, str]:
    return {"severity": severity, "kind": kind, "message": message[:600]}


@dataclass(frozen=True)
class _Seen:
    """What supervisord and the feed's status hash say, before any verdict."""

    proc_state: str
    pid: int
    start: float
    feed_state: str
    current: bool  # the status hash describes the process supervisord runs now (or, with none running, the last one)
    last_error: str
    last_message: float | None
    last_update: float | None
    config_error: bool

    @property
    def running(self) -> bool:
        return self.proc_state == "RUNNING"


@dataclass
class _Verdict:
    stale: bool = False
    delivered: bool = False
    starting: bool = False
    problems: list[dict[str, str]] = field(default_factory=list)


def _seen(raw: _Raw, proc: dict[str, Any] | None, supervisor_ok: bool) -> _Seen:
    feed = raw.status
    proc_state = proc["statename"] if proc else "UNKNOWN" if not supervisor_ok else "NO_PROGRAM"
    pid = int(proc.get("pid") or 0) if proc else 0
    current = bool(feed) and (feed.get("pid") == str(pid) if pid else True)
    stamps = [int(t) / 1000 for t in raw.stamps if t.isascii() and t.isdigit() and len(t) < 16]
    last_message = _iso_to_epoch(feed.get("last_message_at", ""))
    candidates = [*stamps, *([last_message] if last_message else [])]
    feed_state = feed.get("state", "")
    config_error = feed_state == CONFIG_ERROR and (current or proc_state != "RUNNING")
    return _Seen(
        proc_state=proc_state, pid=pid, start=float(proc.get("start") or 0) if proc else 0.0, feed_state=feed_state,
        current=current, last_error=feed.get("last_error", "") if current or config_error else "",
        last_message=last_message, last_update=max(candidates) if candidates else None, config_error=config_error,
    )


def _verdict(svc: ServiceConfig, raw: _Raw, proc: dict[str, Any] | None, seen: _Seen, now: float) -> _Verdict:
    """The feed's state: refused by its configuration, live (or starting), supervisord unreachable, or down."""
    if seen.config_error:
        return _Verdict(stale=raw.points > 0, problems=[_problem(
            UNHEALTHY, "config_error", f"refuses to start, configuration error: {seen.last_error or 'see its log'}")])
    if seen.running or (seen.proc_state == "STARTING" and seen.current):
        return _live(svc, seen, now)
    if seen.proc_state == "UNKNOWN":
        # supervisord is unreachable (health says so); the feed's own report still counts.
        if raw.status and seen.feed_state not in ("stopped", CONFIG_ERROR):
            stale = seen.last_update is None or now - seen.last_update > svc.stale_after
            return _Verdict(stale=stale, delivered=not stale)
        return _Verdict(stale=raw.points > 0)
    return _down(svc, raw, proc, seen)


def _live(svc: ServiceConfig, seen: _Seen, now: float) -> _Verdict:
    """A running (or starting) feed: delivering, stale, within its start-up grace, or silent since it started."""
    v = _Verdict()
    cause = f": {seen.last_error}" if seen.last_error else ""
    last_update = seen.last_update
    v.delivered = (seen.current and bool(seen.last_message)) or (
        last_update is not None and seen.start > 0 and last_update >= seen.start)
    if v.delivered and last_update is not None:
        age = now - last_update
        v.stale = age > svc.stale_after
        if v.stale:
            v.problems.append(_problem(DEGRADED, "stale", f"no data for {age_text(age)} (stale_after {svc.stale_after:g} s){cause}"))
    else:
        since_start = now - seen.start if seen.start else 0.0
        failing = seen.current and (seen.feed_state == "reconnecting" or seen.last_error.startswith(CONNECTION_ERRORS))
        if since_start > min(START_GRACE_S, svc.stale_after) or failing:
            v.stale = True
            state_note = f" (feed state: {seen.feed_state})" if seen.feed_state and not seen.last_error else ""
            v.problems.append(_problem(DEGRADED, "no_data_since_start",
                                       f"no data since it started {age_text(since_start)} ago{cause or state_note}"))
        else:
            v.starting = True
    if seen.running and not seen.current and seen.start and now - seen.start > STATUS_TTL_S + 2:
        v.problems.append(_problem(DEGRADED, "no_status",
                                   f"process {seen.pid} has published no status for {age_text(now - seen.start)}: "
                                   "it cannot reach Redis or is hung (see its log)"))
    return v


def _down(svc: ServiceConfig, raw: _Raw, proc: dict[str, Any] | None, seen: _Seen) -> _Verdict:
    """Not running (or in transition): why, in supervisord's words and the operator's last action."""
    state, last_error = seen.proc_state, seen.last_error
    cause = f": {last_error}" if last_error else ""
    v = _Verdict(stale=raw.points > 0 and state in DEAD_STATES, starting=state == "STARTING")
    if state == "NO_PROGRAM":
        v.problems.append(_problem(UNHEALTHY, "no_program",
                                   f"supervisord has no program {svc.service_id!r}: add [program:{svc.service_id}] "
                                   "to supervisord.conf, then `supervisorctl reread && supervisorctl update`"))
    elif state == "FATAL":
        spawnerr = str(proc.get("spawnerr") or proc.get("description") or "exited too quickly") if proc else ""
        v.problems.append(_problem(UNHEALTHY, "fatal", f"supervisord gave up starting it ({spawnerr})"
                                   f"{'; last error: ' + last_error if last_error else ''}; see its log"))
    elif state == "BACKOFF":
        v.problems.append(_problem(DEGRADED, "backoff", f"exits while starting, supervisord retries{cause or '; see its log'}"))
    elif state in ("STOPPED", "EXITED") and svc.enabled:
        v.problems.append(_problem(DEGRADED, "stopped", f"{_how_stopped(state, proc, raw.operator)}; "
                                   "enabled in exchanges.yaml: start it"))
    return v


def _how_stopped(state: str, proc: dict[str, Any] | None, operator: dict[str, str]) -> str:
    how = "exited" if state == "EXITED" else "stopped"
    status = proc.get("exitstatus") if proc else None
    if state == "EXITED" and status not in (None, 0):
        how += f" with status {status}"
    if operator.get("last_action") == "stop" and operator.get("last_at"):
        how += f" (stopped by an operator via {operator.get('last_via') or 'the panel'} at {operator['last_at']})"
    return how


def _report_problems(svc: ServiceConfig, raw: _Raw, no_data: list[str]) -> list[dict[str, str]]:
    """Problems the feed's status hash tells of whatever its state: symbols without data, an unreadable hash."""
    out = []
    if no_data:
        shown = ", ".join(no_data[:10]) + (f" and {len(no_data) - 10} more" if len(no_data) > 10 else "")
        out.append(_problem(DEGRADED, "symbols_without_data", f"no data for {len(no_data)} symbol(s): {shown}"))
    if raw.status_error:
        out.append(_problem(DEGRADED, "status_unreadable",
                            f"{STATUS_KEY.format(service_id=svc.service_id)} is unreadable: {raw.status_error}"))
    return out


def _service_entry(svc: ServiceConfig, raw: _Raw, proc: dict[str, Any] | None, now: float,
                   supervisor_ok: bool = True) -> dict[str, Any]:
    """One feed's row of /api/status: what is seen, the verdict on it, and the figures."""
    seen = _seen(raw, proc, supervisor_ok)
    v = _verdict(svc, raw, proc, seen, now)
    no_data = parse_list(raw.status.get("no_data", "")) if seen.current and seen.running else []
    v.problems += _report_problems(svc, raw, no_data)
    return _entry(svc, raw, proc, seen, v, no_data, now)


def _entry(svc: ServiceConfig, raw: _Raw, proc: dict[str, Any] | None, seen: _Seen, v: _Verdict, no_data: list[str],
           now: float) -> dict[str, Any]:
    feed, operator, running, last_update = raw.status, raw.operator, seen.running, seen.last_update
    entry: dict[str, Any] = {
        "id": svc.service_id,
        "exchange": svc.exchange,
        "enabled": svc.enabled,
        "expected": svc.enabled or seen.proc_state in ACTIVE_STATES or (seen.config_error and seen.proc_state != "STOPPED"),
        "redis_prefix": svc.redis_prefix,
        "stale_after": svc.stale_after,
        "process_state": seen.proc_state,
        "pid": seen.pid or None,
        "uptime_s": round(now - seen.start, 3) if running and seen.start else None,
        "feed_state": seen.feed_state,
        "data_points": raw.points,
        "last_update": last_update,
        "last_update_age_s": round(now - last_update, 3) if last_update else None,
        # A figure of the running process only: a stopped or dead feed receives nothing.
        "messages_per_s": num(feed.get("messages_per_s"), 0.0) if running and seen.current else 0.0,
        "last_error": seen.last_error,
        "control_result": feed.get("control_result", ""),
        "control_action": feed.get("control_action", ""),
        "control_at": feed.get("control_at", ""),
        "no_data": no_data[:NO_DATA_SHOWN],
        "stale": v.stale,
        "delivering": bool(running and v.delivered and not v.stale),
        "starting": v.starting and not v.problems,
        "problems": v.problems,
        "badge": _badge(seen.proc_state, v.stale, seen.config_error, running and not v.delivered and not v.stale),
        "restarts": unexpected_restarts(raw.starts, operator),
        "process_starts": raw.starts,
        "operator_starts": _int(operator.get("starts")),
        "operator_stops": _int(operator.get("stops")),
        "last_operator_action": ({"action": operator.get("last_action", ""), "at": operator.get("last_at", ""),
                                  "via": operator.get("last_via", "")} if operator.get("last_action") else None),
        "exit_status": proc.get("exitstatus") if proc and not running else None,
        "spawn_error": str(proc.get("spawnerr") or "") if proc else "",
    }
    for name in NUMERIC_FIELDS:
        entry[name] = _int(feed.get(name)) if seen.current else 0
    return entry


def _badge(proc_state: str, stale: bool, config_error: bool, awaiting_data: bool) -> str:
    """green running; red stopped / failed / config_error; amber stale or in transition (the UI colours by this)."""
    if config_error:
        return "config_error"
    if proc_state == "RUNNING":
        return "stale" if stale else "starting" if awaiting_data else "running"
    if proc_state == "STARTING" and stale:  # its first attempts already failed: say so, not "starting"
        return "stale"
    if proc_state in ("FATAL", "NO_PROGRAM"):
        return "failed"
    if proc_state in TRANSITION_STATES:
        return "starting" if proc_state != "STOPPING" else "stopping"
    if proc_state in STOPPED_STATES:
        return "stopped"
    return "stale" if stale else "unknown"


# -- the snapshot ------------------------------------------------------------------------------------

def _read(client: redis.Redis, services: list[ServiceConfig], samples: list[Sequence[str]]) -> list[_Raw]:
    pipe = client.pipeline(transaction=False)
    for svc, sample in zip(services, samples, strict=True):
        pipe.execute_command("HGETALL", STATUS_KEY.format(service_id=svc.service_id), NEVER_DECODE=True)
        pipe.scard(SYMBOL_INDEX.format(prefix=svc.redis_prefix))
        pipe.execute_command("GET", STARTS_KEY.format(service_id=svc.service_id), NEVER_DECODE=True)
        pipe.execute_command("HGETALL", OPERATOR_KEY.format(service_id=svc.service_id), NEVER_DECODE=True)
        for sym in sample:
            pipe.execute_command("HGET", f"{svc.redis_prefix}:{sym}", "recv_ts", NEVER_DECODE=True)
    # Per-command errors (a key of the wrong type) come back in place; only a connection error raises.
    replies = pipe.execute(raise_on_error=False)
    out, i = [], 0
    for sample in samples:
        status, points, starts, operator = replies[i: i + 4]
        stamps = replies[i + 4: i + 4 + len(sample)]
        i += 4 + len(sample)
        out.append(_Raw(
            status=text_hash(status),
            status_error=str(status) if isinstance(status, Exception) else "",
            points=points if isinstance(points, int) else 0,
            starts=_int(text(starts)),
            operator=text_hash(operator),
            stamps=[text(s) for s in stamps],
        ))
    return out


def _node_problems(entry: dict[str, Any], owner: Owner, poll: Poll) -> None:
    """With several nodes: say which node a feed is on when that node is down, and when two run it."""
    problems = entry["problems"]
    if not owner.node_ok:
        node = poll.node(owner.node)
        if node is not None:
            problems.append(_problem(DEGRADED, "node_down", f"its supervisord node {node.name} ({node.url}) is down: "
                                     f"{node.error}; process state unknown"))
        else:
            down = "; ".join(f"{n.name} ({n.error})" for n in poll.down)
            problems.append(_problem(DEGRADED, "node_down", f"on no reachable supervisord node; down: {down}"))
    if owner.conflict:
        problems.append(_problem(DEGRADED, "node_conflict",
                                 f"runs on {len(owner.conflict)} nodes ({', '.join(owner.conflict)}): one feed id must run "
                                 f"on one host (two processes fight over its keys); shown and controlled: {owner.node}"))
    if problems:
        entry["starting"] = False


def _programs(nodes: NodeSet, poll: Poll, configured: set[str]) -> list[dict[str, Any]]:
    """supervisord's other programs (redis, panel, autostart...) of every node; a down node's as last seen."""
    out = []
    for st in poll.nodes:
        if st.ok:
            out += [{"name": p["name"], "state": p["statename"], "description": p.get("description", ""), "node": st.name}
                    for p in st.procs.values() if p["name"] not in configured]
        elif nodes.multi:
            out += [{"name": name, "state": "UNKNOWN", "description": f"node {st.name} is down: {st.error}", "node": st.name}
                    for name in sorted(nodes.known_programs(st.name) - configured)]
    return out


def _supervisor_summary(poll: Poll, multi: bool) -> dict[str, Any]:
    if poll.config_error:
        return {"ok": False, "error": f"node configuration unusable: {poll.config_error}", "nodes_down": []}
    down = poll.down
    if not multi:
        error = down[0].error if down else ""
    else:
        error = "; ".join(f"node {n.name} ({n.url}): {n.error}" for n in down)
    # ok: every node answered. `answered` tells a partial outage (degraded) from a total one (unhealthy).
    return {"ok": not down, "error": error, "answered": len(poll.answered), "nodes_down": [n.name for n in down]}


@dataclass(frozen=True)
class FeedSeen:
    """What the dead-feed marker (deadfeeds.py) needs to know of one feed."""

    svc: ServiceConfig
    process_state: str
    reported: bool  # its status hash is there (readable or not): the feed, or its final report, speaks for it
    points: int
    markable: bool  # the owning node answered and no down node may be running it (nodes.Owner.markable)


@dataclass(frozen=True)
class Snapshot:
    body: dict[str, Any]  # what /api/status serves
    feeds: list[FeedSeen]
    redis_ok: bool


def join(config: Config, client: redis.Redis, supervisor: SupervisorClient | NodeSet) -> Snapshot:
    """supervisord's process info joined with Redis: one pipelined Redis round trip, one XML-RPC call per node.
    Reads only; marking a dead feed's keys is deadfeeds.DeadFeedMarker's job."""
    nodes = supervisor if isinstance(supervisor, NodeSet) else NodeSet.single(supervisor)
    services = list(config.services.values())
    samples: list[Sequence[str]] = [svc.symbols[:FRESHNESS_SAMPLE] for svc in services]
    redis_error = ""
    try:
        raws = _read(client, services, samples)
    except redis.RedisError as exc:
        redis_error = str(exc) or type(exc).__name__
        raws = [_Raw() for _ in services]
    poll = nodes.poll()
    now = time.time()
    out, feeds = [], []
    for svc, raw in zip(services, raws, strict=True):
        owner = nodes.owner(poll, svc.service_id)
        entry = _service_entry(svc, raw, owner.proc if owner.node_ok else None, now, owner.node_ok)
        entry["node"] = owner.node
        if nodes.multi:
            _node_problems(entry, owner, poll)
            entry["nodes_defining"] = owner.defined_on
        out.append(entry)
        feeds.append(FeedSeen(svc, entry["process_state"], bool(raw.status or raw.status_error), raw.points,
                              owner.node_ok and owner.markable))
    return Snapshot(_body(config, nodes, poll, out, now, redis_error), feeds, not redis_error)


def collect(config: Config, client: redis.Redis, supervisor: SupervisorClient | NodeSet) -> dict[str, Any]:
    """Everything the dashboard header and cards need (join's body)."""
    return join(config, client, supervisor).body


def _body(config: Config, nodes: NodeSet, poll: Poll, out: list[dict[str, Any]], now: float,
          redis_error: str) -> dict[str, Any]:
    updates = [s["last_update"] for s in out if s["last_update"]]
    return {
        "time": now,
        "services": out,
        "programs": _programs(nodes, poll, set(config.services)),
        "redis": {"ok": not redis_error, "error": redis_error},
        "config": {"ok": not config.error, "error": config.error, "path": str(config.path)},
        "supervisor": _supervisor_summary(poll, nodes.multi),
        "nodes": [st.public() for st in poll.nodes],
        "nodes_config": {"ok": not poll.config_error, "error": poll.config_error, "source": nodes.config.source},
        "summary": {
            "total": len(out),
            "running": sum(s["process_state"] == "RUNNING" for s in out),
            # Feeds expected to deliver (enabled, or running) whose data is not current.
            "stale": sum(s["stale"] and s["expected"] for s in out),
            "delivering": sum(s["delivering"] for s in out),
            "data_points": sum(s["data_points"] for s in out),
            "last_update": max(updates) if updates else None,
        },
    }
