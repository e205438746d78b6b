"""Who may change things: bearer token or login session, CSRF (Flask-WTF) on browser POSTs, rate limits, Host check.

Rules:
- Off loopback (or whenever a token is set) a mutation needs `Authorization: Bearer <token>`
  or a session cookie obtained through /login.
- A request that looks like it comes from a browser (session cookie, Origin or
  Sec-Fetch-Site header) must also carry the session's CSRF token, even on
  loopback: otherwise any web page could POST to 127.0.0.1:8080. Bearer-token
  calls and scripts with no cookie carry no ambient credential and need none.
  Forms (login, logout) are checked by CSRFProtect before their view runs.
- On loopback the Host header must name loopback, which defeats DNS rebinding.
  Flask's TRUSTED_HOSTS cannot say that: werkzeug 3.1 compares a trusted entry
  only up to its first ':', so `[::1]` can never match. Off loopback,
  LTP_PANEL_TRUSTED_HOSTS goes to TRUSTED_HOSTS (see create_app).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]  # no py.typed

from .deps import get_ratelimit, get_settings
from .errors import json_error
from .settings import is_loopback

auth = Blueprint("auth", __name__)
csrf = CSRFProtect()

CSRF_HEADER = "X-CSRF-Token"
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ltp"'}


def _token_fingerprint(token: str) -> str:
    # Stored in the session instead of the token; changing the token logs everyone out.
    return hashlib.sha256(b"ltp-panel:" + token.encode()).hexdigest()[:32]


def _bearer_ok() -> bool:
    token = get_settings().token
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def authenticated() -> bool:
    s = get_settings()
    if not s.require_auth:
        return True
    if _bearer_ok():
        return True
    return hmac.compare_digest(str(session.get("auth", "")), _token_fingerprint(s.token))


def _unauthorized(message: str) -> Any:
    """401 with the bearer challenge, for a request without a valid token or login session."""
    return json_error(401, "unauthorized", message, headers=_BEARER_CHALLENGE)


def _from_browser() -> bool:
    return bool(request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
                or request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site"))


def _origin_ok() -> bool:
    origin = request.headers.get("Origin")
    return not origin or urlsplit(origin).netloc == request.host


def _rate_limited(bucket: str) -> Any:
    wait = get_ratelimit().allow(request.remote_addr or "?", bucket)
    if wait:
        return json_error(429, "rate_limited", f"too many requests; retry in {wait:.1f} s", headers={"Retry-After": str(int(wait) + 1)})
    return None


def mutating(view: Callable[..., Any]) -> Callable[..., Any]:
    """Guard for POST endpoints that change something: auth, then CSRF for browsers, then rate limit."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticated():
            return _unauthorized("a token is required: Authorization: Bearer <LTP_PANEL_TOKEN>, or log in")
        if not _bearer_ok() and _from_browser():
            if not _origin_ok():
                return json_error(403, "bad_origin", "cross-origin request refused")
            csrf.protect()  # raises CSRFError -> 403
        return _rate_limited("mutate") or view(*args, **kwargs)

    # CSRF is checked above, after auth (401 before 403) and only where a browser is involved.
    return csrf.exempt(wrapper)


def login_required_json(view: Callable[..., Any]) -> Callable[..., Any]:
    """For reads that may expose more than figures (logs)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticated():
            return _unauthorized("log in or send Authorization: Bearer <LTP_PANEL_TOKEN>")
        return view(*args, **kwargs)

    return wrapper


@auth.before_app_request
def _check_host() -> Any:
    if get_settings().loopback:
        if not is_loopback(urlsplit("//" + (request.host or "")).hostname or ""):
            return json_error(400, "bad_host", f"this panel only answers to loopback host names, not {request.host[:100]!r}")
    return None


@auth.app_errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError) -> Any:
    if request.endpoint == "auth.login":
        return render_template("login.html", error="The form expired; try again."), 403
    return json_error(403, "csrf", f"missing or wrong CSRF token ({exc.description}): send the page's {CSRF_HEADER} "
                                   "header; reload the page")


@auth.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"auth_required": get_settings().require_auth}


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    s = get_settings()
    if not s.require_auth:
        return redirect(url_for("ui.index"))
    if request.method == "GET":
        return render_template("login.html", error="")
    # CSRFProtect has checked the form's token before this runs.
    limited = _rate_limited("login")
    if limited:
        return limited
    if not hmac.compare_digest(request.form.get("token", "").encode(), s.token.encode()):
        return render_template("login.html", error="Wrong token."), 401
    session.clear()  # a fresh session (and CSRF token) after login
    session["auth"] = _token_fingerprint(s.token)
    return redirect(url_for("ui.index"))


@auth.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
