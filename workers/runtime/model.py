"""The values that flow from an exchange parser to the runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Update(NamedTuple):
    """The new state of one instrument: fields to merge into <prefix>:<symbol>."""

    symbol: str
    fields: Mapping[str, str | None]  # None deletes the field (e.g. a side of the book that emptied)
    event_ts_ms: int  # exchange event time, epoch milliseconds


class Control(NamedTuple):
    """A non-data frame the runtime should react to."""

    kind: str  # one of the constants below
    detail: str = ""
    items: tuple[str, ...] = ()  # SUB_REJECTED: the refused topics or symbols
    frames: tuple[str, ...] = ()  # frames to send back (a resubscribe, a resync)


SUBSCRIBED = "subscribed"      # subscription acknowledged
SUB_REJECTED = "sub_rejected"  # exchange refused a topic/symbol; detail says which
PONG = "pong"                  # heartbeat answer
IGNORED = "ignored"            # known frame with nothing to do
SEND = "send"                  # only send Control.frames (resync of one topic); counted as a resync
REPLY = "reply"                # only send Control.frames (a protocol handshake step or heartbeat answer)
RECONNECT = "reconnect"        # state can't be trusted: drop the connection
PLANNED_RECONNECT = "planned_reconnect"  # the server announced a close (shutdown notice): reconnect now, no error


class ParseError(Exception):
    """A frame that can't be used. `kind` groups errors for counting and log throttling."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class RestError(Exception):
    """A REST call that failed or an answer that can't be used; `retry_after` is the server's wait hint, if any.
    Here, not in the HTTP client's module: exchange wiring catches it without importing the client."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
