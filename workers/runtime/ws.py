"""One WebSocket connection kept alive forever.

websocket-client opens the connection (handshake, TLS, proxies) and sends;
the connection's thread then reads the socket itself, up to 64 KiB per read
(over TLS: every record that has already arrived, see `socket_reader`), and
decodes every frame in it with `wsframe.FrameDecoder`. After each read the
updates of all its frames go to the sink in one write, on this same thread:
no hand-off to a writer thread, and under load one read carries hundreds of
frames, so the write coalesces them. A second thread sends the exchange's
application-level ping and watches for silence. Every (re)connect asks the
stream for its subscribe frames, so subscriptions and parser state (books,
merged tickers) start clean on each connection.

A connection that fails (refused, DNS, timeout, TLS certificate, an HTTP status instead of
the upgrade) or breaks is reported at once in the status hash's `last_error` with its cause
in plain words (`connection_error_text`, shared with REST errors).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator

import websocket

from . import model
from .backoff import Backoff
from .model import Control, ParseError
from .sink import RedisSink
from .stats import CONNECTING, RECONNECTING, SUBSCRIBED, FeedStats
from .stream import DEFAULT_DATA_TIMEOUT_S, WsStream
from .wsframe import BINARY, CLOSE, OVERSIZED, PING, TEXT, FrameDecoder, ProtocolError

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
CLOSE_NORMAL = struct.pack("!H", 1000)
KEEPALIVE_LOCK_WAIT_S = 0.2  # the keepalive thread never waits longer for the send lock
RECV_BYTES = 65536
# At full speed (every read fills the buffer and the next is already waiting) the sink writes at
# least this often, not after every read: its write costs ~85 µs for 10 keys (0.34 µs a frame).
FLUSH_BEHIND_S = 0.005


def socket_reader(sock: socket.socket) -> Callable[[], bytes]:
    """recv() for a read loop: up to RECV_BYTES into one reused buffer, returned as an exact-size copy.

    Plain recv(65536) allocates 64 KiB per call and shrinks it to what arrived, which fragments
    glibc's heap: measured +2.6 MB RSS in 5 min at 1k frames/s, against +0.4 MB this way.

    An SSL socket gets `tls_reader`: one read there returns at most one TLS record."""
    if isinstance(sock, ssl.SSLSocket):
        return tls_reader(sock)
    buf = bytearray(RECV_BYTES)
    view = memoryview(buf)
    recv_into = sock.recv_into

    def read() -> bytes:
        return view[:recv_into(buf)].tobytes()

    return read


def bytes_waiting(sock: socket.socket) -> Callable[[], bool]:
    """A check, without blocking, that a read would return at once: decrypted bytes in OpenSSL's
    buffer, or bytes (or the end of the stream) in the kernel's."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poll = poller.poll
    pending = sock.pending if isinstance(sock, ssl.SSLSocket) else None

    def waiting() -> bool:
        return bool(pending and pending()) or bool(poll(0))

    return waiting


