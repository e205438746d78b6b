"""Trader's views: the cross-exchange comparison and the option chains, as pages and JSON.

Pages: /compare and /chain (vanilla JS in static/, inline SVG, no CDN).
JSON: /api/compare, /api/compare/<underlying>, /api/chain/<feed>.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request, url_for

from .auth import authenticated
from .chain import ListingCache, chain, chain_feeds
from .compare import CompareError, CompareSettings, compare
from .deps import get_config, get_redis
from .errors import json_error

trader = Blueprint("trader", __name__)
_KEY = "ltp_trader"
_LISTING_KEY = "ltp_trader_listing"


def init_trader_views(app: Flask, settings: CompareSettings | None = None) -> None:
    """Register the pages and endpoints; settings default to LTP_COMPARE_USDTINR / LTP_COMPARE_REFERENCE."""
    app.extensions[_KEY] = settings or CompareSettings.from_env()
    app.extensions[_LISTING_KEY] = ListingCache()  # per app: tests run several against different Redis servers
    app.register_blueprint(trader)


def get_compare_settings() -> CompareSettings:
    return current_app.extensions[_KEY]


def set_compare_settings(app: Flask, settings: CompareSettings) -> None:
    """For tests and embedding: change the rate source or reference of a built app."""
    app.extensions[_KEY] = settings


@trader.errorhandler(CompareError)
def _compare_error(exc: CompareError) -> Any:
    return json_error(exc.status, exc.code, exc.message, **exc.extra)


@trader.errorhandler(redis.RedisError)
def _redis_error(exc: redis.RedisError) -> Any:
    return json_error(503, "redis_unavailable", f"Redis is not reachable: {exc}")


def _settings() -> CompareSettings:
    return get_compare_settings().with_query(request.args)


@trader.get("/api/compare")
def compare_all() -> Any:
    return jsonify(compare(get_redis(), get_config(), _settings()))


@trader.get("/api/compare/<underlying>")
def compare_one(underlying: str) -> Any:
    return jsonify(compare(get_redis(), get_config(), _settings(), only=underlying))


@trader.get("/api/chain/<feed>")
def option_chain(feed: str) -> Any:
    return jsonify(chain(get_redis(), get_config(), feed, request.args, current_app.extensions[_LISTING_KEY]))


@trader.get("/compare")
def compare_page() -> Any:
    if not authenticated():
        return redirect(url_for("auth.login"))
    return render_template("compare.html")


@trader.get("/chain")
def chain_page() -> Any:
    if not authenticated():
        return redirect(url_for("auth.login"))
    return render_template("chain.html", feeds=chain_feeds(get_config()))
