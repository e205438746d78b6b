"""REST polling: one keep-alive HTTP(S) session per feed (urllib3), timeouts, and backoff that respects 429 Retry-After.

Used for REST-only feeds and for instrument discovery (option chains).

`RestSession` is urllib3 (requests' own core) without requests: requests and its imports
(charset_normalizer, idna, certifi, http.cookiejar) cost each REST feed ~2.5 MB PSS for one
GET/POST helper. What requests gave the feeds is kept here: a keep-alive pool per feed,
connect and read timeouts, redirects followed (at most MAX_REDIRECTS, methods rewritten as
requests does), TLS verified against the system CA store (OpenSSL's default paths, so
SSL_CERT_FILE / SSL_CERT_DIR apply) or the bundle in REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, and
HTTP(S) proxies from the environment (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, NO_PROXY) as
urllib reads them. No automatic retries: a failure is one RestError and the poller backs off.

Exchange protocol modules read replies without knowing about HTTP: a reply they can't use raises
ParseError. `get_parsed`/`post_parsed` are the one place that turns it into a RestError (counted as
`rest_error`, retried with backoff; the caller writes nothing from that reply).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

if TYPE_CHECKING:  # imported lazily (RestSession): feeds without REST save its ~1.3 MB of RSS
    import urllib3

from .backoff import Backoff
from .model import ParseError, RestError
from .stats import FeedStats

log = logging.getLogger(__name__)

USER_AGENT = "ltp-market-data/1"
MAX_REDIRECTS = 10
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # requests' names, read the same way (first set wins)
_REDIRECTS = {301, 302, 303, 307, 308}
T = TypeVar("T")


class RestSession:
    """One feed's HTTP(S) client: a urllib3 pool per route (direct, or per proxy) kept alive between polls.

    Not shared between threads: each RestPoller has its own."""

    def __init__(self, user_agent: str = USER_AGENT, *, max_redirects: int = MAX_REDIRECTS) -> None:
        import urllib3  # lazily: the WebSocket-only feeds never load it

        self._urllib3 = urllib3
        self.headers: dict[str, str] = {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
        self.max_redirects = max_redirects
        self._tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        self._tls_error: str | None = None
        for var in CA_BUNDLE_VARS:
            if bundle := os.environ.get(var):
                if os.path.isdir(bundle):
                    self._tls["ca_cert_dir"] = bundle
                elif os.path.isfile(bundle):
                    self._tls["ca_certs"] = bundle
                else:
                    self._tls_error = f"CA bundle not found: {var}={bundle}"
                break
        # Neither set: urllib3 loads OpenSSL's default paths (the system store; SSL_CERT_FILE/SSL_CERT_DIR).
        self._direct: urllib3.PoolManager | None = None
        self._proxied: dict[str, urllib3.ProxyManager] = {}

    def _manager(self, url: str) -> urllib3.PoolManager:
        proxy = proxy_for(url)
        if proxy is None:
            if self._direct is None:
                self._direct = self._urllib3.PoolManager(num_pools=4, **self._tls)
            return self._direct
        manager = self._proxied.get(proxy)
        if manager is None:
            auth = urlsplit(proxy)
            headers = None
            if auth.username is not None:
                headers = self._urllib3.make_headers(
                    proxy_basic_auth=f"{unquote(auth.username)}:{unquote(auth.password or '')}")
            manager = self._proxied[proxy] = self._urllib3.ProxyManager(
                proxy, num_pools=4, proxy_headers=headers, **self._tls)
        return manager

    def request(self, method: str, url: str, *, params: dict | None = None, body: Any = None,
                timeout: float = 10.0) -> urllib3.BaseHTTPResponse:
        """One request and its answer (any status), redirects followed; urllib3's exceptions on failure."""
        url = with_params(url, params)
        headers = dict(self.headers)
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        limit = self._urllib3.Timeout(connect=timeout, read=timeout)
        for _ in range(self.max_redirects + 1):
            if self._tls_error is not None and url[:6].lower() == "https:":
                raise RestError(self._tls_error)
            resp = self._manager(url).urlopen(method, url, body=data, headers=headers, timeout=limit,
                                             retries=False, redirect=False)
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location:
                return resp
            url = urljoin(url, location)
            # As requests (and browsers) do: 303 becomes GET, so do 302 and a POST's 301; 307/308 keep all.
            if method != "HEAD" and (resp.status in (302, 303) or (resp.status == 301 and method == "POST")):
                method, data = "GET", None
                headers.pop("Content-Type", None)
        raise RestError(f"too many redirects (more than {self.max_redirects})")

    def close(self) -> None:
        for manager in [self._direct, *self._proxied.values()]:
            if manager is not None:
                manager.clear()
        self._direct, self._proxied = None, {}

    def __enter__(self) -> RestSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_params(url: str, params: dict | None) -> str:
    """`url` with `params` added to its query, encoded as requests does (None dropped, lists repeated)."""
    extra = urlencode([(k, v) for k, v in (params or {}).items() if v is not None], doseq=True)
    if not extra:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (urllib's reading of *_PROXY and NO_PROXY), or None."""
    if not any(name[-6:].lower() == "_proxy" for name in os.environ):  # urllib reads no other names
        return None  # and urllib.request stays unimported (~0.2 MB per feed)
    from urllib.request import getproxies, proxy_bypass

    proxies = getproxies()
    if not proxies:
        return None
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    if not proxy or not parts.hostname:
        return None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"  # requests' reading of a bare host:port


def get_json(session: RestSession, url: str, params: dict | None = None, timeout: float = 10.0) -> Any:
    """GET and decode JSON; every failure becomes a RestError with a short reason (see request_json)."""
    return request_json(session, "GET", url, params=params, timeout=timeout)


def post_json(session: RestSession, url: str, body: Any, timeout: float = 10.0) -> Any:
    """POST a JSON body and decode the JSON answer (Hyperliquid's /info), failures as get_json's."""
    return request_json(session, "POST", url, body=body, timeout=timeout)


def get_parsed(session: RestSession, url: str, params: dict | None = None, *, parse: Callable[[Any], T],
               timeout: float = 10.0) -> T:
    """GET, decode JSON and `parse` it (a protocol module's reader); a reply it refuses with ParseError
    is a RestError, as every other failure of the request."""
    return _parsed("GET", url, parse, request_json(session, "GET", url, params=params, timeout=timeout))


def post_parsed(session: RestSession, url: str, body: Any, *, parse: Callable[[Any], T], timeout: float = 10.0) -> T:
    """POST a JSON body, decode the JSON answer and `parse` it; failures as get_parsed's."""
    return _parsed("POST", url, parse, request_json(session, "POST", url, body=body, timeout=timeout))


def _parsed(method: str, url: str, parse: Callable[[Any], T], reply: Any) -> T:
    try:
        return parse(reply)
    except ParseError as exc:
        raise RestError(f"{method} {url}: unusable answer ({exc.kind}: {exc.detail[:120]})") from None


def request_json(session: RestSession, method: str, url: str, *, params: dict | None = None, body: Any = None,
                 timeout: float = 10.0) -> Any:
    """One request, its JSON answer or a RestError.

    A failed request keeps its cause in the words WebSocket connections use (`connection refused`,
    `DNS: name not known`, `timed out`, `certificate verify failed — set ... to your CA bundle`)."""
    from urllib3.exceptions import HTTPError  # loaded already: the session imported urllib3

    try:
        resp = session.request(method, url, params=params, body=body, timeout=timeout)
    except RestError as exc:  # too many redirects, a CA bundle that is not there
        raise RestError(f"{method} {url} failed: {exc}") from None
    except (HTTPError, OSError) as exc:  # every urllib3 failure (refused, DNS, timeout, TLS, proxy, bad URL)
        from .ws import connection_error_text  # only on failure: REST-only code paths skip websocket-client

        raise RestError(f"{method} {url} failed: {connection_error_text(exc)}") from None
    if resp.status == 429:
        raise RestError(f"{method} {url}: 429 rate limited", _retry_after(resp.headers.get("Retry-After")))
    if resp.status >= 400:
        raise RestError(f"{method} {url}: HTTP {resp.status}", _retry_after(resp.headers.get("Retry-After")))
    try:
        return json.loads(resp.data)
    except ValueError:
        raise RestError(f"{method} {url}: answer is not JSON ({resp.data[:80].decode('utf-8', 'replace')!r})") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class RestPoller:
    """Call `poll(session)` every `interval` seconds on a thread; back off on errors."""

    discovers_symbols = False  # a Source of the configured symbols (feed.Source)

    def __init__(
        self,
        name: str,
        poll: Callable[[RestSession], None],
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
        self.session = RestSession()
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
