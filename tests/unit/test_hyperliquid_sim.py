"""The Hyperliquid simulator speaks the documented protocol: checked with websocket-client and requests directly,
and with the protocol module parsing what it sends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import websocket

from tests.sim import Simulator
from workers.exchanges import hyperliquid as hl
from workers.runtime.fields import PARSER_FIELDS
from workers.runtime.model import IGNORED, PONG, SUBSCRIBED, Control, ParseError

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "hyperliquid"


@pytest.fixture
def sim():
    s = Simulator(rate_hz=20).start()
    yield s
    s.stop()


def hsim(sim: Simulator):
    return sim.exchanges["hyperliquid"]


def connect(sim: Simulator, timeout: float = 5.0) -> websocket.WebSocket:
    ws = websocket.create_connection(f"ws://127.0.0.1:{sim.port}/hyperliquid/ws", timeout=timeout)
    assert ws.recv() == hl.GREETING  # plain text, first
    return ws


def info(sim: Simulator, body: dict) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{sim.port}/hyperliquid{hl.INFO_PATH}", json=body, timeout=5)


def frames_for(ws: websocket.WebSocket, seconds: float) -> list[dict]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        ws.settimeout(max(0.05, end - time.monotonic()))
        try:
            out.append(json.loads(ws.recv()))
        except websocket.WebSocketTimeoutException:
            break
    return out


def closed_within(ws: websocket.WebSocket, seconds: float) -> float | None:
    """Seconds until the server dropped the connection, or None if it is still open after `seconds`."""
    start = time.monotonic()
    ws.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if ws.recv() == "":
                return time.monotonic() - start
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return time.monotonic() - start
    return None


# -- REST ------------------------------------------------------------------------------------------


def test_info_meta_and_resolution(sim):
    meta = info(sim, hl.meta_request()).json()
    coins, rejected = hl.resolve_perp(meta, ["BTC", "kPEPE", "MATIC", "NOPE"])
    assert coins == ["BTC", "kPEPE"] and rejected["MATIC"] == "delisted" and "unknown" in rejected["NOPE"]
    spot_meta = info(sim, hl.spot_meta_request()).json()
    found, rejected = hl.resolve_spot(spot_meta, ["HYPE/USDC", "PURR/USDC", "HFUN/USDC", "NOPE/USDC"])
    assert found == {"HYPE/USDC": "@107", "PURR/USDC": "PURR/USDC", "HFUN/USDC": "@1"} and list(rejected) == ["NOPE/USDC"]
    hype = next(u for u in spot_meta["universe"] if u["name"] == "@107")
    assert hype["index"] == 107 and hype["tokens"] == [150, 0]  # the token index differs from the pair index


def test_info_asset_contexts(sim):
    meta, ctxs = info(sim, hl.meta_and_ctxs_request()).json()
    assert len(ctxs) == len(meta["universe"])
    matic = ctxs[[u["name"] for u in meta["universe"]].index("MATIC")]
    assert matic["midPx"] is None and matic["premium"] is None and matic["impactPxs"] is None and matic["funding"] == "0.0"
    assert all(isinstance(v, str) for v in ctxs[0].values() if not isinstance(v, list))
    [u], bad = hl.ctx_updates(hl.PERP, [meta, ctxs], {"BTC": "BTC"}, 1)
    assert bad == {}
    assert {"mark_price", "index_price", "funding_rate", "open_interest"} <= set(u.fields)
    spot_meta, spot_ctxs = info(sim, hl.spot_meta_and_ctxs_request()).json()
    assert {c["coin"] for c in spot_ctxs} == {u["name"] for u in spot_meta["universe"]}
    updates, _ = hl.ctx_updates(hl.SPOT, [spot_meta, spot_ctxs], {"@107": "HYPE/USDC", "@1": "HFUN/USDC"}, 1)
    by = {u.symbol: u.fields for u in updates}
    assert "mid_price" in by["HYPE/USDC"] and "mid_price" not in by["HFUN/USDC"]  # @1 has no asks: midPx null


def test_info_errors(sim):
    url = f"http://127.0.0.1:{sim.port}/hyperliquid/info"
    assert requests.get(url, timeout=5).status_code == 405
    assert requests.post(url, data="type=meta", headers={"Content-Type": "text/plain"}, timeout=5).status_code == 415
    assert info(sim, {"type": "nope"}).status_code == 422
    assert info(sim, {"type": "meta", "dex": "nope"}).status_code == 500
    assert info(sim, {"type": "l2Book", "coin": "NOPE"}).json() is None
    hsim(sim).faults.rest_errors = [429, 500]
    r = info(sim, hl.meta_request())
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert info(sim, hl.meta_request()).status_code == 500
    assert info(sim, hl.meta_request()).status_code == 200


# -- WebSocket --------------------------------------------------------------------------------------


def test_subscribe_ack_then_data_parsed_by_the_module(sim):
    ws = connect(sim)
    stream = hl.HyperliquidStream("spot#0", "ws://x", hl.SPOT, {"@107": "HYPE/USDC", "PURR/USDC": "PURR/USDC", "@1": "HFUN/USDC"})
    for frame in stream.on_connect():
        ws.send(frame)
    controls, fields = [], {}
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        raw = ws.recv()
        out = stream.parse(raw)
        if isinstance(out, Control):
            controls.append(out.kind)
            continue
        for u in out:
            merged = fields.setdefault(u.symbol, {})
            merged.update(u.fields)
            for k in [k for k, v in merged.items() if v is None]:  # deleted, as the sink does
                del merged[k]
    ws.close()
    assert controls.count(SUBSCRIBED) == 1 and stream.unacked() == []
    hype = fields["HYPE/USDC"]
    assert {"ltp", "mark_price", "mid_price", "best_bid", "best_ask", "circulating_supply", "price_change_percent"} <= set(hype)
    assert hype["original_symbol"] == "@107" and fields["PURR/USDC"]["original_symbol"] == "PURR/USDC"
    assert "best_ask" not in fields["HFUN/USDC"] and "mid_price" not in fields["HFUN/USDC"]  # one-sided book
    assert set().union(*fields.values()) <= PARSER_FIELDS


def test_perp_stream_and_a_delisted_coin(sim):
    ws = connect(sim)
    stream = hl.HyperliquidStream("perp#0", "ws://x", hl.PERP, {"BTC": "BTC", "MATIC": "MATIC"})
    for frame in stream.on_connect():
        ws.send(frame)
    fields: dict[str, dict] = {}
    for raw in frames_for(ws, 1.5):
        out = stream.parse(json.dumps(raw))
        if not isinstance(out, Control):
            for u in out:
                fields.setdefault(u.symbol, {}).update(u.fields)
    ws.close()
    assert {"ltp", "mark_price", "index_price", "funding_rate", "next_funding_time", "premium", "best_bid"} <= set(fields["BTC"])
    # Delisted: acknowledged, a frozen context with null mid/premium, no trades, no bbo.
    assert "ltp" not in fields["MATIC"] and "best_bid" not in fields["MATIC"] and "premium" not in fields["MATIC"]
    assert fields["MATIC"]["funding_rate"] == "0.0"


def test_protocol_details(sim):
    ws = connect(sim)
    ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "trades", "coin": "SOL"}}))
    assert json.loads(ws.recv()) == json.loads((SAMPLES / "ws_subscriptionResponse_trades_SOL_docs.json").read_text())
    ws.send((SAMPLES / "ws_subscribe_allMids_docs.json").read_text())
    got = frames_for(ws, 1.2)
    assert {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {"type": "allMids"}}} in got
    mids = next(f for f in got if f["channel"] == "allMids")["data"]["mids"]
    assert "@107" in mids and "BTC" in mids and "MATIC" not in mids
    trades = [t for f in got if f["channel"] == "trades" for t in f["data"]]
    assert trades and all(isinstance(t["px"], str) and isinstance(t["time"], int) and t["coin"] == "SOL" for t in trades)
    # l2Book: the ack echoes the defaults; double subscribe and a coin array are errors on an open socket.
    ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}))
    ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "trades", "coin": "SOL"}}))
    ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "bbo", "coin": ["BTC", "ETH"]}}))
    ws.send((SAMPLES / "ws_post_l2Book_request_docs.json").read_text())
    got = frames_for(ws, 1.0)
    assert {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {
        "type": "l2Book", "coin": "BTC", "nSigFigs": None, "mantissa": None, "fast": False}}} in got
    errors = [f["data"] for f in got if f["channel"] == "error"]
    assert errors[0] == 'Already subscribed: {"type":"trades","coin":"SOL"}'
    assert errors[1].startswith("Error parsing JSON into valid websocket request: ")
    post = next(f for f in got if f["channel"] == "post")["data"]
    assert post["id"] == 123 and len(post["response"]["payload"]["data"]["levels"][0]) == 20
    book = next(f for f in got if f["channel"] == "l2Book")["data"]
    assert len(book["levels"][0]) == 20 and len(book["levels"][1]) == 20
    stream = hl.HyperliquidStream("t", "ws://x", hl.PERP, {"SOL": "SOL"})
    with pytest.raises(ParseError):
        stream.parse(json.dumps({"channel": "error", "data": errors[0]}))
    ws.send(json.dumps({"method": "ping"}))
    assert stream.parse(json.dumps(next(f for f in frames_for(ws, 0.5) if f["channel"] == "pong"))) == Control(PONG)
    ws.close()


def test_bbo_is_sent_only_when_it_changes(sim):
    ws = connect(sim)
    ws.send(hl.subscribe_frame("bbo", "ETH"))
    ws.send(hl.subscribe_frame("bbo", "@1"))
    got = frames_for(ws, 1.0)  # no trades subscribed: nothing moves the price after the first bbo
    ws.close()
    eth = [f["data"] for f in got if f["channel"] == "bbo" and f["data"]["coin"] == "ETH"]
    assert len(eth) == 1
    [one_sided] = [f["data"] for f in got if f["channel"] == "bbo" and f["data"]["coin"] == "@1"]
    assert one_sided["bbo"][1] is None and one_sided["bbo"][0]["px"]
    ws = connect(sim)
    ws.send(hl.subscribe_frame("trades", "ETH"))
    ws.send(hl.subscribe_frame("bbo", "ETH"))
    tops = [json.dumps(f["data"]["bbo"]) for f in frames_for(ws, 1.0) if f["channel"] == "bbo"]
    ws.close()
    assert len(tops) > 2 and all(a != b for a, b in zip(tops, tops[1:], strict=False))


def test_unknown_coin_closes_the_whole_socket(sim):
    ws = connect(sim)
    ws.send(hl.subscribe_frame("trades", "BTC"))
    assert json.loads(ws.recv())["channel"] == "subscriptionResponse"
    ws.send(hl.subscribe_frame("bbo", "btc"))  # wrong case is unknown too
    assert closed_within(ws, 2.0) is not None
    assert hsim(sim).kills["unknown_coin"] == 1
    hsim(sim).faults.reject_symbols = {"HYPE/USDC"}  # a listed coin the simulator treats as unknown
    ws = connect(sim)
    ws.send(hl.subscribe_frame("activeAssetCtx", "@107"))
    assert closed_within(ws, 2.0) is not None


@pytest.mark.timing
def test_idle_connection_is_closed_after_the_window(sim):
    hsim(sim).idle_close_s = 1.0
    ws = connect(sim)
    took = closed_within(ws, 4.0)
    assert took is not None and 0.7 <= took <= 2.5, took
    assert hsim(sim).kills["idle"] == 1


def test_a_ping_keeps_the_connection_open_past_the_window(sim):
    hsim(sim).idle_close_s = 1.0
    ws = connect(sim)
    stream = hl.HyperliquidStream("t", "ws://x", hl.PERP, {"BTC": "BTC"})
    pongs = 0
    start = time.monotonic()
    ws.settimeout(0.1)
    while time.monotonic() - start < 3.0:  # three windows
        ws.send(stream.ping_frame())
        try:
            pongs += stream.parse(ws.recv()) == Control(PONG)
        except websocket.WebSocketTimeoutException:
            pass
        time.sleep(0.4)
    assert pongs >= 5 and ws.connected
    assert closed_within(ws, 3.0) is not None  # and once the pings stop, the window applies


def test_subscribed_client_that_never_pings_is_closed_unless_the_server_side_counts(sim):
    hsim(sim).idle_close_s = 1.0
    ws = connect(sim)
    ws.send(hl.subscribe_frame("trades", "BTC"))
    assert closed_within(ws, 3.0) is not None  # default: the client's silence counts, data or not
    requests.post(f"http://127.0.0.1:{sim.port}/_sim/hyperliquid", json={"idle_counts": "server"}, timeout=5).raise_for_status()
    ws = connect(sim)
    ws.send(hl.subscribe_frame("trades", "BTC"))
    assert closed_within(ws, 2.5) is None  # the probe's reading: the server kept sending
    ws.close()
    ws = connect(sim)
    assert closed_within(ws, 3.0) is not None  # nothing to send (not subscribed): closed


def test_faults(sim):
    h = hsim(sim)
    h.faults.garbage = ["{not json"]
    ws = connect(sim)
    ws.send(hl.subscribe_frame("trades", "BTC"))
    got = []
    ws.settimeout(1.0)
    for _ in range(4):
        got.append(ws.recv())
    assert "{not json" in got
    h.faults.silent = True
    time.sleep(0.2)
    ws.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:
            ws.recv()
    h.faults.silent = False
    sim.drop("hyperliquid")
    assert closed_within(ws, 2.0) is not None
    h.faults.refuse_connections = True
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"ws://127.0.0.1:{sim.port}/hyperliquid/ws", timeout=5)
    stats = requests.get(f"http://127.0.0.1:{sim.port}/_sim/stats", timeout=5).json()["hyperliquid"]
    assert stats["connects"] == 1 and stats["frames_sent"] > 0


def test_the_module_ignores_the_greeting_it_gets_from_the_sim(sim):
    ws = websocket.create_connection(f"ws://127.0.0.1:{sim.port}/hyperliquid/ws", timeout=5)
    assert hl.HyperliquidStream("t", "ws://x", hl.PERP, {"BTC": "BTC"}).parse(ws.recv().encode()) == Control(IGNORED)
    ws.close()
