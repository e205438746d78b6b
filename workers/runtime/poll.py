"""REST polling: one requests.Session, timeouts, and backoff that respects 429 Retry-After.

Used for REST-only feeds and for instrument discovery (option chains).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily below: feeds without REST save its ~6 MB of RSS
    import requests

from .backoff import Backoff
from .stats import FeedStats

log = logging.getLogger(__name__)


class RestError(Exception):
    """A REST answer that can't be used; `retry_after` is the server's wait hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def get_json(session: requests.Session, url: str, params: dict | None = None, timeout: float = 10.0) -> Any:
    """GET and decode JSON; every failure becomes a RestError with a short reason (see request_json)."""
    return request_json(session, "GET", url, params=params, timeout=timeout)


def post_json(session: requests.Session, url: str, body: Any, timeout: float = 10.0) -> Any:
    """POST a JSON body and decode the JSON answer (Hyperliquid's /info), failures as get_json's."""
    return request_json(session, "POST", url, body=body, timeout=timeout)


def request_json(session: requests.Session, method: str, url: str, *, params: dict | None = None, body: Any = None,
                 timeout: float = 10.0) -> Any:
    """One request, its JSON answer or a RestError.

    A failed request keeps its cause in the words WebSocket connections use (`connection refused`,
    `DNS: name not known`, `timed out`, `certificate verify failed — set ... to your CA bundle`)."""
    import requests

    try:
        resp = session.request(method, url, params=params, json=body, timeout=timeout)
    except requests.RequestException as exc:
        from .ws import connection_error_text  # only on failure: REST-only code paths skip websocket-client

        raise RestError(f"{method} {url} failed: {connection_error_text(exc)}") from None
    if resp.status_code == 429:
        raise RestError(f"{method} {url}: 429 rate limited", _retry_after(resp.headers.get("Retry-After")))
    if resp.status_code >= 400:
        raise RestError(f"{method} {url}: HTTP {resp.status_code}", _retry_after(resp.headers.get("Retry-After")))
    try:
        return resp.json()
    except ValueError:
        raise RestError(f"{method} {url}: answer is not JSON ({resp.text[:80]!r})") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class RestPoller:
    """Call `poll(session)` every `interval` seconds on a thread; back off on errors."""

    def __init__(
        self,
        name: str,
        poll: Callable[[requests.Session], None],
        interval: float,
        stats: FeedStats,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.poll = poll
        self.interval = interval
        self.stats = stats
        self.backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        import requests

        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ltp-market-data/1"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        wait = 0.0  # the first poll runs at once: discovery gates every subscription
        while not self._stop.wait(wait):
            try:
                self.poll(self.session)
            except RestError as exc:
                delay = self.backoff.next_delay()
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                self.stats.error("rest_error", f"{exc}; retrying in {delay:.1f}s", parse=False)
                wait = delay
                continue
            except Exception as exc:  # noqa: BLE001 - the poller must outlive any bad answer
                delay = self.backoff.next_delay()
                self.stats.error("poll_bug", f"{self.name}: {exc!r}; retrying in {delay:.1f}s", parse=False)
                wait = delay
                continue
            self.backoff.reset()
            wait = self.interval
