"""JSON API (placeholder until the control-panel issue lands): health and per-feed status."""

from __future__ import annotations

import xmlrpc.client

import redis
from flask import Blueprint, current_app, jsonify

from workers.runtime.sink import SYMBOL_INDEX, redis_client
from workers.runtime.status import STATUS_KEY
from workers.runtime.supervisor_rpc import supervisor_proxy

api = Blueprint("api", __name__)


def _processes() -> dict[str, dict] | None:
    try:
        rpc = supervisor_proxy(current_app.config["SUPERVISOR_URL"])
        return {p["name"]: p for p in rpc.supervisor.getAllProcessInfo()}
    except (OSError, xmlrpc.client.Error):
        return None


@api.get("/")
def index():
    return (
        "<!doctype html><title>ltp</title><h1>ltp control panel</h1>"
        "<p>The dashboard is not built yet. JSON: <a href='/api/status'>/api/status</a>, "
        "<a href='/api/health'>/api/health</a>.</p>"
    )


@api.get("/api/status")
def status():
    config = current_app.config["LTP"]
    procs = _processes()
    client = redis_client(config.redis_url)
    services = []
    try:
        pipe = client.pipeline(transaction=False)
        for svc in config.services.values():
            pipe.hgetall(STATUS_KEY.format(service_id=svc.service_id))
            pipe.scard(SYMBOL_INDEX.format(prefix=svc.redis_prefix))
        replies = pipe.execute()
        redis_ok = True
    except redis.RedisError:
        replies, redis_ok = [{}, 0] * len(config.services), False
    for i, svc in enumerate(config.services.values()):
        proc = (procs or {}).get(svc.service_id, {})
        services.append({
            "id": svc.service_id, "exchange": svc.exchange, "enabled": svc.enabled,
            "process_state": proc.get("statename", "UNKNOWN"),
            "feed": replies[2 * i], "data_points": replies[2 * i + 1],
        })
    return jsonify({"services": services, "redis": redis_ok, "supervisor": procs is not None})


@api.get("/api/health")
def health():
    config = current_app.config["LTP"]
    try:
        redis_ok = bool(redis_client(config.redis_url).ping())
    except redis.RedisError:
        redis_ok = False
    sup_ok = _processes() is not None
    state = "healthy" if redis_ok and sup_ok else "unhealthy"
    return jsonify({"status": state, "redis": redis_ok, "supervisor": sup_ok}), 200 if state == "healthy" else 503
