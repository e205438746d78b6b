"""The CoinDCX simulator, spoken to directly (websocket-client, requests), not through the parser:
the socket.io EIO4 handshake, joins, the server-driven heartbeat, REST shapes and the fault switches."""

from __future__ import annotations

import json
import time

import pytest
import requests
import websocket

from tests.sim import Simulator
from tests.sim.coindcx import FUTURES, INACTIVE_FUTURES, RT_OMIT, SPOT, CoinDCXFaults

SIO = "socket.io/?EIO=4&transport=websocket"


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator(rate_hz=20).start()
    yield simulator
    simulator.stop()


@pytest.fixture(autouse=True)
def clean(sim):
    yield
    ex = sim.exchanges["coindcx"]
    ex.faults = CoinDCXFaults()
    sim.drop("coindcx")


def fault(sim, **kw) -> None:
    r = requests.post(f"http://127.0.0.1:{sim.port}/_sim/fault", json={"exchange": "coindcx", **kw}, timeout=5)
    assert r.status_code == 200, r.text


def rest(sim, path: str, **params) -> requests.Response:
    return requests.get(f"{sim.http_url('coindcx')}{path}", params=params, timeout=5)


def connect(sim, query: str = SIO, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(sim.ws_url("coindcx", query), timeout=timeout)


def handshake(sim) -> tuple[websocket.WebSocket, dict]:
    ws = connect(sim)
    first = ws.recv()
    assert first[0] == "0"
    ws.send("40")
    ack = ws.recv()
    assert ack.startswith("40{") and isinstance(json.loads(ack[2:])["sid"], str)
    return ws, json.loads(first[1:])


def join(ws, channel: str) -> None:
    ws.send("42" + json.dumps(["join", {"channelName": channel}], separators=(",", ":")))


def trades(ws, seconds: float) -> list[dict]:
    """Decoded `new-trade` data received within `seconds` (answering pings)."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ws.settimeout(max(0.01, end - time.monotonic()))
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        if frame == "2":
            ws.send("3")
        elif frame.startswith("42"):
            name, payload = json.loads(frame[2:])
            assert name == "new-trade" and payload["event"] == "new-trade"
            assert isinstance(payload["data"], str)  # a JSON string inside the event, as on the wire
            out.append(json.loads(payload["data"]))
    return out


# -- socket ------------------------------------------------------------------------------------


def test_open_packet_and_namespace_ack(sim):
    ws, info = handshake(sim)
    assert info["upgrades"] == [] and info["pingInterval"] == 25000 and info["pingTimeout"] == 20000
    assert info["maxPayload"] == 1000000 and isinstance(info["sid"], str)
    ws.close()


def test_join_brings_trades_at_the_rate(sim):
    ws, _ = handshake(sim)
    join(ws, "B-BTC_USDT@trades")
    got = trades(ws, 1.0)
    assert 10 <= len(got) <= 30, len(got)  # rate_hz=20
    t = got[-1]
    assert t["s"] == "B-BTC_USDT" and t["pr"] == "spot" and t["m"] in (0, 1)
    assert isinstance(t["p"], str) and float(t["p"]) > 0 and isinstance(t["q"], str)
    assert abs(t["T"] - time.time() * 1000) < 5000
    ws.send('42["leave",{"channelName":"B-BTC_USDT@trades"}]')
    time.sleep(0.2)
    trades(ws, 0.1)  # drain what was in flight
    assert trades(ws, 0.4) == []
    ws.close()


def test_unknown_and_rejected_channels_are_silently_ignored(sim):
    fault(sim, reject_symbols=["B-ETH_USDT"])
    ws, _ = handshake(sim)
    for channel in ("B-NOPE_USDT@trades", "B-ETH_USDT@trades", "B-BTC_USDT@nonsense", "B-OLD_USDT@trades"):
        join(ws, channel)
    assert trades(ws, 0.5) == []  # no ack, no error, no data
    join(ws, "B-SOL_USDT@trades")
    assert {t["s"] for t in trades(ws, 0.5)} == {"B-SOL_USDT"}
    ws.close()


def test_joins_before_the_namespace_connect_go_nowhere(sim):
    ws = connect(sim)
    ws.recv()
    join(ws, "B-BTC_USDT@trades")
    assert trades(ws, 0.4) == []
    ws.close()


@pytest.mark.timing
def test_a_client_that_never_answers_is_dropped_within_interval_plus_timeout(sim):
    fault(sim, ping_interval_s=0.5, ping_timeout_s=0.5)
    ws, info = handshake(sim)
    assert (info["pingInterval"], info["pingTimeout"]) == (500, 500)
    start = time.monotonic()
    pings = 0
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while time.monotonic() - start < 5:
            if ws.recv() == "2":
                pings += 1
    elapsed = time.monotonic() - start
    assert pings == 1 and 0.9 <= elapsed <= 1.6, (pings, elapsed)
    assert sim.exchanges["coindcx"].stats()["ping_timeouts"] >= 1


def test_a_client_that_answers_survives(sim):
    fault(sim, ping_interval_s=0.4, ping_timeout_s=0.3)
    ws, _ = handshake(sim)
    join(ws, "B-BTC_USDT@trades")
    pings = 0
    start = time.monotonic()
    while time.monotonic() - start < 2.0:  # five intervals
        frame = ws.recv()
        if frame == "2":
            pings += 1
            ws.send("3")
    assert pings >= 3 and ws.connected
    assert trades(ws, 0.2)  # still streaming
    ws.close()


def test_client_ping_and_malformed_packets_end_the_session(sim):
    for bad in ("2", "42nope"):
        ws, _ = handshake(sim)
        ws.send(bad)
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            for _ in range(100):
                ws.recv()


def test_app_level_ping_of_the_docs_sample_gets_no_answer(sim):
    ws, _ = handshake(sim)
    ws.send('42["ping",{"data":"Ping message"}]')
    assert trades(ws, 0.3) == [] and ws.connected
    ws.close()


def test_only_eio4_websocket_is_served(sim):
    for query, code in (("socket.io/?EIO=3&transport=websocket", 5), ("socket.io/?EIO=4&transport=polling", 0)):
        r = requests.get(f"{sim.http_url('coindcx')}/{query}", timeout=5)
        assert r.status_code == 400 and r.json()["code"] == code


def test_refuse_silent_garbage_drop(sim):
    fault(sim, refuse_connections=True)
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        connect(sim)
    assert exc.value.status_code == 503
    fault(sim, refuse_connections=False, ping_interval_s=0.3, ping_timeout_s=0.3)

    ws, _ = handshake(sim)
    join(ws, "B-BTC_USDT@trades")
    assert trades(ws, 0.3)
    fault(sim, silent=True)
    trades(ws, 0.3)  # what was already in flight (pings answered)
    ws.settimeout(1.0)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()  # no trades, no pings; and no ping means no pong owed: still connected
    assert ws.connected
    fault(sim, silent=False, garbage=['42["new-trade",{"event":"new-trade","data":"{broken"}]'])
    ws.settimeout(2.0)
    frames = [ws.recv() for _ in range(5)]
    assert '42["new-trade",{"event":"new-trade","data":"{broken"}]' in frames
    trades(ws, 0.1)
    fault(sim, drop=True)
    ws.settimeout(2.0)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(200):
            ws.recv()


# -- REST --------------------------------------------------------------------------------------


def test_rt_prices_shape(sim):
    body = rest(sim, "/market_data/v3/current_prices/futures/rt").json()
    assert set(body) == {"ts", "vs", "prices"} and isinstance(body["ts"], int)
    prices = body["prices"]
    assert set(prices) == set(FUTURES) | set(INACTIVE_FUTURES)
    btc = prices["B-BTC_USDT"]
    assert {"ls", "mp", "fr", "efr", "h", "l", "v", "pc", "btST", "bmST", "mkt"} <= set(btc) and btc["mkt"] == "BTCUSDT"
    assert all(isinstance(btc[k], (int, float)) for k in ("ls", "mp", "fr", "efr", "h", "l", "v", "pc"))
    for pair, keys in RT_OMIT.items():
        assert not set(keys) & set(prices[pair])
    frozen = prices["B-LUNA_USDT"]
    assert "ls" not in frozen and frozen["bmST"] < body["ts"] - 3_600_000
    assert rest(sim, "/market_data/v3/current_prices/futures/rt").json()["vs"] > body["vs"]
    text = rest(sim, "/market_data/v3/current_prices/futures/rt").text
    assert '"fr": 5e-05' in text or '"fr":5e-05' in text  # exponent form on the wire


def test_active_instruments_and_details(sim):
    path = "/exchange/v1/derivatives/futures/data"
    r = requests.get(f"{sim.http_url('coindcx')}{path}/active_instruments?margin_currency_short_name[]=USDT", timeout=5)
    assert r.json() == list(FUTURES)
    assert rest(sim, f"{path}/active_instruments", **{"margin_currency_short_name[]": "INR"}).json() == list(FUTURES)
    inst = rest(sim, f"{path}/instrument", pair="B-SOL_USDT", margin_currency_short_name="USDT").json()["instrument"]
    assert inst["pair"] == "B-SOL_USDT" and inst["funding_frequency"] == 4 and inst["kind"] == "perpetual"
    other = rest(sim, f"{path}/instrument", pair="B-NOPE_USDT", margin_currency_short_name="USDT")
    assert other.status_code == 200 and other.json()["instrument"]["pair"] != "B-NOPE_USDT"  # the quirk


def test_spot_ticker_and_markets_details(sim):
    rows = rest(sim, "/exchange/ticker").json()
    by_market = {r["market"]: r for r in rows}
    assert set(by_market) == {m for m, *_ in SPOT.values()}
    btc = by_market["BTCUSDT"]
    assert all(isinstance(btc[k], str) for k in ("change_24_hour", "high", "low", "volume", "last_price", "bid", "ask"))
    assert abs(btc["timestamp"] - time.time()) < 5  # seconds, as on the wire
    assert float(btc["volume"]) > 1000 * float(btc["last_price"])  # quote-currency volume
    assert by_market["XTZBTC"]["bid"] == by_market["XTZBTC"]["ask"] == "0.00000000"
    details = {d["pair"]: d for d in rest(sim, "/exchange/v1/markets_details").json()}
    assert details["B-BTC_USDT"]["coindcx_name"] == "BTCUSDT"
    assert details["B-BTC_USDT"]["target_currency_short_name"] == "BTC"  # the base, in the docs' naming
    assert details["B-BTC_USDT"]["base_currency_short_name"] == "USDT"
    assert details["B-OLD_USDT"]["status"] == "inactive"


def test_rest_faults(sim):
    fault(sim, rest_errors=[429, 500, "garbage", "timeout"])
    r = rest(sim, "/exchange/ticker")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert rest(sim, "/market_data/v3/current_prices/futures/rt").status_code == 500
    r = rest(sim, "/exchange/v1/markets_details")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    with pytest.raises(requests.Timeout):
        requests.get(f"{sim.http_url('coindcx')}/exchange/ticker", timeout=0.5)
    assert rest(sim, "/exchange/ticker").status_code == 200  # the queue is spent


def test_the_module_reads_what_the_simulator_serves(sim):
    """Not a test of the simulator: a cross-check that both were built from the same facts."""
    from workers.exchanges import coindcx

    fp = coindcx.FuturesPrices([*FUTURES, "B-LUNA_USDT"])
    res = fp.parse(rest(sim, coindcx.RT_PRICES_PATH).json())
    # LUNA is inactive: its frozen mark is in the reply (the wiring filters it by the active list), no trade.
    assert res.errors == [] and res.missing == [] and {u.symbol for u in res.updates} == {*FUTURES, "B-LUNA_USDT"}
    assert all("ltp" in u.fields for u in res.updates if u.symbol != "B-LUNA_USDT")
    markets = coindcx.parse_markets_details(rest(sim, coindcx.MARKETS_DETAILS_PATH).json())
    ticker = coindcx.SpotTicker({m.market: p for p, m in markets.items() if m.status == "active"})
    res = ticker.parse(rest(sim, coindcx.SPOT_TICKER_PATH).json(), ltp_for=set(markets))
    assert res.errors == [] and {u.symbol for u in res.updates} == {p for p, m in markets.items() if m.status == "active"}
    s = coindcx.SpotTradesStream("t", sim.ws_url("coindcx", ""), ["B-BTC_USDT"])
    ws = websocket.create_connection(s.url, timeout=5)
    s.on_connect()
    for _ in range(2):
        ctl = s.parse(ws.recv().encode())
        for frame in ctl.frames:
            ws.send(frame)
    [u] = s.parse(ws.recv().encode())
    assert u.symbol == "B-BTC_USDT" and s.silence_timeout == 45.0
    ws.close()
