"""ltp control panel: Flask application factory."""

from __future__ import annotations

from flask import Flask

from workers.runtime.config import Config, load_config


def create_app(config: Config | None = None, supervisor_url: str | None = None) -> Flask:
    from .api import api

    app = Flask(__name__)
    app.config["LTP"] = config or load_config()
    app.config["SUPERVISOR_URL"] = supervisor_url
    app.register_blueprint(api)
    return app
