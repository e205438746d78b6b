"""The dashboard page (vanilla JS in static/, no build step) and its login redirect."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for

from workers import registry

from .auth import authenticated
from .deps import get_config

ui = Blueprint("ui", __name__)


@ui.get("/")
def index() -> Any:
    if not authenticated():
        return redirect(url_for("auth.login"))
    config = get_config()
    exchanges: dict[str, list[str]] = {}
    for svc in config.services.values():
        exchanges.setdefault(svc.exchange, []).append(svc.service_id)
    # Card titles as each exchange writes its name (its declaration), not the config key.
    names = {ex: registry.exchange(ex).display for ex in exchanges}
    return render_template("index.html", exchanges=exchanges, names=names)
