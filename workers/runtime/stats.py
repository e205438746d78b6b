"""Counters one feed process keeps about itself, and throttled error logging."""

from __future__ import annotations

import logging
import time

CONNECTING = "connecting"
SUBSCRIBED = "subscribed"
RECONNECTING = "reconnecting"
STOPPED = "stopped"
CONFIG_ERROR = "config_error"  # the feed refused to start: exchanges.yaml has a bad value
LOG_FIRST_N = 20  # rejections named in one log line; the rest counted


class FeedStats:
    """Plain attributes written by the feed threads, read by the status reporter.

    Single attribute writes are atomic under the GIL; exact cross-counter
    consistency is not needed for monitoring.
    """

    def __init__(self, service_id: str, symbols: list[str] | tuple[str, ...] = (), log: logging.Logger | None = None) -> None:
        self.service_id = service_id
        self.state = CONNECTING
        self.started_at = time.time()
        self.last_message_at = 0.0
        self.messages_total = 0
        self.parse_errors = 0
        self.reconnects = 0
        self.redis_errors = 0
        self.writes_total = 0
        self.last_error = ""
        self.symbols: list[str] = list(symbols)
        self.rejected: dict[str, str] = {}  # symbol/topic -> reason given by the exchange
        self.no_data: list[str] = []  # configured symbols that got no data within stale_after of subscribing
        self.errors_by_kind: dict[str, int] = {}
        self._log = log or logging.getLogger(service_id)
        self._last_logged: dict[str, float] = {}

    def error(self, kind: str, detail: str = "", *, parse: bool = True) -> None:
        """Count an error; log the first of each kind, then at most once a minute per kind."""
        if parse:
            self.parse_errors += 1
        count = self.errors_by_kind.get(kind, 0) + 1
        self.errors_by_kind[kind] = count
        self.last_error = f"{kind}: {detail}"[:300] if detail else kind
        now = time.monotonic()
        last = self._last_logged.get(kind)
        if last is None or now - last >= 60.0:
            self._last_logged[kind] = now
            suffix = f" ({count} so far; further ones logged at most once a minute)" if count > 1 else ""
            self._log.warning("%s: %s%s", kind, detail[:300], suffix)

    def report_no_data(self, symbols: list[str], grace: float) -> None:
        """Configured symbols without any data `grace` seconds after subscribing: counted once each
        (error kind `no_data`), logged once, kept in the status hash's `no_data` until data comes."""
        self.errors_by_kind["no_data"] = self.errors_by_kind.get("no_data", 0) + len(symbols)
        listed = ", ".join(symbols[:20]) + ("..." if len(symbols) > 20 else "")
        why = f"no data within {grace:g}s of subscribing (not listed by the exchange, or a subscription it ignored)"
        self.last_error = f"no_data: {listed}: {why}"[:300]
        self._log.error("%d symbol(s) got %s: %s", len(symbols), why, listed)

    def reject(self, what: str, reason: str) -> None:
        """The exchange refused a symbol or topic: report it once, keep it in the status hash."""
        self.reject_many([what], reason)

    def reject_many(self, items: list[str] | tuple[str, ...], reason: str) -> None:
        """Several refused at once: one log line (count + the first `LOG_FIRST_N`), each kept in `rejected`."""
        new = [w for w in items if w not in self.rejected]
        for what in items:
            self.rejected[what] = reason
        if new:
            listed = ", ".join(new[:LOG_FIRST_N]) + (f" and {len(new) - LOG_FIRST_N} more" if len(new) > LOG_FIRST_N else "")
            if len(new) == 1:
                self._log.error("exchange rejected %s: %s", listed, reason)
            else:
                self._log.error("exchange rejected %d: %s: %s", len(new), listed, reason)
        if items:
            more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
            self.last_error = f"rejected {items[0]}{more}: {reason}"[:300]
