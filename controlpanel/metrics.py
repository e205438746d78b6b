"""/metrics: per-feed figures read at scrape time from the same snapshot as /api/status, plus panel request counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import deps
from .health import evaluate
from .snapshot import collect

metrics = Blueprint("metrics", __name__)


class FeedCollector:
    """Builds feed metrics on demand, so nothing is cached that could go stale between scrapes."""

    def __init__(self, d: deps.Deps) -> None:
        self.deps = d

    def collect(self) -> Iterator[Metric]:
        snap = collect(self.deps.config, self.deps.redis, self.deps.supervisor)
        label = ["service", "exchange"]
        fams: dict[str, Any] = {
            "messages": CounterMetricFamily("ltp_feed_messages", "Frames received from the exchange", labels=label),
            "reconnects": CounterMetricFamily("ltp_feed_reconnects", "Reconnects since the feed started", labels=label),
            "restarts": CounterMetricFamily("ltp_feed_restarts", "Process starts nobody asked for (supervisord after a crash)",
                                            labels=label),
            "operator_starts": CounterMetricFamily("ltp_feed_operator_starts", "Starts and restarts asked for through the panel",
                                                   labels=label),
            "parse_errors": CounterMetricFamily("ltp_feed_parse_errors", "Frames that could not be parsed", labels=label),
            "redis_errors": CounterMetricFamily("ltp_feed_redis_errors", "Failed Redis writes", labels=label),
            "age": GaugeMetricFamily("ltp_feed_last_update_age_seconds", "Seconds since the newest data", labels=label),
            "points": GaugeMetricFamily("ltp_feed_data_points", "Instrument keys under the feed's prefix", labels=label),
            "rate": GaugeMetricFamily("ltp_feed_messages_per_second", "Recent message rate", labels=label),
            "up": GaugeMetricFamily("ltp_feed_running", "1 if supervisord reports the program RUNNING", labels=label),
            "stale": GaugeMetricFamily("ltp_feed_stale", "1 if the feed's data is not current (no update within stale_after, "
                                       "none since start after the grace, or the feed is not running)", labels=label),
            "delivering": GaugeMetricFamily("ltp_feed_delivering", "1 if running and its data is current", labels=label),
            "problems": GaugeMetricFamily("ltp_feed_problems", "Reasons the feed is not delivering (see /api/health)", labels=label),
        }
        for s in snap["services"]:
            lv = [s["id"], s["exchange"]]
            fams["messages"].add_metric(lv, s["messages_total"])
            fams["reconnects"].add_metric(lv, s["reconnects"])
            fams["restarts"].add_metric(lv, s["restarts"])
            fams["parse_errors"].add_metric(lv, s["parse_errors"])
            fams["redis_errors"].add_metric(lv, s["redis_errors"])
            if s["last_update_age_s"] is not None:
                fams["age"].add_metric(lv, s["last_update_age_s"])
            fams["points"].add_metric(lv, s["data_points"])
            fams["rate"].add_metric(lv, s["messages_per_s"])
            fams["up"].add_metric(lv, 1 if s["process_state"] == "RUNNING" else 0)
            fams["stale"].add_metric(lv, 1 if s["stale"] else 0)
            fams["operator_starts"].add_metric(lv, s["operator_starts"])
            fams["delivering"].add_metric(lv, 1 if s["delivering"] else 0)
            fams["problems"].add_metric(lv, len(s["problems"]))
        yield from fams.values()
        health = GaugeMetricFamily("ltp_health", "1 for the panel's current health status (/api/health)", labels=["status"])
        current = evaluate(snap)["status"]
        for name in ("healthy", "degraded", "unhealthy"):
            health.add_metric([name], 1 if current == name else 0)
        yield health
        yield GaugeMetricFamily("ltp_redis_up", "1 if Redis answered", value=1 if snap["redis"]["ok"] else 0)
        yield GaugeMetricFamily("ltp_supervisor_up", "1 if every supervisord node answered",
                                value=1 if snap["supervisor"]["ok"] else 0)
        node_up = GaugeMetricFamily("ltp_supervisor_node_up", "1 if this supervisord node answered", labels=["node"])
        for node in snap.get("nodes", []):
            node_up.add_metric([node["name"]], 1 if node["ok"] else 0)
        yield node_up


def init_metrics(app: Flask) -> None:
    d = deps.of(app)
    d.metrics.register(FeedCollector(d))
    requests_total = Counter("ltp_panel_requests", "Panel HTTP requests", ["method", "endpoint", "status"], registry=d.metrics)

    @app.after_request
    def _count(response: Response) -> Response:
        # The endpoint name, not the path, keeps label cardinality bounded.
        requests_total.labels(request.method, request.endpoint or "unmatched", str(response.status_code)).inc()
        return response

    app.register_blueprint(metrics)


@metrics.get("/metrics")
def scrape() -> Response:
    return Response(generate_latest(deps.get_metrics_registry()), mimetype=CONTENT_TYPE_LATEST)
