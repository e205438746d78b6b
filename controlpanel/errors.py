"""One shape for every API error: `{"error": <code>, "message": <text>, ...}` with the right status.

Flask answers routing failures (unknown path, wrong method) and unhandled
exceptions with HTML pages; under /api/ a script would then have to parse HTML,
so those paths get JSON instead. The dashboard and login pages keep HTML.
Unhandled exceptions are logged with their traceback (Flask does that before
calling the handler) and never sent to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, NotFound, SecurityError

API_PREFIX = "/api/"


def json_error(status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    resp = jsonify({"error": code, "message": message, **extra})
    resp.status_code = status
    if headers:
        resp.headers.update(headers)
    return resp


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def _http_error(exc: HTTPException) -> Any:
    if not is_api_request():
        return exc  # Flask renders its HTML page
    status = exc.code or 500
    # SecurityError: a Host outside TRUSTED_HOSTS; named like the loopback Host check's answer.
    code = "bad_host" if isinstance(exc, SecurityError) else (exc.name or "error").lower().replace(" ", "_")
    unrouted = request.url_rule is None
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, InternalServerError):
        message = "internal error; the panel's log has the details"
    elif isinstance(exc, NotFound) and unrouted:
        message = f"no API endpoint {request.method} {request.path[:200]}; see /openapi.json"
    elif isinstance(exc, MethodNotAllowed):
        allowed = sorted(exc.valid_methods or [])
        headers["Allow"] = ", ".join(allowed)
        extra["allowed_methods"] = allowed
        message = f"{request.method} is not allowed here (allowed: {', '.join(allowed)})"
    else:
        message = exc.description or code
    return json_error(status, code, message, headers=headers, **extra)


def init_errors(app: Flask) -> None:
    # InternalServerError is an HTTPException: unhandled exceptions arrive here wrapped in it.
    app.register_error_handler(HTTPException, _http_error)
