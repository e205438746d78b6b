"""Bybit subscription refusals: an unattributed one keeps its topics (retried with backoff), and acks
naming topics nobody asked for can't start a resubscribe storm."""

import json

from workers.exchanges import bybit
from workers.runtime.model import SEND, SUB_REJECTED


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def linear(symbols=("BTCUSDT", "ETHUSDT")):
    s = bybit.LinearStream("linear#0", "ws://x", list(symbols))
    s.clock = Clock()
    return s


def test_a_refusal_naming_no_topic_keeps_every_topic_and_retries_them():
    s = linear()
    [frame] = s.on_connect()
    req = json.loads(frame)
    ack = {"success": False, "ret_msg": "Internal error, please retry", "conn_id": "c",
           "req_id": req["req_id"], "op": "subscribe"}
    ctl = s.parse(json.dumps(ack).encode())
    assert ctl.kind == SEND and ctl.items == ()  # nothing rejected for good
    [again] = ctl.frames
    assert json.loads(again)["args"] == req["args"]
    # the server then closes: the next connection subscribes every topic again
    frames = s.on_connect()
    assert sum(len(json.loads(f)["args"]) for f in frames) == 4


def test_unattributed_refusals_back_off():
    s = linear()
    [frame] = s.on_connect()
    req_id = json.loads(frame)["req_id"]
    sent = 0
    for _ in range(100):
        ack = {"success": False, "ret_msg": "Internal error, please retry", "req_id": req_id, "op": "subscribe"}
        ctl = s.parse(json.dumps(ack).encode())
        sent += len(ctl.frames)
        if ctl.frames:
            req_id = json.loads(ctl.frames[-1])["req_id"]
    assert sent <= 5  # not one per refusal
    assert s.due_frames() == ()
    s.clock.t += bybit.RESUBSCRIBE_INTERVAL_S
    [later] = s.due_frames()
    assert len(json.loads(later)["args"]) == 4
    assert s.due_frames() == ()


def test_acks_naming_unrequested_topics_do_not_storm():
    s = bybit.SpotStream("spot#0", "ws://x", ["BTCUSDT", "ETHUSDT"], book_top=False)
    s.clock = Clock()
    [frame] = s.on_connect()
    req_id = json.loads(frame)["req_id"]
    sent = []
    for _ in range(10_000):
        ack = {"success": False, "ret_msg": "error:handler not found,topic:tickers.NOTASKED", "req_id": req_id,
               "op": "subscribe"}
        ctl = s.parse(json.dumps(ack).encode())
        assert ctl.kind == SUB_REJECTED
        sent += ctl.frames
        if ctl.frames:
            req_id = json.loads(ctl.frames[-1])["req_id"]
    assert len(sent) <= 5  # was 10,000: the whole batch again on every ack
    assert s.topics == ["tickers.BTCUSDT", "tickers.ETHUSDT"]
    s.clock.t += 60
    [held] = s.due_frames()
    assert json.loads(held)["args"] == ["tickers.BTCUSDT", "tickers.ETHUSDT"]
    # a new connection starts with a full allowance
    s.on_connect()
    assert s.resubscribes.ready(bybit.RESUBSCRIBE_KEY)
