"""REST replies: one cursor-paging loop.

Each exchange module gives a pure `page(body) -> (rows, next_cursor)` that raises ParseError
for an envelope that says "error" (`exchanges.common.unwrap`); the loop here follows the cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .poll import RestError, RestSession, get_parsed

MAX_PAGES = 200  # a cursor that never ends must not hang discovery

Page = Callable[[Any], tuple[list[dict], str | None]]


def fetch_pages(
    session: RestSession,
    url: str,
    params: dict[str, Any],
    page: Page,
    cursor_param: str,
    *,
    max_pages: int = MAX_PAGES,
) -> list[dict]:
    """Every row of a cursor-paged endpoint; a repeated cursor ends the walk, too many pages is an error."""
    params = dict(params)
    rows: list[dict] = []
    seen: set[str] = set()
    for _ in range(max_pages):
        page_rows, cursor = get_parsed(session, url, params, parse=page)
        rows.extend(page_rows)
        if not cursor or cursor in seen:
            return rows
        seen.add(cursor)
        params[cursor_param] = cursor
    raise RestError(f"GET {url}: more than {max_pages} pages")
