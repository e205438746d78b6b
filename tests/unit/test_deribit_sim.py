"""The Deribit simulator speaks the documented protocol: checked with websocket-client and requests directly,
and with the protocol module parsing what it sends."""

from __future__ import annotations

import json
import time

import pytest
import requests
import websocket

from tests.sim import Simulator
from workers.exchanges import deribit as d
from workers.runtime.fields import PARSER_FIELDS
from workers.runtime.model import REPLY, SUBSCRIBED, Update


@pytest.fixture
def sim():
    s = Simulator(rate_hz=20).start()
    yield s
    s.stop()


def connect(sim: Simulator) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://127.0.0.1:{sim.port}/deribit/ws/api/v2", timeout=5)


def call(ws: websocket.WebSocket, rid: int, method: str, params: dict) -> dict:
    """Send a request; the reply with its id (pushes before it are skipped)."""
    ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    while True:
        msg = json.loads(ws.recv())
        if msg.get("id") == rid:
            return msg


def rest(sim: Simulator, method: str, **params) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{sim.port}/deribit/api/v2/public/{method}", params=params, timeout=5)


def test_rest_lists_instruments_and_index(sim):
    body = rest(sim, "get_instruments", currency="BTC", kind="option", expired="false").json()
    names = [r["instrument_name"] for r in body["result"]]
    assert body["jsonrpc"] == "2.0" and len(names) == 3 * 17 * 2 and all(n.startswith("BTC-") for n in names)
    contracts = d.option_contracts(d.instrument_rows(body))
    assert len(contracts) == len(names) and {c.settle for c in contracts} == {"BTC"}
    futures = d.instrument_rows(rest(sim, "get_instruments", currency="BTC", kind="future").json())
    assert {"BTC-PERPETUAL"} < {r["instrument_name"] for r in futures} and len(futures) == 3
    assert [r["instrument_name"] for r in d.instrument_rows(rest(sim, "get_instruments", currency="USDC", kind="future").json())] == [
        "BTC_USDC-PERPETUAL"]
    assert 60_000 < d.index_price(rest(sim, "get_index_price", index_name="btc_usd").json()) < 70_000
    bad = rest(sim, "get_index_price", index_name="doge_usd")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32602


def test_subscribe_leaves_refused_channels_out_and_pushes_parse(sim):
    sim.exchanges["deribit"].faults.reject_symbols = {"ETH-PERPETUAL"}
    ws = connect(sim)
    try:
        asked = ["ticker.BTC-PERPETUAL.100ms", "ticker.ETH-PERPETUAL.100ms", "ticker.BTC-PERPETUAL.raw",
                 "ticker.NOSUCH-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms"]
        reply = call(ws, 7, "public/subscribe", {"channels": asked})
        assert reply["result"] == ["ticker.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms"]
        assert {"usIn", "usOut", "usDiff", "testnet"} <= reply.keys()
        stream = d.DeribitStream("t", "ws://x", ["BTC-PERPETUAL"])
        stream.on_connect()
        seen = set()
        deadline = time.monotonic() + 5
        while seen != {"ticker", "trades"} and time.monotonic() < deadline:
            msg = ws.recv()
            out = stream.parse(msg)
            assert isinstance(out, list)
            for u in out:
                assert isinstance(u, Update) and set(u.fields) <= PARSER_FIELDS
                seen.add("trades" if "ltp" in u.fields else "ticker")
        assert seen == {"ticker", "trades"}
    finally:
        ws.close()


def test_requests_without_id_too_large_or_unknown_are_errors(sim):
    ws = connect(sim)
    try:
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "public/test", "params": {}}))
        assert json.loads(ws.recv())["error"]["code"] == -32600
        assert call(ws, 1, "public/nosuch", {})["error"]["code"] == -32601
        assert call(ws, 2, "public/set_heartbeat", {"interval": 5})["error"]["code"] == -32602
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "public/subscribe",
                            "params": {"channels": ["ticker.BTC-PERPETUAL.100ms"] * 1200}}))  # 36 kB: not read
        assert json.loads(ws.recv())["error"] == {"code": -32600, "message": "request entity too large"}
    finally:
        ws.close()


def test_subscribe_credits_run_out_with_10028_and_a_closed_session(sim):
    ws = connect(sim)
    try:
        answers = [call(ws, i, "public/subscribe", {"channels": ["ticker.BTC-PERPETUAL.100ms"]}) for i in range(1, 12)]
        assert all("result" in a for a in answers[:10])
        assert answers[10]["error"]["code"] == 10028
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                ws.recv()
    finally:
        ws.close()
    assert sim.exchanges["deribit"].too_many_requests == 1


def test_test_request_answered_keeps_the_connection_unanswered_closes_it(sim):
    dsim = sim.exchanges["deribit"]
    dsim.heartbeat_interval_s = 0.2
    stream = d.DeribitStream("t", "ws://x", ["BTC-PERPETUAL"])
    ws = connect(sim)
    try:
        for frame in stream.on_connect()[:1]:  # set_heartbeat only
            ws.send(frame)
        answered = 0
        while answered < 3:
            out = stream.parse(ws.recv())
            if not isinstance(out, list) and out.kind == REPLY:
                ws.send(out.frames[0])
                answered += 1
        assert dsim.heartbeat_closes == 0
        # Stop answering: the server closes the connection.
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                ws.recv()
    finally:
        ws.close()
    assert dsim.heartbeat_closes == 1 and dsim.tests_answered == 3


def test_the_stream_against_the_simulator_subscribes_everything(sim):
    body = rest(sim, "get_instruments", currency="BTC", kind="option").json()
    names = [r["instrument_name"] for r in body["result"]]
    stream = d.DeribitStream("t", "ws://x", names, pacer=d.SubscribePacer(burst=10))
    ws = connect(sim)
    try:
        for frame in stream.on_connect():
            ws.send(frame)
        while True:
            out = stream.parse(ws.recv())
            if not isinstance(out, list) and out.kind == SUBSCRIBED:
                assert out.detail == f"{2 * len(names)} channel(s)"
                break
    finally:
        ws.close()