def tls_reader(sock: ssl.SSLSocket) -> Callable[[], bytes]:
    """Like `socket_reader` for TLS: every record that has already arrived, up to RECV_BYTES, per call.

    An SSL read returns one TLS record (at most 16 KiB; servers often send one per WebSocket
    frame), so a blocking read per batch would hand the sink one frame at a time: measured
    30-38k frames/s against 155k over ws://. The socket is switched to non-blocking and each
    call keeps reading while OpenSSL has decrypted bytes (`pending()`) or the kernel has more
    records, until it reports want-read; it waits in poll() only when nothing at all was read.
    Bytes left in OpenSSL's buffer (after the handshake, or a record larger than the room left)
    are read before any wait: poll() knows only the kernel's buffer.

    Each record costs OpenSSL two read() syscalls (header, then body: Python's ssl has no
    read-ahead switch), so the per-record Python around them is kept to one C call: the SSL
    object's own read(), which SSLSocket.recv_into wraps in two Python frames (~0.7 µs per
    record here). Ragged EOF, which SSLSocket.read would turn into b"", is handled here.

    websocket-client still sends on this socket from other threads; `nonblocking_sends_wait`
    keeps those sends waiting for room instead of failing."""
    sock.setblocking(False)
    buf = bytearray(RECV_BYTES)
    view = memoryview(buf)
    sslobj = getattr(sock, "_sslobj", None)  # CPython's _ssl._SSLSocket; absent elsewhere: the public path
    ssl_read: Callable[[int, memoryview], int] | None = getattr(sslobj, "read", None)
    recv_into = sock.recv_into
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    wait = poller.poll
    want_read = ssl.SSLWantReadError
    want_write = ssl.SSLWantWriteError
    eof = ssl.SSLEOFError

    def read() -> bytes:
        n = 0
        while n < RECV_BYTES:
            try:
                got = ssl_read(RECV_BYTES - n, view[n:]) if ssl_read is not None else recv_into(view[n:])
            except want_read:
                if n:
                    break
                wait()
                continue
            except want_write:  # TLS 1.2 renegotiation: the read needs to send first
                writable = select.poll()
                writable.register(sock.fileno(), select.POLLOUT)
                writable.poll(1000)
                continue
            except (eof, ValueError):  # EOF without close_notify; ValueError: SSLSocket closed under us
                break
            if not got:  # EOF (close_notify, FIN, or our own shutdown): hand over what came before it
                break
            n += got
        return view[:n].tobytes()

    return read


def bounded_send(sock: socket.socket, timeout: float, stopping: threading.Event | None = None) -> Callable[[bytes], int]:
    """websocket-client's `_send` for a plain (ws://) socket: waits for room at most `timeout`, then raises.

    websocket-client's own send on a blocking socket falls back to select() with the socket's timeout,
    None here: a server that stops reading held the sender (and the send lock every other sender
    waits on) forever. This one sends with MSG_DONTWAIT and waits in poll() for room, up to
    `timeout` without progress, and gives up at once when the connection is being stopped."""
    fd = sock.fileno()
    raw_send = sock.send
    dontwait = socket.MSG_DONTWAIT

    def send(data: bytes) -> int:
        deadline = time.monotonic() + timeout
        poller: select.poll | None = None
        while True:
            try:
                return raw_send(data, dontwait)
            except (BlockingIOError, InterruptedError):
                pass
            now = time.monotonic()
            if now >= deadline:
                raise websocket.WebSocketTimeoutException(f"send blocked for {timeout:g}s: the server reads nothing")
            if stopping is not None and stopping.is_set():
                raise websocket.WebSocketConnectionClosedException("stopping")
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            poller.poll(min(100.0, (deadline - now) * 1000))

    return send


def nonblocking_sends_wait(sock: ssl.SSLSocket, timeout: float) -> None:
    """Sends on the non-blocking SSL socket wait for room, up to `timeout`, then raise TimeoutError.

    websocket-client sends with a bare send() when the socket's timeout is 0, so a full send
    buffer would fail the send at once (and OpenSSL needs the same write retried; with its own
    wait it would retry forever). This instance's send() retries the same data while poll()
    waits for room: as a blocking socket with SO_SNDTIMEO (the ws:// path) behaves."""
    send = sock.send  # the class's method, bound
    fd = sock.fileno()
    blocked = (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError)

    def send_waiting(data: bytes, flags: int = 0) -> int:
        deadline = 0.0
        while True:
            try:
                return send(data, flags)
            except blocked as exc:
                now = time.monotonic()
                if not deadline:
                    deadline = now + timeout
                elif now >= deadline:
                    raise TimeoutError(f"send blocked for {timeout:g}s: the server reads nothing") from None
                poller = select.poll()
                # want-read (a TLS 1.2 renegotiation) waits for the reader thread to take the server's bytes
                poller.register(fd, select.POLLOUT if not isinstance(exc, ssl.SSLWantReadError) else select.POLLIN)
                poller.poll(min(100.0, (deadline - now) * 1000))

    sock.send = send_waiting  # type: ignore[method-assign,assignment]


