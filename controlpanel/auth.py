"""Who may change things: bearer token or login session, CSRF on browser POSTs, rate limits, Host check.

Rules:
- Off loopback (or whenever a token is set) a mutation needs `Authorization: Bearer <token>`
  or a session cookie obtained through /login.
- A request that looks like it comes from a browser (session cookie, Origin or
  Sec-Fetch-Site header) must also carry the session's CSRF token, even on
  loopback: otherwise any web page could POST to 127.0.0.1:8080.
- On loopback the Host header must name loopback, which defeats DNS rebinding.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for

from .settings import PanelSettings, is_loopback

auth = Blueprint("auth", __name__)

CSRF_HEADER = "X-CSRF-Token"


def settings() -> PanelSettings:
    return current_app.config["PANEL"]


def _error(status: int, code: str, message: str, **headers: str) -> Any:
    resp = jsonify({"error": code, "message": message})
    resp.status_code = status
    resp.headers.update(headers)
    return resp


class RateLimiter:
    """Token bucket per (client, bucket); old idle entries are dropped so memory stays bounded."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst, self.per_s = burst, per_s
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, bucket: str) -> float:
        """0 if allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 10_000:
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            tokens, then = self._buckets.get((client, bucket), (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
            if tokens < 1:
                self._buckets[(client, bucket)] = (tokens, now)
                return (1 - tokens) / self.per_s
            self._buckets[(client, bucket)] = (tokens - 1, now)
            return 0.0


def _token_fingerprint(token: str) -> str:
    # Stored in the session instead of the token; changing the token logs everyone out.
    return hashlib.sha256(b"ltp-panel:" + token.encode()).hexdigest()[:32]


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _bearer_ok() -> bool:
    token = settings().token
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def authenticated() -> bool:
    s = settings()
    if not s.require_auth:
        return True
    if _bearer_ok():
        return True
    return hmac.compare_digest(str(session.get("auth", "")), _token_fingerprint(s.token))


def _from_browser() -> bool:
    return bool(request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
                or request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site"))


def _csrf_ok(submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted and hmac.compare_digest(submitted.encode(), expected.encode()))


def _origin_ok() -> bool:
    origin = request.headers.get("Origin")
    return not origin or urlsplit(origin).netloc == request.host


def _rate_limited(bucket: str) -> Any:
    wait = current_app.extensions["ltp_ratelimit"].allow(request.remote_addr or "?", bucket)
    if wait:
        return _error(429, "rate_limited", f"too many requests; retry in {wait:.1f} s", **{"Retry-After": str(int(wait) + 1)})
    return None


def mutating(view: Callable[..., Any]) -> Callable[..., Any]:
    """Guard for POST endpoints that change something: auth, then CSRF, then rate limit."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticated():
            return _error(401, "unauthorized", "a token is required: Authorization: Bearer <LTP_PANEL_TOKEN>, or log in",
                          **{"WWW-Authenticate": 'Bearer realm="ltp"'})
        if not _bearer_ok() and _from_browser():
            if not _origin_ok():
                return _error(403, "bad_origin", "cross-origin request refused")
            if not _csrf_ok(request.headers.get(CSRF_HEADER)):
                return _error(403, "csrf", f"missing or wrong {CSRF_HEADER} header; reload the page")
        limited = _rate_limited("mutate")
        return limited or view(*args, **kwargs)

    return wrapper


def login_required_json(view: Callable[..., Any]) -> Callable[..., Any]:
    """For reads that may expose more than figures (logs)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticated():
            return _error(401, "unauthorized", "log in or send Authorization: Bearer <LTP_PANEL_TOKEN>",
                          **{"WWW-Authenticate": 'Bearer realm="ltp"'})
        return view(*args, **kwargs)

    return wrapper


@auth.before_app_request
def _check_host() -> Any:
    if settings().loopback:
        if not is_loopback(urlsplit("//" + (request.host or "")).hostname or ""):
            return _error(400, "bad_host", f"this panel only answers to loopback host names, not {request.host!r}")
    return None


@auth.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "auth_required": settings().require_auth}


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if not settings().require_auth:
        return redirect(url_for("ui.index"))
    error = ""
    if request.method == "POST":
        limited = _rate_limited("login")
        if limited:
            return limited
        if not _csrf_ok(request.form.get("csrf_token")):
            error, status = "The form expired; try again.", 403
        elif hmac.compare_digest(request.form.get("token", "").encode(), settings().token.encode()):
            session.clear()
            session["auth"] = _token_fingerprint(settings().token)
            csrf_token()  # a fresh CSRF token for the new session
            return redirect(url_for("ui.index"))
        else:
            error, status = "Wrong token.", 401
        return render_template("login.html", error=error), status
    return render_template("login.html", error=error)


@auth.post("/logout")
def logout() -> Any:
    if not _csrf_ok(request.form.get("csrf_token")):
        return _error(403, "csrf", "missing or wrong CSRF token")
    session.clear()
    return redirect(url_for("auth.login"))
