"""The one OpenAPI description of the panel's API; /openapi.json serves it and /docs renders it."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_SERVICE_ID = {"name": "service_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "A service configured in exchanges.yaml (also its supervisord program name)."}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _action(verb: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{verb.capitalize()} a service",
            "description": f"supervisord `{verb}` with wait. Needs a token off loopback; browsers also send X-CSRF-Token. Rate-limited.",
            "tags": ["control"],
            "parameters": [_SERVICE_ID],
            "security": [{"bearer": []}, {"session": []}],
            "responses": {
                "200": _json("Done; the process state after the action."),
                "401": _json("No or wrong token.", _ERROR),
                "403": _json("Missing or wrong CSRF token, or cross-origin request.", _ERROR),
                "404": _json("Unknown service id; `valid_ids` lists the configured ones.", _ERROR),
                "409": _json("already_started / not_running.", _ERROR),
                "429": _json("Rate limit; see Retry-After.", _ERROR),
                "500": _json("spawn_error / abnormal_termination: the program died while starting.", _ERROR),
                "503": _json("supervisord is not reachable.", _ERROR),
            },
        }
    }


def openapi_spec() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/status": {"get": {
            "summary": "Every configured service with process state and live figures",
            "description": "Joins supervisord's getAllProcessInfo with exchanges.yaml and Redis (one pipelined round trip): "
                           "data points, last update age, messages/s, reconnects, restarts, last error, stale flag.",
            "tags": ["read"], "responses": {"200": _json("Snapshot", {"$ref": "#/components/schemas/Status"})}}},
        "/api/health": {"get": {
            "summary": "healthy / degraded / unhealthy, with reasons",
            "description": "HTTP 200 only when healthy (Redis and supervisord reachable, no stale feed); 503 otherwise.",
            "tags": ["read"], "responses": {"200": _json("Healthy"), "503": _json("Degraded or unhealthy")}}},
        "/api/service/{service_id}/log": {"get": {
            "summary": "Tail of a service's log",
            "tags": ["read"],
            "parameters": [_SERVICE_ID, {"name": "lines", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                                      "default": 100}}],
            "security": [{"bearer": []}, {"session": []}, {}],
            "responses": {"200": _json("`lines`: the last N lines (at most 64 KiB)."), "400": _json("Bad `lines`.", _ERROR),
                          "401": _json("Token needed (off loopback).", _ERROR), "404": _json("Unknown service id.", _ERROR)}}},
        "/api/prices": {"get": {
            "summary": "Latest values under a Redis prefix, paged, with recent LTPs for sparklines",
            "tags": ["read"],
            "parameters": [
                {"name": "prefix", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
            ],
            "responses": {"200": _json("`rows`: symbol, fields (the Redis hash), history [[recv_ts_ms, ltp], ...] oldest first."),
                          "404": _json("Unknown prefix; `valid_prefixes` lists them.", _ERROR)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["read"],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This description", "tags": ["read"], "responses": {"200": _json("OpenAPI 3.0")}}},
    }
    for verb in ("start", "stop", "restart"):
        paths[f"/api/service/{{service_id}}/{verb}"] = _action(verb)
    return {
        "openapi": "3.0.3",
        "info": {"title": "ltp control panel", "version": "1",
                 "description": "Controls the ltp feeds under supervisord and shows their live state from Redis."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "LTP_PANEL_TOKEN"},
                "session": {"type": "apiKey", "in": "cookie", "name": "ltp_session", "description": "From /login"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"],
                          "description": "Every error under /api/ has this shape, unknown paths (404 not_found) and wrong "
                                         "methods (405 method_not_allowed, with `allowed_methods`) included; never a traceback.",
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "Status": {"type": "object", "properties": {
                    "services": {"type": "array", "items": {"type": "object"}},
                    "programs": {"type": "array", "items": {"type": "object"}},
                    "summary": {"type": "object"}, "redis": {"type": "object"}, "supervisor": {"type": "object"}}},
            },
        },
    }