# -- connection errors in words a user can act on ---------------------------------------------

CA_HINT = "set SSL_CERT_FILE/REQUESTS_CA_BUNDLE/WEBSOCKET_CLIENT_CA_BUNDLE to your CA bundle"
# X509 verify results that mean "issuer not trusted here" (a private CA, a TLS-inspecting proxy):
# unable to get issuer certificate, self-signed leaf, self-signed in chain, unable to get local
# issuer, unable to verify the first certificate. Others (expired, hostname mismatch) are not
# fixed by a CA bundle and get OpenSSL's words only.
_UNTRUSTED_ISSUER = {2, 18, 19, 20, 21}
_SSL_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (cause, context, urllib3's `reason`, exceptions in args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for inner in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args):
            if isinstance(inner, BaseException):
                todo.append(inner)


def connection_error_text(exc: BaseException) -> str:
    """Why a connection (WebSocket or REST) failed, e.g. `connection refused`, `DNS: name not known`,
    `timed out`, `certificate verify failed — set SSL_CERT_FILE/... to your CA bundle (...)`,
    `HTTP 503 Service Unavailable: upgrade refused`. Unknown errors keep class and message."""
    chain = list(_causes(exc))

    def first(kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    if (cert := first(ssl.SSLCertVerificationError)) is not None:
        assert isinstance(cert, ssl.SSLCertVerificationError)
        why = cert.verify_message or _SSL_SUFFIX.sub("", str(cert.reason or cert))
        if cert.verify_code in _UNTRUSTED_ISSUER:
            return f"certificate verify failed — {CA_HINT} ({why})"
        return f"certificate verify failed: {why}"
    if (dns := first(socket.gaierror)) is not None:
        code = dns.args[0] if dns.args else None
        if code == socket.EAI_NONAME:
            return "DNS: name not known"
        if code == socket.EAI_AGAIN:
            return "DNS: temporary failure (no answer from the resolver)"
        if code == getattr(socket, "EAI_NODATA", object()):
            return "DNS: the name has no address"
        return f"DNS: {getattr(dns, 'strerror', None) or dns}"
    if first(ConnectionRefusedError) is not None:
        return "connection refused"
    if first(TimeoutError) is not None or any("Timeout" in type(e).__name__ for e in chain):
        return "timed out"
    if (tls := first(ssl.SSLError)) is not None:
        assert isinstance(tls, ssl.SSLError)
        code = getattr(tls, "reason", None)
        if code == "WRONG_VERSION_NUMBER":
            return "TLS: wrong version number (the server does not speak TLS on this port: ws:// or http://?)"
        return f"TLS: {code.replace('_', ' ').lower() if code else _SSL_SUFFIX.sub('', str(tls))}"
    if (bad := first(websocket.WebSocketBadStatusException)) is not None:
        assert isinstance(bad, websocket.WebSocketBadStatusException)
        status = f"HTTP {bad.status_code} {bad.status_message or ''}".rstrip()
        body = bad.resp_body.decode("utf-8", "replace").strip() if isinstance(bad.resp_body, bytes) else ""
        return f"{status}: upgrade refused" + (f" ({body[:80]})" if body else "")
    if any(type(e).__name__ == "RemoteDisconnected" for e in chain):  # http.client's (not imported: RSS)
        return "connection closed by the server without an answer"  # a ConnectionResetError, but nothing was reset
    if first(ConnectionResetError) is not None:
        return "connection reset by the server"
    if first((ConnectionAbortedError, BrokenPipeError, websocket.WebSocketConnectionClosedException)) is not None:
        return "connection closed by the server"
    for e in chain:
        if isinstance(e, OSError) and e.errno is not None and e.errno in errno.errorcode:
            return os.strerror(e.errno).lower()
    text = _SSL_SUFFIX.sub("", str(exc)).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class WsConnection:
    discovers_symbols = False  # a Source of the configured symbols (feed.Source)

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
        data_timeout: float = DEFAULT_DATA_TIMEOUT_S,
        max_connection_age: float | None = None,
        start_delay: float = 0.0,
    ) -> None:
        self.stream = stream
        self.start_delay = start_delay  # the first connect waits this long (an exchange's new-connections-per-second limit)
        self.sink = sink
        self.stats = stats
        self.silence_timeout = silence_timeout
        self.connect_timeout = connect_timeout
        self.max_frame_bytes = max_frame_bytes
        self.backoff = backoff or Backoff()
        self.send_timeout = connect_timeout  # a send with no room for this long: the server reads nothing
        # Pongs are not data: a connection with no data frame of any subscribed channel for this long is
        # re-subscribed (if the stream can), and dropped after as long again. Per feed (`data_timeout`).
        self.data_timeout = data_timeout
        # Exchanges that cut every connection at a fixed age (Binance: 24 h) declare a shorter
        # `max_connection_age_s` on the stream: the connection is then replaced before the cut, at once
        # and without a state change or error (a planned reconnect). The argument overrides it (tests).
        self.max_connection_age: float | None = max_connection_age or stream.max_connection_age_s
        self._connected_at = time.monotonic()
        self._planned = False  # the current connection ends by plan (age, the server's shutdown notice)
        self._last_data = time.monotonic()
        self._data_resubscribed = False
        self._resubscribe_due = False
        self.log = logging.getLogger(f"{stats.service_id}.{stream.name}")
        self._stopping = threading.Event()
        self._ws: websocket.WebSocket | None = None  # the open connection, None between connections
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
        """Close the socket promptly; the read loop returns and the thread ends."""
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            # A polite close frame only if it leaves at once: never behind the send lock (a reader
            # stuck sending to a server that reads nothing holds it) nor waiting for buffer room.
            self._send_nowait(ws, CLOSE_NORMAL, websocket.ABNF.OPCODE_CLOSE)
            self._abort()

    @staticmethod
    def _send_nowait(ws: websocket.WebSocket, payload: bytes, opcode: int) -> bool:
        """One frame, only if the send lock is free and the socket takes it whole without waiting."""
        sock = ws.sock
        if sock is None or not ws.lock.acquire(blocking=False):
            return False
        try:
            data = websocket.ABNF.create_frame(payload, opcode).format()
            if isinstance(sock, ssl.SSLSocket):
                return ssl.SSLSocket.send(sock, data) == len(data) if sock.gettimeout() == 0 else False
            return sock.send(data, socket.MSG_DONTWAIT) == len(data)
        except (OSError, ValueError):
            return False
        finally:
            ws.lock.release()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- connection thread -----------------------------------------------------

    def _run(self) -> None:
        first = True
        planned = False
        if self.start_delay > 0 and self._stopping.wait(self.start_delay):
            return
        while not self._stopping.is_set():
            if not planned:  # a planned reconnect is not an outage: the state stays as it was
                self.stats.state = CONNECTING if first else RECONNECTING
            planned = False
            self._got_data = False
            self._close_reason = ""
            try:
                ws = websocket.create_connection(
                    self.stream.url, timeout=self.connect_timeout, skip_utf8_validation=True, enable_multithread=True)
            except Exception as exc:  # noqa: BLE001 - refused, DNS, TLS, HTTP status: all mean "try later"
                self._note_error("connect_failed", exc)
            else:
                self._ws = ws
                try:
                    if not self._stopping.is_set():  # a stop() during the handshake found no socket to close
                        self._session(ws)
                except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                    self._note_error("connection_lost", exc)
                finally:
                    self.sink.flush()  # what the last read staged before the connection ended
                    self._connected = False
                    self._ws = None
                    ws.shutdown()  # close the fd now: reconnect loops must not pile up descriptors
            if self._stopping.is_set():
                break
            first = False
            self.stats.reconnects += 1
            if self._planned:
                self._planned, planned = False, True
                self.log.info("%s; reconnecting to %s now", self._close_reason, self.stream.url)
                continue
            self.stats.state = RECONNECTING
            if self._got_data:
                self.backoff.reset()  # a healthy connection starts the backoff over
            delay = self.backoff.next_delay()
            self.log.warning(
                "disconnected from %s (%s); reconnecting in %.1fs",
                self.stream.url, self._close_reason or "closed", delay,
            )
            self._stopping.wait(delay)

    def _note_error(self, kind: str, exc: Exception) -> None:
        """A failed connect or a broken connection: in the status hash at once, with its cause.

        Not when the connection was already ending for a known reason (silence, protocol error,
        our own stop): the exception is then only the echo of closing the socket."""
        if self._close_reason or self._stopping.is_set():
            return
        self._close_reason = connection_error_text(exc)
        self.stats.error(kind, f"{self._close_reason}; {self.stream.url}", parse=False)

    def _session(self, ws: websocket.WebSocket) -> None:
        """Subscribe, then read and dispatch until the connection ends."""
        raw = ws.sock
        if raw is None:
            raise websocket.WebSocketConnectionClosedException("socket closed right after the handshake")
        # The connect timeout bounded the handshake; kept on the open socket it would make every recv a
        # poll()+recv pair. Silence is the watchdog's job; SO_SNDTIMEO bounds a stuck send.
        raw.settimeout(None)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(self.connect_timeout), 0))
        if not isinstance(raw, ssl.SSLSocket):  # over TLS, `nonblocking_sends_wait` bounds sends (below)
            ws._send = bounded_send(raw, self.send_timeout, self._stopping)  # type: ignore[method-assign,assignment]
        self._connected = True
        self._last_frame = self._last_ping = self._last_data = self._connected_at = time.monotonic()
        self._data_resubscribed = self._resubscribe_due = False
        frames = self.stream.on_connect()
        self.log.info("connected to %s; sending %d subscribe request(s)", self.stream.url, len(frames))
        for frame in frames:
            ws.send(frame)

        decoder = FrameDecoder(self.max_frame_bytes)
        # Subscribes went out on the blocking socket; over TLS the reader now makes it non-blocking.
        read = socket_reader(raw)
        if isinstance(raw, ssl.SSLSocket):
            nonblocking_sends_wait(raw, self.connect_timeout)
        self._read_loop(ws, read, bytes_waiting(raw), decoder)

    def _read_loop(self, ws: websocket.WebSocket, read: Callable[[], bytes], waiting: Callable[[], bool],
                   decoder: FrameDecoder) -> None:
        """Read, decode, dispatch and write, one socket read at a time, until the connection ends.

        What a read brought is written before the next read, unless that read is already waiting
        (this one filled the buffer and more bytes have arrived) and the last write is under
        FLUSH_BEHIND_S old: at full speed one write per few reads; whenever the socket drains, at once."""
        feed = decoder.feed
        flush = self.sink.flush
        stats = self.stats
        dispatch = self._dispatch
        flushed_at = 0.0
        try:
            while True:
                data = read()
                if not data:
                    if not self._close_reason and not self._stopping.is_set():
                        # No close frame (that returns below): the TCP or TLS stream just ended.
                        self._close_reason = "connection closed by the server without a close frame"
                        stats.error("connection_lost", f"{self._close_reason}; {self.stream.url}", parse=False)
                    return
                wall = time.time()  # the receive time of every frame in this read
                try:
                    events = feed(data)
                except ProtocolError as exc:
                    stats.error("ws_protocol", str(exc), parse=False)
                    self._close_reason = f"protocol error: {exc}"
                    return
                if events:  # liveness is a complete frame: bytes of an endless oversized one don't count
                    self._last_frame = time.monotonic()
                    if not dispatch(ws, events, wall, decoder):
                        return
                if len(data) < RECV_BYTES or not 0.0 <= wall - flushed_at < FLUSH_BEHIND_S or not waiting():
                    flush()
                    flushed_at = wall
                if self._resubscribe_due:  # set by the watchdog; done here, on the thread that owns the parser
                    self._resubscribe_due = False
                    self._resubscribe(ws)
        finally:
            flush()  # what the last reads brought, however the connection ended

    def _dispatch(self, ws: websocket.WebSocket, events: list[tuple[int, bytes]], wall: float, decoder: FrameDecoder) -> bool:
        """One read's frames: parse each message, stage the updates of all of them together (one sink
        merge per read, not per frame), answer control frames; False means drop the connection."""
        parse = self.stream.parse
        stats = self.stats
        data_op = BINARY if self.stream.binary_ok else TEXT  # binary frames are messages only if the stream says so
        updates: list[model.Update] = []
        messages = data_frames = 0
        ok = True
        for opcode, payload in events:
            if opcode == TEXT or opcode == data_op:
                try:
                    result = parse(payload)
                except ParseError as exc:
                    stats.error(exc.kind, exc.detail or repr(payload[:200]))
                    continue
                except Exception as exc:  # noqa: BLE001 - a parser bug must not kill the feed
                    stats.error("parser_bug", f"{exc!r} on {payload[:200]!r}")
                    continue
                if isinstance(result, list):  # a data frame of a subscribed channel, even with nothing new
                    data_frames += 1
                    if result:
                        updates += result
                        messages += 1
                    continue
                ok = self._on_control(ws, result)
            else:
                ok = self._on_frame(ws, opcode, payload, decoder)
            if not ok:
                break
        if data_frames:
            self._last_data = time.monotonic()
            self._data_resubscribed = False
        if updates:
            self.sink.stage(updates, int(wall * 1000))
            stats.messages_total += messages
            stats.last_message_at = wall
            if not self._got_data:
                self._got_data = True
                stats.state = SUBSCRIBED
        return ok

    def _on_frame(self, ws: websocket.WebSocket, opcode: int, payload: bytes, decoder: FrameDecoder) -> bool:
        """A frame that is no message to parse: binary (unless the stream takes them), ping, close, or
        the decoder's report of an oversized message. False means drop the connection."""
        if opcode == BINARY:
            self.stats.error("binary_frame", f"{len(payload)} bytes")
        elif opcode == PING:
            ws.pong(payload)
        elif opcode == CLOSE:
            self._on_server_close(ws, payload)
            return False
        elif opcode == OVERSIZED:
            self.stats.error("oversized_frame", f"{decoder.dropped_bytes} bytes > cap {self.max_frame_bytes}")
        return True

    def _resubscribe(self, ws: websocket.WebSocket) -> None:
        frames = self.stream.resubscribe_frames()
        self.log.warning("re-subscribing on the same connection (%d request(s)): no data for %.0fs",
                         len(frames), time.monotonic() - self._last_data)
        for frame in frames:
            ws.send(frame)

    def _on_control(self, ws: websocket.WebSocket, ctl: Control) -> bool:
        kind = ctl.kind
        if kind == model.SUBSCRIBED:
            self.stats.state = SUBSCRIBED
            self.log.info("subscribed: %s", ctl.detail)
        elif kind == model.SUB_REJECTED:
            self.stats.reject_many(ctl.items, ctl.detail)
        elif kind == model.SEND:
            self.stats.error("resync", ctl.detail, parse=False)
        for frame in ctl.frames:
            ws.send(frame)
        if kind == model.PLANNED_RECONNECT:
            self._plan(ctl.detail or "the server announced a close")
            return False
        if kind == model.RECONNECT:
            self.stats.error("resync_reconnect", ctl.detail, parse=False)
            self._close_reason = f"resync: {ctl.detail}"
            return False
        return True

    def _plan(self, why: str) -> None:
        """End this connection for a known reason and reconnect at once, without backoff or error."""
        if not self._close_reason:
            self._close_reason = f"planned reconnect: {why}"
            self._planned = True

    def _on_server_close(self, ws: websocket.WebSocket, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8", "replace")
        if code and not self._close_reason:
            self._close_reason = f"close code {code} {reason}".strip()
        try:
            ws.send_close()  # RFC 6455 §5.5.1: answer the close, then the server ends TCP
        except Exception:  # noqa: BLE001 - the server may already be gone
            pass

    def _abort(self) -> None:
        ws = self._ws
        sock = ws.sock if ws is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread at once: recv() returns b""
            except OSError:
                pass

    # -- keepalive thread ------------------------------------------------------

    def _keepalive(self) -> None:
        interval = self.stream.ping_interval
        tick = min(0.25, self.silence_timeout / 4)
        while not self._stopping.wait(tick):
            if not self._connected:
                continue
            now = time.monotonic()
            window = self.stream.silence_timeout or self.silence_timeout
            if now - self._last_frame > window:
                self._close_reason = f"no frame for {now - self._last_frame:.1f}s (silence timeout {window:g}s)"
                self.stats.error("silence_timeout", self._close_reason, parse=False)
                self._connected = False
                self._abort()
                continue
            max_age = self.max_connection_age
            if max_age and now - self._connected_at >= max_age:
                self._plan(f"connection {now - self._connected_at:.0f}s old, replaced before the exchange's "
                           f"connection lifetime (max_connection_age {max_age:g}s)")
                self._connected = False
                ws = self._ws
                if ws is not None:
                    self._send_nowait(ws, CLOSE_NORMAL, websocket.ABNF.OPCODE_CLOSE)
                self._abort()
                continue
            quiet = now - self._last_data
            if quiet > self.data_timeout:
                if not self._data_resubscribed and self.stream.can_resubscribe:
                    self._data_resubscribed = True
                    self._last_data = now  # as long again for the re-subscription to bring data
                    self._resubscribe_due = True
                    self.stats.error("no_data_resubscribe", f"no data frame for {quiet:.1f}s (data timeout "
                                     f"{self.data_timeout:g}s), frames still arriving; re-subscribing", parse=False)
                else:
                    self._close_reason = f"no data frame for {quiet:.1f}s (data timeout {self.data_timeout:g}s)"
                    self.stats.error("no_data_timeout", f"{self._close_reason}; reconnecting", parse=False)
                    self._connected = False
                    self._abort()
                    continue
            for frame in self.stream.due_frames():  # re-subscribes a limiter held back
                self._keepalive_send(frame)
            if interval and now - self._last_ping >= interval:
                self._last_ping = now
                ping = self.stream.ping_frame()
                if ping:
                    self._keepalive_send(ping)

    def _keepalive_send(self, frame: str) -> None:
        """Send from the keepalive thread without ever blocking the watchdog on the send lock: if the
        lock stays taken (the reader is stuck in a send) the frame is skipped; a send that finds no
        room gives up after `send_timeout`, and the connection is aborted (the server reads nothing)."""
        ws = self._ws
        if ws is None:
            return
        if not ws.lock.acquire(timeout=KEEPALIVE_LOCK_WAIT_S):
            self.log.debug("send lock busy; %s skipped", frame[:40])
            return
        try:
            data = websocket.ABNF.create_frame(frame, websocket.ABNF.OPCODE_TEXT).format()
            while data:
                data = data[ws._send(data):]
        except websocket.WebSocketTimeoutException as exc:
            self._send_stalled(str(exc))
        except Exception as exc:  # noqa: BLE001 - the reader notices the dead socket
            self.log.debug("send failed: %s", exc)
        finally:
            ws.lock.release()

    def _send_stalled(self, why: str) -> None:
        if not self._close_reason:
            self._close_reason = f"send stalled ({why})"
            self.stats.error("send_timeout", f"{why}; {self.stream.url}", parse=False)
        self._connected = False
        self._abort()
