"""What an exchange module provides for one WebSocket connection: `WsStream` (pure: no I/O).

`ws.WsConnection` owns the socket and calls these from its two threads: `on_connect`, `parse` and
`resubscribe_frames` on the reader thread (they may change parser state), `ping_frame`,
`due_frames` and the `silence_timeout` window on the keepalive thread. Exchange streams subclass
it and override what their protocol needs; the defaults are a protocol without any of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Control, Update

# No data frame of any subscribed channel on a connection for this long: re-subscribe, and drop
# the connection after as long again (pongs are not data). The default of the per-feed `data_timeout`.
DEFAULT_DATA_TIMEOUT_S = 120.0


class WsStream:
    """One connection's protocol: URL, subscribe and heartbeat frames, and the frame parser."""

    name: str
    url: str
    ping_interval: float | None = None  # seconds between `ping_frame`s; None: the server drives the heartbeat
    binary_ok = False  # binary frames are data (else each is counted as an error and skipped)
    # Read on every watchdog tick: a protocol that learns its heartbeat window from the server
    # (socket.io's pingInterval + pingTimeout) sets it after connecting; None = the configured one.
    silence_timeout: float | None = None
    # Exchanges that cut every connection at a fixed age (Binance: 24 h) set a shorter one: the connection
    # is replaced before the cut, at once (a planned reconnect). None: no limit.
    max_connection_age_s: float | None = None
    # Whether `resubscribe_frames` can bring data back on the same connection after `data_timeout`;
    # without it the connection is dropped and made again at once.
    can_resubscribe = False

    def on_connect(self) -> list[str]:
        """Reset per-connection state; return the frames to send (subscribe requests)."""
        raise NotImplementedError

    def parse(self, raw: bytes) -> list[Update] | Control:
        """Turn a frame (UTF-8 text as bytes) into updates or a control event; raise ParseError for bad frames."""
        raise NotImplementedError

    def ping_frame(self) -> str | None:
        """The application-level heartbeat frame, or None if the exchange needs none."""
        return None

    def resubscribe_frames(self) -> list[str]:
        """Every subscription again on this connection, parser state fresh (with `can_resubscribe`)."""
        return []

    def due_frames(self) -> Sequence[str]:
        """Frames held back earlier (a re-subscribe limiter) that may go now; polled by the keepalive thread."""
        return ()
