"""JSON API: status, service control, health, logs, prices, and the OpenAPI description."""

from __future__ import annotations

import math
import re
from typing import Any

import redis
from flask import Blueprint, jsonify, render_template, request

from workers.runtime.sink import HISTORY, SYMBOL_INDEX

from .auth import login_required_json, mutating
from .control import operator_act
from .deps import get_config, get_marker, get_redis, get_supervisor
from .errors import json_error
from .health import evaluate
from .openapi import openapi_spec
from .snapshot import collect, join, stale_marker, text, text_hash
from .supervisor_client import SupervisorError
from .venues import venues

api = Blueprint("api", __name__)

LOG_LINES_MAX = 1000
LOG_BYTES_PER_LINE = 200
PRICES_LIMIT_MAX = 500
SPARK_POINTS = 60
_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses


def _unknown_service(service_id: str) -> Any:
    valid = sorted(get_config().services)
    return json_error(404, "unknown_service", f"no configured service {service_id[:64]!r}", valid_ids=valid)


class BadArgument(ValueError):
    pass


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise BadArgument(f"{name} must be an integer in {lo}..{hi}")
    return int(raw)


@api.errorhandler(SupervisorError)
def _supervisor_error(exc: SupervisorError) -> Any:
    return json_error(exc.status, exc.code, exc.message)


@api.errorhandler(BadArgument)
def _bad_argument(exc: BadArgument) -> Any:
    return json_error(400, "bad_request", str(exc))


@api.errorhandler(redis.RedisError)
def _redis_error(exc: redis.RedisError) -> Any:
    return json_error(503, "redis_unavailable", f"Redis is not reachable: {exc}")


@api.get("/api/status")
def status() -> Any:
    snap = join(get_config(), get_redis(), get_supervisor())
    get_marker().mark(snap)  # the dashboard shows a dead feed's keys marked as soon as it shows the feed dead
    return jsonify(snap.body)


@api.post("/api/service/<service_id>/<any(start, stop, restart):action>")
@mutating
def control(service_id: str, action: str) -> Any:
    if service_id not in get_config().services:
        return _unknown_service(service_id)
    sup = get_supervisor()
    operator_act(get_redis(), sup, service_id, action, "panel")
    info = sup.info(service_id)
    return jsonify({"ok": True, "service": service_id, "action": action, "process_state": info["statename"],
                    "node": info["node"]})


@api.get("/api/health")
def health() -> Any:
    body = evaluate(collect(get_config(), get_redis(), get_supervisor()))
    return jsonify(body), 200 if body["status"] == "healthy" else 503


@api.get("/api/service/<service_id>/log")
@login_required_json
def service_log(service_id: str) -> Any:
    if service_id not in get_config().services:
        return _unknown_service(service_id)
    lines = _int_arg("lines", 100, 1, LOG_LINES_MAX)
    text = get_supervisor().tail_log(service_id, lines * LOG_BYTES_PER_LINE)
    rows = text.splitlines()
    if rows and not text.startswith("\n") and len(text) >= lines * LOG_BYTES_PER_LINE:
        rows = rows[1:]  # the first line was cut by the byte window
    return jsonify({"service": service_id, "lines": rows[-lines:]})


@api.get("/api/prices")
def prices() -> Any:
    prefix = request.args.get("prefix", "")
    by_prefix = {s.redis_prefix: s for s in get_config().services.values()}
    if prefix not in by_prefix:
        return json_error(404, "unknown_prefix", f"no configured feed writes prefix {prefix[:64]!r}", valid_prefixes=sorted(by_prefix))
    offset = _int_arg("offset", 0, 0, 10_000_000)
    limit = _int_arg("limit", 50, 1, PRICES_LIMIT_MAX)
    client = get_redis()
    # Read as bytes, decoded with replacement: one invalid byte in a hash must not fail the page.
    members = client.execute_command("SMEMBERS", SYMBOL_INDEX.format(prefix=prefix), NEVER_DECODE=True) or []
    symbols = sorted((text(m), m) for m in members if isinstance(m, bytes))
    page = symbols[offset: offset + limit]
    pipe = client.pipeline(transaction=False)
    for _name, raw in page:
        pipe.execute_command("HGETALL", prefix.encode() + b":" + raw, NEVER_DECODE=True)
        pipe.execute_command("LRANGE", HISTORY.format(prefix=prefix, symbol="").encode() + raw, 0, SPARK_POINTS - 1,
                             NEVER_DECODE=True)
    replies = pipe.execute(raise_on_error=False) if page else []
    rows = []
    for i, (sym, _raw) in enumerate(page):
        fields, history = text_hash(replies[2 * i]), replies[2 * i + 1]
        points = []
        for item in reversed(history if isinstance(history, list) else []):  # newest first in Redis; oldest first here
            ts, _, value = text(item).partition(":")
            try:
                point = [int(ts), float(value)]
            except ValueError:
                continue
            if math.isfinite(point[1]):
                points.append(point)
        rows.append({"symbol": sym, "fields": fields, "history": points, "stale": stale_marker(fields.get("stale", ""))})
    return jsonify({"prefix": prefix, "service": by_prefix[prefix].service_id, "total": len(symbols),
                    "offset": offset, "limit": limit, "rows": rows})


@api.get("/api/venues")
def venue_list() -> Any:
    return jsonify(venues(get_config()))


@api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_spec())


@api.get("/docs")
def docs() -> Any:
    return render_template("docs.html", spec=openapi_spec())
