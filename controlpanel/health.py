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


def evaluate(snap: dict[str, Any]) -> dict[str, Any]:
    status = HEALTHY
    reasons: list[str] = []

    def worse(level: str) -> None:
        nonlocal status
        if _RANK[level] > _RANK[status]:
            status = level

    if not snap["redis"]["ok"]:
        reasons.append(f"redis unreachable: {snap['redis']['error']}")
        worse(UNHEALTHY)
    config = snap.get("config") or {"ok": True}
    if not config["ok"]:
        reasons.append(f"configuration unusable, no feed can start: {config['error']}")
        worse(UNHEALTHY)
    sup = snap["supervisor"]
    nodes = snap.get("nodes") or []
    if not sup["ok"] and (len(nodes) < 2 or not sup.get("answered")):
        reasons.append(f"supervisord unreachable: {sup['error']}")
        worse(UNHEALTHY)
    elif not sup["ok"]:
        # The other nodes' feeds are still seen and controlled: degraded, not unhealthy.
        for node in nodes:
            if not node["ok"]:
                reasons.append(f"supervisord node {node['name']} ({node['url']}) unreachable: {node['error']}")
        worse(DEGRADED)

    expected = [s for s in snap["services"] if s["expected"]]
    feeds: dict[str, dict[str, Any]] = {}
    for s in expected:
        problems = s["problems"]
        feed_status = max((p["severity"] for p in problems), key=_RANK.__getitem__, default="")
        if not feed_status:
            feed_status = "ok" if s["delivering"] else "starting" if s["starting"] else s["badge"]
        feeds[s["id"]] = {
            "status": feed_status,
            "process_state": s["process_state"],
            "delivering": s["delivering"],
            "reasons": [p["message"] for p in problems],
            "kinds": [p["kind"] for p in problems],
            "last_error": s["last_error"],
        }
        for p in problems:
            reasons.append(f"{s['id']}: {p['message']}")
            worse(p["severity"])

    stale = [s["id"] for s in expected if s["stale"]]
    if stale:
        reasons.append("stale feeds: " + ", ".join(stale))
    delivering = [s["id"] for s in expected if s["delivering"]]
    starting = [s["id"] for s in expected if s["starting"]]
    if expected and not delivering and not starting and snap["redis"]["ok"]:
        reasons.append(f"no enabled feed is delivering data ({len(expected)} expected)")
        worse(UNHEALTHY)
    return {
        "status": status,
        "reasons": reasons,
        "redis": snap["redis"]["ok"],
        "supervisor": snap["supervisor"]["ok"],
        "nodes": {n["name"]: {"ok": n["ok"], "error": n["error"]} for n in nodes},
        "stale": stale,
        "running": [s["id"] for s in snap["services"] if s["process_state"] == "RUNNING"],
        "delivering": delivering,
        "starting": starting,
        "feeds": feeds,
    }
