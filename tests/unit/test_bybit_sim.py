"""The Bybit simulator's order books follow docs/v5/websocket/public/orderbook.mdx: checked with websocket-client
directly, and with the protocol module parsing what it sends."""

from __future__ import annotations

import json
import time

import pytest
import websocket

from tests.sim import Simulator
from workers.exchanges import bybit
from workers.runtime.model import Update


@pytest.fixture
def sim():
    s = Simulator(rate_hz=50).start()
    yield s
    s.stop()


def book_frames(sim: Simulator, topic: str, n: int, category: str = "linear") -> list[str]:
    ws = websocket.create_connection(f"ws://127.0.0.1:{sim.port}/bybit/v5/public/{category}", timeout=5)
    try:
        ws.send(json.dumps({"req_id": "1", "op": "subscribe", "args": [topic]}))
        out: list[str] = []
        deadline = time.monotonic() + 10
        while len(out) < n and time.monotonic() < deadline:
            raw = ws.recv()
            if json.loads(raw).get("topic") == topic:
                out.append(raw)
        return out
    finally:
        ws.close()


def test_ids_start_at_the_books_id_and_jump_forward(sim):
    bysim = sim.exchanges["bybit"]
    bysim.u_max_step = 5
    bysim.faults.gap_next = 2
    frames = [json.loads(f) for f in book_frames(sim, "orderbook.50.BTCUSDT", 30)]
    assert frames[0]["type"] == "snapshot" and frames[0]["data"]["u"] == 18521288  # not 1: 1 means a restart
    ids = [f["data"]["u"] for f in frames]
    steps = [b - a for a, b in zip(ids, ids[1:], strict=False)]
    assert all(s >= 1 for s in steps) and any(s > 1 for s in steps)  # increasing, not contiguous
    assert {f["type"] for f in frames[1:]} == {"delta"}
    assert isinstance(frames[0]["ts"], int) and list(frames[0])[:3] == ["topic", "type", "ts"]  # level 50: ts after type


def test_restart_frame_is_the_whole_book_with_u_1_typed_delta(sim):
    bysim = sim.exchanges["bybit"]
    stream = bybit.LinearStream("l", "ws://x", ["BTCUSDT"], depth=50, levels=50)
    stream.on_connect()
    book_frames(sim, "orderbook.50.BTCUSDT", 3)  # the book has been sent before
    bysim.book_restart_next = 1
    raws = book_frames(sim, "orderbook.50.BTCUSDT", 4)  # a new subscription: its snapshot, then the restart frame
    frames = [json.loads(f) for f in raws]
    restart = next(f for f in frames if f["data"]["u"] == 1)
    assert restart["type"] == "delta" and len(restart["data"]["b"]) == len(restart["data"]["a"]) == 50
    after = frames[frames.index(restart) + 1]
    assert after["type"] == "delta" and after["data"]["u"] == 2
    results = [stream.parse(raw) for raw in raws]  # the parser rebuilds on it and goes on
    assert all(isinstance(r, list) and len(r) == 1 and isinstance(r[0], Update) for r in results)
    assert results[frames.index(restart)][0].fields["update_id"] == "1"


def test_ts_as_a_digit_string_in_the_reminders_key_order(sim):
    bysim = sim.exchanges["bybit"]
    bysim.ts_as_string = True
    for category, topic, order in (("linear", "orderbook.1.BTCUSDT", ["topic", "ts", "type"]),
                                   ("linear", "orderbook.50.BTCUSDT", ["topic", "type", "ts"]),
                                   ("spot", "orderbook.50.BTCUSDT", ["topic", "ts", "type"])):
        raw = book_frames(sim, topic, 1, category)[0]
        frame = json.loads(raw)
        assert type(frame["ts"]) is str and frame["ts"].isdigit() and list(frame)[:3] == order, (topic, frame)
        if category == "linear":
            stream = bybit.LinearStream("l", "ws://x", ["BTCUSDT"], depth=int(topic.split(".")[1]))
            stream.on_connect()
            [upd] = stream.parse(raw)
            assert upd.event_ts_ms == int(frame["ts"])
