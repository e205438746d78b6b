"""One WebSocket connection kept alive forever.

`WebSocketApp.run_forever` runs in the connection's thread; a second thread
sends the exchange's application-level ping and watches for silence. Every
(re)connect asks the stream for its subscribe frames, so subscriptions and
parser state (books, merged tickers) start clean on each connection.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Protocol

import websocket

from . import model
from .backoff import Backoff
from .model import Control, ParseError
from .sink import RedisSink
from .stats import CONNECTING, RECONNECTING, SUBSCRIBED, FeedStats

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
_BINARY = websocket.ABNF.OPCODE_BINARY


class WsStream(Protocol):
    """What an exchange module provides for one connection (pure: no I/O)."""

    name: str
    url: str
    ping_interval: float | None
    binary_ok: bool

    def on_connect(self) -> list[str]:
        """Reset per-connection state; return the frames to send (subscribe requests)."""

    def ping_frame(self) -> str | None:
        """The application-level heartbeat frame, or None if the exchange needs none."""

    def parse(self, raw: bytes) -> list[model.Update] | Control:
        """Turn a frame (UTF-8 text as bytes) into updates or a control event; raise ParseError for bad frames."""


class WsConnection:
    def __init__(
        self,
        stream: WsStream,
        sink: RedisSink,
        stats: FeedStats,
        *,
        silence_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        backoff: Backoff | None = None,
    ) -> None:
        self.stream = stream
        self.sink = sink
        self.stats = stats
        self.silence_timeout = silence_timeout
        self.connect_timeout = connect_timeout
        self.max_frame_bytes = max_frame_bytes
        self.backoff = backoff or Backoff()
        self.log = logging.getLogger(f"{stats.service_id}.{stream.name}")
        self._stopping = threading.Event()
        self._app: websocket.WebSocketApp | None = None
        self._ws: websocket.WebSocket | None = None  # this connection's socket, closed after each run
        self._connected = False
        self._got_data = False
        self._last_frame = time.monotonic()
        self._last_ping = 0.0
        self._close_reason = ""
        self._thread = threading.Thread(target=self._run, name=f"ws-{stream.name}", daemon=True)
        self._watch = threading.Thread(target=self._keepalive, name=f"keepalive-{stream.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._watch.start()

    def stop(self) -> None:
        """Close the socket promptly; `run_forever` returns and the thread ends."""
        self._stopping.set()
        app = self._app
        if app is not None:
            app.keep_running = False
            sock = app.sock
            if sock is not None:
                try:
                    sock.send_close()  # polite close frame, without waiting for the echo
                except Exception:  # noqa: BLE001 - already closed is fine
                    pass
                sock.abort()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- connection thread -----------------------------------------------------

    def _run(self) -> None:
        websocket.setdefaulttimeout(self.connect_timeout)
        first = True
        while not self._stopping.is_set():
            self.stats.state = CONNECTING if first else RECONNECTING
            self._got_data = False
            self._close_reason = ""
            self._app = websocket.WebSocketApp(
                self.stream.url,
                on_open=self._on_open,
                on_data=self._on_data,
                on_error=self._on_error,
                on_close=self._on_close,
            )
            try:
                self._app.run_forever(skip_utf8_validation=True)
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                self._close_reason = f"run_forever failed: {exc!r}"
            self._connected = False
            if self._ws is not None:
                # After a server-initiated close websocket-client leaves the fd to the garbage
                # collector; close it now so reconnect loops cannot pile up descriptors.
                self._ws.shutdown()
                self._ws = None
            if self._stopping.is_set():
                break
            first = False
            self.stats.reconnects += 1
            self.stats.state = RECONNECTING
            if self._got_data:
                self.backoff.reset()  # a healthy connection starts the backoff over
            delay = self.backoff.next_delay()
            self.log.warning(
                "disconnected from %s (%s); reconnecting in %.1fs",
                self.stream.url, self._close_reason or "closed", delay,
            )
            self._stopping.wait(delay)

    def _on_open(self, app: websocket.WebSocketApp) -> None:
        # The default timeout bounded the connect; kept on the open socket it would make every
        # recv a poll()+recv pair. Silence is the watchdog's job; SO_SNDTIMEO bounds a stuck send.
        self._ws = app.sock
        raw = app.sock.sock if app.sock is not None else None
        if raw is not None:
            raw.settimeout(None)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(self.connect_timeout), 0))
        self._connected = True
        self._last_frame = self._last_ping = time.monotonic()
        frames = self.stream.on_connect()
        self.log.info("connected to %s; sending %d subscribe request(s)", self.stream.url, len(frames))
        for frame in frames:
            app.send(frame)

    def _on_data(self, app: websocket.WebSocketApp, raw: bytes, opcode: int, _fin: bool) -> None:
        # With skip_utf8_validation text frames arrive as bytes too; the opcode tells them apart.
        self._last_frame = time.monotonic()
        stats = self.stats
        if len(raw) > self.max_frame_bytes:
            stats.error("oversized_frame", f"{len(raw)} bytes > cap {self.max_frame_bytes}")
            return
        if opcode == _BINARY and not self.stream.binary_ok:
            stats.error("binary_frame", f"{len(raw)} bytes")
            return
        try:
            result = self.stream.parse(raw)
        except ParseError as exc:
            stats.error(exc.kind, exc.detail or repr(raw[:200]))
            return
        except Exception as exc:  # noqa: BLE001 - a parser bug must not kill the feed
            stats.error("parser_bug", f"{exc!r} on {raw[:200]!r}")
            return
        if type(result) is list:
            if result:
                now = time.time()
                recv_ms = int(now * 1000)
                put = self.sink.put
                for upd in result:
                    put(upd.symbol, upd.fields, upd.event_ts_ms, recv_ms)
                stats.messages_total += 1
                stats.last_message_at = now
                if not self._got_data:
                    self._got_data = True
                    stats.state = SUBSCRIBED
            return
        self._on_control(app, result)

    def _on_control(self, app: websocket.WebSocketApp, ctl: Control) -> None:
        kind = ctl.kind
        if kind == model.SUBSCRIBED:
            self.stats.state = SUBSCRIBED
            self.log.info("subscribed: %s", ctl.detail)
        elif kind == model.SUB_REJECTED:
            for item in ctl.items:
                self.stats.reject(item, ctl.detail)
        elif kind == model.SEND:
            self.stats.error("resync", ctl.detail, parse=False)
        for frame in ctl.frames:
            app.send(frame)
        if kind == model.RECONNECT:
            self.stats.error("resync_reconnect", ctl.detail, parse=False)
            self._close_reason = f"resync: {ctl.detail}"
            self._abort()

    def _on_error(self, app: websocket.WebSocketApp, exc: Exception) -> None:
        self._close_reason = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
            self.stats.last_error = self._close_reason[:300]

    def _on_close(self, app: websocket.WebSocketApp, code: int | None, reason: str | None) -> None:
        if code and not self._close_reason:
            self._close_reason = f"close code {code} {reason or ''}".strip()

    def _abort(self) -> None:
        app = self._app
        sock = app.sock if app is not None else None
        if sock is not None:
            sock.abort()  # shutdown(2) wakes the reader thread at once

    # -- keepalive thread ------------------------------------------------------

    def _keepalive(self) -> None:
        interval = self.stream.ping_interval
        tick = min(0.25, self.silence_timeout / 4)
        while not self._stopping.wait(tick):
            if not self._connected:
                continue
            now = time.monotonic()
            if now - self._last_frame > self.silence_timeout:
                self._close_reason = f"no frame for {now - self._last_frame:.1f}s (silence timeout {self.silence_timeout:g}s)"
                self.stats.error("silence_timeout", self._close_reason, parse=False)
                self._connected = False
                self._abort()
                continue
            if interval and now - self._last_ping >= interval:
                self._last_ping = now
                frame = self.stream.ping_frame()
                app = self._app
                if frame and app is not None:
                    try:
                        app.send(frame)
                    except Exception as exc:  # noqa: BLE001 - the reader notices the dead socket
                        self.log.debug("ping failed: %s", exc)
