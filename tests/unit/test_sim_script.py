"""The simulator's script mode (Simulator(script=N)), which the golden test relies on: each topic gets
exactly N updates whose values do not depend on what else is subscribed, how fast, or when."""

from __future__ import annotations

import json
import time

import pytest
import websocket

from tests.sim import Simulator

N = 4


@pytest.fixture
def sim():
    s = Simulator(rate_hz=50, script=N).start()
    yield s
    s.stop()


def ticker_values(sim: Simulator, args: list[str], wanted: str, linger: float = 0.5, most: int = 3 * N) -> list[dict]:
    """The data of the `wanted` frames on a fresh connection subscribed to `args`: until quiet for
    `linger` s, at most `most` of them."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{sim.port}/bybit/v5/public/linear", timeout=linger)
    out: list[dict] = []
    try:
        ws.send(json.dumps({"req_id": "1", "op": "subscribe", "args": args}))
        while len(out) < most:
            try:
                frame = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                return out
            if frame.get("topic") == wanted:
                out.append(frame["data"])
        return out
    finally:
        ws.close()


def test_each_topic_gets_n_updates_whatever_else_is_subscribed(sim):
    alone = ticker_values(sim, ["tickers.BTCUSDT"], "tickers.BTCUSDT")
    time.sleep(0.3)  # another moment, and the walk of other symbols in between
    crowded = ticker_values(sim, ["tickers.ETHUSDT", "orderbook.50.BTCUSDT", "tickers.BTCUSDT"], "tickers.BTCUSDT")
    assert len(alone) == N and crowded == alone
    assert len({d["lastPrice"] for d in alone}) > 1  # the script moves the market; it is not frozen


def test_script_end_is_reported_and_default_mode_is_unscripted(sim):
    ticker_values(sim, ["tickers.BTCUSDT", "orderbook.50.BTCUSDT"], "tickers.BTCUSDT", linger=0.1)
    stats = sim.call(_stats, sim)
    assert stats["bybit"]["script_pending"] == 0
    live = Simulator(rate_hz=50).start()
    try:
        assert len(ticker_values(live, ["tickers.BTCUSDT"], "tickers.BTCUSDT", linger=0.5)) > N
        assert "script_pending" not in live.call(_stats, live)["bybit"]
    finally:
        live.stop()


async def _stats(sim: Simulator) -> dict:
    return {name: ex.stats() for name, ex in sim.exchanges.items()}
