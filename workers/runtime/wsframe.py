"""RFC 6455 frames sent by a server, decoded from the raw byte stream.

websocket-client still does the handshake, TLS, proxies and every send; only
receiving goes through here. websocket-client reads each frame with three or
more recv() calls and decodes it in ~10 µs of Python; on this project's
machines a syscall or a wake-up costs more than parsing a ticker, so the feed
reads up to 64 KiB per recv() and this decoder returns every complete frame in
it (bench/results.md: this path alone receives ~3x as many frames per second).

Server-to-client rules enforced (RFC 6455 §5): frames are unmasked, RSV bits
are zero (no extension is negotiated), control frames are final and at most
125 bytes, continuation frames only follow an unfinished text/binary frame,
a 64-bit length has its top bit clear.
A violation raises ProtocolError: the stream can't be trusted, reconnect.
"""

from __future__ import annotations

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
OVERSIZED = -1  # pseudo-opcode: a message over the size cap was dropped (`dropped_bytes` says how big)

_CONTROL = (CLOSE, PING, PONG)


class ProtocolError(Exception):
    """The server broke RFC 6455; the connection must be dropped."""


class FrameDecoder:
    """Feed raw bytes, get back (opcode, payload) for each complete message or control frame.

    Fragmented messages are joined; a message longer than `max_message_bytes` is
    skipped without being buffered and reported once as (OVERSIZED, b"").
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.dropped_bytes = 0        # size of the last oversized message (as far as known)
        self._parts: list[bytes] = []  # an incomplete frame's bytes, joined once `_need` bytes are here
        self._have = 0
        self._need = 0
        self._skip = 0                # bytes of an oversized frame still to discard
        self._frag_op = 0             # opcode of the fragmented message being joined (0: none)
        self._frags: list[bytes] = []
        self._frag_len = 0
        self._dropping = False        # discarding the continuation frames of an oversized message

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip:]
            self._skip = 0
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._parts)
            self._parts = []
        out: list[tuple[int, bytes]] = []
        pos = self._scan(data, out)
        if pos < len(data):
            rest = data[pos:]
            self._parts = [rest]
            self._have = len(rest)
            self._need = _frame_need(rest)
        return out

    def _scan(self, data: bytes, out: list[tuple[int, bytes]]) -> int:
        """Decode the frames of `data` into `out`; returns where the first incomplete frame starts.

        A final, unmasked text frame with a 7- or 16-bit length, outside a fragmented message
        and within the cap, is what exchanges send all day: it takes the short path here
        (two byte compares, one slice). Anything else goes through `_frame`, every rule checked."""
        append = out.append
        pos, n = 0, len(data)
        small_ok = self.max_message_bytes >= 125
        mid_ok = self.max_message_bytes >= 0xFFFF
        plain = not (self._frag_op or self._dropping)
        while n - pos >= 2:
            if data[pos] == 0x81 and plain:
                b1 = data[pos + 1]
                if b1 < 126 and small_ok:
                    end = pos + 2 + b1
                    if end > n:
                        return pos
                    append((TEXT, data[pos + 2:end]))
                    pos = end
                    continue
                if b1 == 126 and mid_ok and n - pos >= 4:
                    end = pos + 4 + (data[pos + 2] << 8 | data[pos + 3])
                    if end > n:
                        return pos
                    append((TEXT, data[pos + 4:end]))
                    pos = end
                    continue
            end = self._frame(data, pos, n, out)
            if end < 0:
                return pos
            pos = end
            plain = not (self._frag_op or self._dropping)
        return pos

    def _frame(self, data: bytes, pos: int, n: int, out: list[tuple[int, bytes]]) -> int:
        """One frame at `pos`, every rule checked: where the next frame starts, or -1 if this one is
        incomplete. An oversized data frame is skipped (past the end of `data`: `_skip` says how far)."""
        b0 = data[pos]
        b1 = data[pos + 1]
        length = b1 & 0x7F
        hdr = 2
        if length >= 126:
            hdr = 4 if length == 126 else 10
            if n - pos < hdr:
                return -1
            length = int.from_bytes(data[pos + 2:pos + hdr], "big")
            if length >> 63:
                raise ProtocolError("64-bit frame length with its most significant bit set")
        if b1 & 0x80:
            raise ProtocolError("masked frame from the server")
        if b0 & 0x70:
            raise ProtocolError(f"reserved bits set (first byte 0x{b0:02x}) without a negotiated extension")
        op = b0 & 0x0F
        fin = b0 & 0x80
        end = pos + hdr + length
        if length > self.max_message_bytes and op < 8:
            # Too big to keep: skip it without buffering, report the message once.
            self._drop(op, fin, length, out)
            if end > n:
                self._skip = end - n
                return n
            return end
        if end > n:
            return -1
        payload = data[pos + hdr:end]
        if op == TEXT or op == BINARY:
            if self._frag_op or self._dropping:
                raise ProtocolError("a new message began inside a fragmented one")
            if fin:
                out.append((op, payload))
            else:
                self._frag_op, self._frags, self._frag_len = op, [payload], length
        elif op == CONTINUATION:
            self._continue(fin, payload, out)
        elif op in _CONTROL:
            if not fin or length > 125:
                raise ProtocolError(f"control frame 0x{op:x} fragmented or longer than 125 bytes")
            out.append((op, payload))
        else:
            raise ProtocolError(f"unknown opcode 0x{op:x}")
        return end

    def _continue(self, fin: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        if self._dropping:
            self._dropping = not fin
            return
        if not self._frag_op:
            raise ProtocolError("continuation frame without a message to continue")
        self._frag_len += len(payload)
        if self._frag_len > self.max_message_bytes:
            self._report_drop(self._frag_len, out)
            self._frag_op, self._frags = 0, []
            self._dropping = not fin
            return
        self._frags.append(payload)
        if fin:
            out.append((self._frag_op, b"".join(self._frags)))
            self._frag_op, self._frags = 0, []

    def _drop(self, op: int, fin: int, length: int, out: list[tuple[int, bytes]]) -> None:
        """An oversized data frame: keep the fragmentation state right while skipping it."""
        if op == CONTINUATION:
            if self._dropping:
                self._dropping = not fin
                return
            if not self._frag_op:
                raise ProtocolError("continuation frame without a message to continue")
            self._report_drop(self._frag_len + length, out)
            self._frag_op, self._frags = 0, []
        elif op == TEXT or op == BINARY:
            if self._frag_op or self._dropping:
                raise ProtocolError("a new message began inside a fragmented one")
            self._report_drop(length, out)
        else:
            raise ProtocolError(f"unknown opcode 0x{op:x}")
        self._dropping = not fin

    def _report_drop(self, size: int, out: list[tuple[int, bytes]]) -> None:
        self.dropped_bytes = size
        out.append((OVERSIZED, b""))


def _frame_need(rest: bytes) -> int:
    """Bytes the incomplete frame at the start of `rest` needs before it can be decoded (its header
    first, when even that is cut: then the whole frame once the header says how long it is)."""
    if len(rest) < 2:
        return 2
    length = rest[1] & 0x7F
    hdr = 2 if length < 126 else 4 if length == 126 else 10
    if len(rest) < hdr:
        return hdr
    if hdr > 2:
        length = int.from_bytes(rest[2:hdr], "big")
    return hdr + length
