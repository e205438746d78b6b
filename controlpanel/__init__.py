"""ltp control panel: Flask application factory."""

from __future__ import annotations

from flask import Flask, Response

from workers.runtime.config import Config, load_config
from workers.runtime.sink import redis_client

from .settings import InsecureBindError, PanelSettings

__all__ = ["InsecureBindError", "PanelSettings", "create_app"]


def create_app(config: Config | None = None, supervisor_url: str | None = None, *,
               settings: PanelSettings | None = None) -> Flask:
    """Build the panel. `settings` defaults to the environment (LTP_PANEL_HOST, LTP_PANEL_TOKEN, ...).

    Raises InsecureBindError for a non-loopback host without a token, so no
    entry point can serve an open control API on the network.
    """
    from .api import api
    from .auth import RateLimiter, auth
    from .control import ControlWatcher
    from .metrics import init_metrics
    from .supervisor_client import SupervisorClient
    from .ui import ui

    settings = settings or PanelSettings.from_env()
    settings.check()
    config = config or load_config()

    app = Flask(__name__)
    app.config.update(
        LTP=config,
        SUPERVISOR_URL=supervisor_url,
        PANEL=settings,
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="ltp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookie,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.extensions["ltp_redis"] = redis_client(config.redis_url)
    app.extensions["ltp_supervisor"] = SupervisorClient(supervisor_url)
    app.extensions["ltp_ratelimit"] = RateLimiter(settings.rate_burst, settings.rate_per_s)
    app.register_blueprint(auth)
    app.register_blueprint(api)
    app.register_blueprint(ui)
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

    if settings.watch_control:
        watcher = ControlWatcher(config, app.extensions["ltp_redis"], app.extensions["ltp_supervisor"])
        app.extensions["ltp_control"] = watcher
        watcher.start()
    return app
