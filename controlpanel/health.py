"""/api/health: healthy / degraded / unhealthy, from the snapshot's per-feed `problems`.

A feed counts when it is expected to deliver: enabled in exchanges.yaml, or
running (or being retried) although disabled. Then:

- unhealthy: Redis or supervisord unreachable (every node, when there are
  several); a feed that cannot start (FATAL, no supervisord program,
  `state=config_error`); or no expected feed delivering at all (every one
  failing, none in its start-up grace);
- degraded: one of several supervisord nodes down (named, with its cause);
  a feed stopped, exiting while starting (BACKOFF), without data
  since it started (after the grace, or at once when its connection failed),
  stale, silent about its status, or with symbols that have no data (`no_data`);
- healthy otherwise (a feed within its start-up grace is listed under `starting`).

Every reason names the feed and the cause the feed reported (`last_error`).
"""

from __future__ import annotations

from typing import Any

from .snapshot import DEGRADED, UNHEALTHY

HEALTHY = "healthy"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


class _Verdict:
    """The worst level seen so far, with every reason for it."""

    def __init__(self) -> None:
        self.status = HEALTHY
        self.reasons: list[str] = []

    def worse(self, level: str) -> None:
        if _RANK[level] > _RANK[self.status]:
            self.status = level

    def add(self, level: str, reason: str) -> None:
        self.reasons.append(reason)
        self.worse(level)


def _infrastructure(snap: dict[str, Any], v: _Verdict) -> None:
    """Redis, the configuration file and the supervisord nodes."""
    if not snap["redis"]["ok"]:
        v.add(UNHEALTHY, f"redis unreachable: {snap['redis']['error']}")
    config = snap.get("config") or {"ok": True}
    if not config["ok"]:
        v.add(UNHEALTHY, f"configuration unusable, no feed can start: {config['error']}")
    sup = snap["supervisor"]
    nodes = snap.get("nodes") or []
    if not sup["ok"] and (len(nodes) < 2 or not sup.get("answered")):
        v.add(UNHEALTHY, f"supervisord unreachable: {sup['error']}")
    elif not sup["ok"]:
        # The other nodes' feeds are still seen and controlled: degraded, not unhealthy.
        v.reasons += [f"supervisord node {n['name']} ({n['url']}) unreachable: {n['error']}" for n in nodes if not n["ok"]]
        v.worse(DEGRADED)


def _feed(s: dict[str, Any], v: _Verdict) -> dict[str, Any]:
    """One expected feed's entry of `feeds`; its problems go into the verdict."""
    problems = s["problems"]
    feed_status = max((p["severity"] for p in problems), key=_RANK.__getitem__, default="")
    if not feed_status:
        feed_status = "ok" if s["delivering"] else "starting" if s["starting"] else s["badge"]
    for p in problems:
        v.add(p["severity"], f"{s['id']}: {p['message']}")
    return {
        "status": feed_status,
        "process_state": s["process_state"],
        "delivering": s["delivering"],
        "reasons": [p["message"] for p in problems],
        "kinds": [p["kind"] for p in problems],
        "last_error": s["last_error"],
    }


def evaluate(snap: dict[str, Any]) -> dict[str, Any]:
    """/api/health's body from a snapshot (snapshot.collect)."""
    v = _Verdict()
    _infrastructure(snap, v)
    expected = [s for s in snap["services"] if s["expected"]]
    feeds = {s["id"]: _feed(s, v) for s in expected}
    stale = [s["id"] for s in expected if s["stale"]]
    if stale:
        v.reasons.append("stale feeds: " + ", ".join(stale))
    delivering = [s["id"] for s in expected if s["delivering"]]
    starting = [s["id"] for s in expected if s["starting"]]
    if expected and not delivering and not starting and snap["redis"]["ok"]:
        v.add(UNHEALTHY, f"no enabled feed is delivering data ({len(expected)} expected)")
    return {
        "status": v.status,
        "reasons": v.reasons,
        "redis": snap["redis"]["ok"],
        "supervisor": snap["supervisor"]["ok"],
        "nodes": {n["name"]: {"ok": n["ok"], "error": n["error"]} for n in snap.get("nodes") or []},
        "stale": stale,
        "running": [s["id"] for s in snap["services"] if s["process_state"] == "RUNNING"],
        "delivering": delivering,
        "starting": starting,
        "feeds": feeds,
    }
