"""The OKX simulator speaks the documented protocol: checked with websocket-client and requests directly
(frame shapes as in the docs' samples), and with the protocol module parsing what it sends."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import websocket

from tests.sim import Simulator
from workers.exchanges import okx
from workers.runtime.declare import DERIVATIVE
from workers.runtime.fields import PARSER_FIELDS
from workers.runtime.model import Control


@pytest.fixture
def sim():
    s = Simulator(rate_hz=20).start()
    yield s
    s.stop()


def connect(sim: Simulator, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(sim.ws_url("okx", "ws/v5/public"), timeout=timeout)


def recv_json(ws: websocket.WebSocket) -> dict:
    while True:
        text = ws.recv()
        if text != "pong":
            return json.loads(text)


def test_acks_per_arg_with_the_request_id_and_60018_without_arg(sim):
    ws = connect(sim)
    ws.send(json.dumps({"id": "1512", "op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"},
                                                                 {"channel": "tickers", "instId": "LTC-USD"}]}))
    frames = [recv_json(ws) for _ in range(3)]
    ack = next(f for f in frames if f.get("event") == "subscribe")
    assert ack["id"] == "1512" and ack["arg"] == {"channel": "tickers", "instId": "BTC-USDT"} and "connId" in ack
    err = next(f for f in frames if f.get("event") == "error")
    assert err["code"] == "60018" and "arg" not in err and "channel:tickers,instId:LTC-USD" in err["msg"]
    push = next(f for f in frames if "data" in f)
    row = push["data"][0]
    assert push["arg"] == ack["arg"] and all(isinstance(v, str) for v in row.values()) and row["ts"].isdigit()
    ws.send("ping")
    deadline = time.monotonic() + 5
    while ws.recv() != "pong":
        assert time.monotonic() < deadline
    ws.send("{bad")
    assert recv_json(ws)["code"] == "60012"
    ws.close()


@pytest.mark.timing
def test_idle_connection_is_closed_with_4004_unless_pings_keep_it(sim):
    okx_sim = sim.exchanges["okx"]
    okx_sim.idle_close_s = 0.6
    pinged = connect(sim)
    pinged.send(json.dumps({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}))
    okx_sim.faults.no_data = True  # from here on only pongs come to `pinged`
    stop = threading.Event()

    def ping() -> None:
        while not stop.wait(0.2):
            pinged.send("ping")

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    quiet = connect(sim)  # subscribes nothing, pings nothing
    t0 = time.monotonic()
    try:
        opcode, payload = quiet.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(payload[:2], "big") == 4004
        assert b"No data received in 30s" in payload and time.monotonic() - t0 < 3
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
        assert okx_sim.idle_closes == 1 and pinger.is_alive()
    finally:
        stop.set()
        pinger.join(2)
    quiet.close()
    pinged.close()


def test_notice_then_close_and_the_parser_reads_every_channel_into_contract_fields(sim):
    okx_sim = sim.exchanges["okx"]
    okx_sim.notice_close_s = 0.5
    body = requests.get(f"{sim.http_url('okx')}{okx.INSTRUMENTS_PATH}", params={"instType": "SWAP"}, timeout=5).json()
    live = okx.live_instruments(okx.rows_of(body, okx.INSTRUMENTS_PATH))
    assert "DOGE-USDT-SWAP" not in live and live["BTC-USD-SWAP"]["ctType"] == "inverse"
    symbols = ["BTC-USDT-SWAP", "BTC-USD-SWAP"]
    stream = okx.OkxStream("t", "", DERIVATIVE, symbols, info={s: okx.swap_info(live[s]) for s in symbols})
    ws = connect(sim)
    for frame in stream.on_connect():
        ws.send(frame)
    fields: dict[str, dict] = {s: {} for s in symbols}
    controls = []
    deadline = time.monotonic() + 5
    while not all({"ltp", "index_price", "open_interest", "funding_rate", "turnover_24h"} <= f.keys() for f in fields.values()):
        assert time.monotonic() < deadline, fields
        out = stream.parse(ws.recv().encode())
        if isinstance(out, Control):
            controls.append(out.kind)
        else:
            for u in out:
                assert set(u.fields) <= PARSER_FIELDS
                fields[u.symbol].update(u.fields)
    assert "subscribed" in controls
    assert sim.call(okx_sim.notice) == 1
    kinds = []
    while True:
        opcode, payload = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        out = stream.parse(payload)
        kinds += [out.kind] if isinstance(out, Control) else []
    assert "planned_reconnect" in kinds


def test_rest_rate_limit_answers_are_okx_shaped(sim):
    okx_sim = sim.exchanges["okx"]
    okx_sim.faults.rest_errors = [429, "50011"]
    url = f"{sim.http_url('okx')}{okx.INSTRUMENTS_PATH}"
    first = requests.get(url, params={"instType": "SPOT"}, timeout=5)
    second = requests.get(url, params={"instType": "SPOT"}, timeout=5)
    assert (first.status_code, first.json()["code"]) == (429, "50011")
    assert (second.status_code, second.json()["code"]) == (200, "50011")
    for reply in (first, second):
        with pytest.raises(okx.RestError, match="rate limited"):
            okx.rows_of(reply.json(), okx.INSTRUMENTS_PATH)
    ok = requests.get(url, params={"instType": "SPOT"}, timeout=5).json()
    assert "BTC-USDT" in okx.live_instruments(okx.rows_of(ok, okx.INSTRUMENTS_PATH))
