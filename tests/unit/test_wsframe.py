"""FrameDecoder against frames encoded by websocket-client's own ABNF (an independent encoder)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websocket import ABNF

from workers.runtime.wsframe import BINARY, CLOSE, OVERSIZED, PING, PONG, TEXT, FrameDecoder, ProtocolError


def frame(opcode: int, data: bytes, fin: bool = True, rsv1: int = 0, mask: int = 0) -> bytes:
    f = ABNF(int(fin), rsv1, 0, 0, opcode, mask, data)
    if mask:
        f.get_mask_key = lambda n: b"\x01\x02\x03\x04"
    return f.format()


def decode_in_chunks(stream: bytes, cuts: list[int], cap: int = 1 << 20) -> list[tuple[int, bytes]]:
    dec = FrameDecoder(cap)
    out: list[tuple[int, bytes]] = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        if cut > prev:
            out += dec.feed(stream[prev:cut])
            prev = cut
    return out


def test_many_frames_in_one_read_and_every_length_encoding():
    msgs = [b"x" * n for n in (0, 1, 125, 126, 127, 65535, 65536, 70000)]
    stream = b"".join(frame(TEXT, m) for m in msgs)
    assert FrameDecoder(1 << 20).feed(stream) == [(TEXT, m) for m in msgs]


def test_fragmented_message_with_a_ping_in_between():
    stream = frame(TEXT, b"hel", fin=False) + frame(PING, b"p") + frame(0, b"lo ", fin=False) + frame(0, b"world")
    assert FrameDecoder(100).feed(stream) == [(PING, b"p"), (TEXT, b"hello world")]


def test_control_frames_pass_through():
    stream = frame(PONG, b"") + frame(CLOSE, b"\x03\xe8bye") + frame(BINARY, b"\x00\xff")
    assert FrameDecoder(100).feed(stream) == [(PONG, b""), (CLOSE, b"\x03\xe8bye"), (BINARY, b"\x00\xff")]


def test_oversized_frame_is_skipped_without_buffering_and_the_stream_goes_on():
    big = frame(TEXT, b"y" * 5000)
    stream = frame(TEXT, b"a") + big + frame(TEXT, b"b")
    dec = FrameDecoder(1000)
    out = []
    for i in range(0, len(stream), 700):  # the big frame spans several reads
        out += dec.feed(stream[i:i + 700])
        assert not dec._parts or dec._have < 1000  # never holds the oversized payload
    assert out == [(TEXT, b"a"), (OVERSIZED, b""), (TEXT, b"b")]
    assert dec.dropped_bytes == 5000


def test_oversized_fragmented_message_is_dropped_whole():
    stream = (frame(TEXT, b"a" * 60, fin=False) + frame(0, b"b" * 60, fin=False) + frame(0, b"c" * 60)
              + frame(TEXT, b"next"))
    assert FrameDecoder(100).feed(stream) == [(OVERSIZED, b""), (TEXT, b"next")]


@pytest.mark.parametrize("stream, why", [
    (frame(TEXT, b"x", mask=1), "masked"),
    (frame(TEXT, b"x", rsv1=1), "reserved"),
    (frame(0, b"x"), "continuation"),
    (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "inside a fragmented"),
    (frame(PING, b"p", fin=False), "control frame"),
    (bytes([0x83, 0x00]), "unknown opcode"),
    (bytes([0x81, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1]), "most significant bit"),
])
def test_protocol_violations_raise(stream, why):
    with pytest.raises(ProtocolError, match=why):
        FrameDecoder(100).feed(stream)


messages = st.lists(st.tuples(st.sampled_from([TEXT, BINARY]), st.binary(max_size=300),
                              st.integers(min_value=1, max_value=4)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
       ping_at=st.integers(min_value=0, max_value=12))
def test_any_split_of_any_fragmentation_decodes_to_the_same_messages(msgs, cuts, ping_at):
    stream, want = b"", []
    for i, (op, data, pieces) in enumerate(msgs):
        step = max(1, len(data) // pieces)
        chunks = [data[j:j + step] for j in range(0, len(data), step)] or [b""]
        for k, chunk in enumerate(chunks):
            stream += frame(op if k == 0 else 0, chunk, fin=k == len(chunks) - 1)
            if i == ping_at and k == 0:
                stream += frame(PING, b"hb")  # control frames may sit between fragments
        # A ping after a one-frame message follows it; after a first fragment it comes first.
        want += [(op, data), (PING, b"hb")] if i == ping_at and len(chunks) == 1 else []
        want += [(PING, b"hb"), (op, data)] if i == ping_at and len(chunks) > 1 else []
        want += [(op, data)] if i != ping_at else []
    assert decode_in_chunks(stream, [c % (len(stream) + 1) for c in cuts]) == want


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(min_size=1, max_size=200), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=5))
def test_random_bytes_either_decode_or_raise_protocol_error(junk, cuts):
    try:
        decode_in_chunks(junk, cuts, cap=64)
    except ProtocolError:
        pass


def general_path_only(dec: FrameDecoder) -> FrameDecoder:
    """The decoder with its short path for plain text frames switched off: every frame through `_frame`."""
    def scan(data: bytes, out: list[tuple[int, bytes]]) -> int:
        pos = 0
        while len(data) - pos >= 2:
            end = dec._frame(data, pos, len(data), out)
            if end < 0:
                break
            pos = end
        return pos
    dec._scan = scan  # type: ignore[method-assign]
    return dec


def decode_or_error(dec: FrameDecoder, stream: bytes, cuts: list[int]) -> list[tuple[int, bytes]] | str:
    out: list[tuple[int, bytes]] = []
    prev = 0
    try:
        for cut in sorted(set(cuts)) + [len(stream)]:
            if cut > prev:
                out += dec.feed(stream[prev:cut])
                prev = cut
    except ProtocolError as exc:
        return f"{len(out)} then {exc}"
    return out + [(-2, str(dec._need).encode())] if dec._parts else out  # and what it waits for


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from(["text", "short", "frag", "open", "ping", "big", "masked", "junk"]),
                                st.binary(max_size=400)), max_size=10),
       cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=12),
       cap=st.sampled_from([100, 125, 300, 1 << 16, 1 << 20]))
def test_short_path_decodes_as_the_general_path(parts, cuts, cap):
    stream = b""
    for kind, data in parts:
        if kind == "frag":
            stream += frame(TEXT, data[:5], fin=False) + frame(0, data[5:])
        elif kind == "open":  # a first fragment left open: a text frame next is a protocol error
            stream += frame(TEXT, data[:5], fin=False)
        elif kind == "ping":
            stream += frame(PING, data[:100])
        elif kind == "big":
            stream += frame(TEXT, data * 200)
        elif kind == "masked":
            stream += frame(TEXT, data[:10], mask=1)
        elif kind == "junk":
            stream += data[:3]
        else:
            stream += frame(TEXT, data[:100] if kind == "short" else data)
    cuts = [c % (len(stream) + 1) for c in cuts]
    assert decode_or_error(FrameDecoder(cap), stream, cuts) == decode_or_error(general_path_only(FrameDecoder(cap)), stream, cuts)
