"""The REST calls an exchange's wiring makes in one discovery or poll round.

Exchange modules get a `Rest` from the runtime (FeedContext.discovered / FeedContext.poller) and never
import the HTTP client themselves, so a protocol module stays free of urllib3. A reply that the given
parser refuses (ParseError) becomes a RestError (poll.get_parsed / post_parsed, the one place that
does): counted, retried with backoff, nothing written from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .paging import Page, fetch_pages
from .poll import RestSession, get_json, get_parsed, post_parsed

T = TypeVar("T")


class Rest:
    def __init__(self, session: RestSession) -> None:
        self.session = session

    def get(self, url: str, params: dict | None = None) -> Any:
        """The decoded JSON answer of a GET."""
        return get_json(self.session, url, params)

    def get_parsed(self, url: str, params: dict | None, parse: Callable[[Any], T]) -> T:
        """A GET's answer through `parse`; an answer `parse` refuses is a RestError."""
        return get_parsed(self.session, url, params, parse=parse)

    def post_parsed(self, url: str, body: Any, parse: Callable[[Any], T]) -> T:
        """A POST's answer through `parse`; an answer `parse` refuses is a RestError."""
        return post_parsed(self.session, url, body, parse=parse)

    def pages(self, url: str, params: dict[str, Any], page: Page, cursor_param: str) -> list[dict]:
        """Every row of a cursor-paged endpoint (see paging.fetch_pages)."""
        return fetch_pages(self.session, url, params, page, cursor_param)

