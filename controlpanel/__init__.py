"""ltp control panel: Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider

from workers.runtime.config import Config, ConfigError, load_config

from .settings import InsecureBindError, PanelSettings

__all__ = ["InsecureBindError", "PanelSettings", "create_app"]

MAX_REQUEST_BYTES = 64 * 1024  # the panel takes no uploads: a login form is the largest body


class _OrderedJSON(DefaultJSONProvider):
    sort_keys = False  # keep the order the API builds (services as configured, id first)


def create_app(config: Config | None = None, supervisor_url: str | None = None, *,
               settings: PanelSettings | None = None) -> Flask:
    """Build the panel. `settings` defaults to the environment (LTP_PANEL_HOST, LTP_PANEL_TOKEN, ...).

    Raises InsecureBindError for a non-loopback host without a token, so no
    entry point can serve an open control API on the network. Starts no
    threads: the entry point (__main__) serves the app and runs the control watcher.
    """
    from . import deps
    from .api import api
    from .auth import auth, csrf
    from .errors import init_errors
    from .metrics import init_metrics
    from .ui import ui
    from .views import init_trader_views

    settings = settings or PanelSettings.from_env()
    settings.check()
    if config is None:
        try:
            config = load_config()
        except ConfigError as exc:  # serve anyway: the panel is where the user reads what is wrong
            logging.getLogger(__name__).error("%s", exc)
            config = Config.unusable(exc)

    app = Flask(__name__)
    app.json = _OrderedJSON(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="ltp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookie,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # The dashboard stays open for days; its token lives as long as the session, not an hour.
        WTF_CSRF_TIME_LIMIT=None,
        # Loopback has its own Host check (auth.py); off loopback an operator may list the panel's names.
        TRUSTED_HOSTS=list(settings.trusted_hosts) if settings.trusted_hosts and not settings.loopback else None,
    )
    deps.init_app(app, deps.build(config, settings, supervisor_url))
    init_errors(app)
    app.register_blueprint(auth)
    csrf.init_app(app)  # after auth: its Host check runs before the CSRF check
    app.register_blueprint(api)
    app.register_blueprint(ui)
    init_trader_views(app)  # trader's views: /compare, /chain and their JSON (views.py)
    init_metrics(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        return response

    return app
