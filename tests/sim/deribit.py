"""Deribit API v2 as documented (docs/exchanges/deribit.md): JSON-RPC 2.0 over one WebSocket, and
REST `public/get_instruments` / `public/get_index_price`.

    ws://127.0.0.1:<port>/deribit/ws/api/v2        (wss://www.deribit.com/ws/api/v2)
    http://127.0.0.1:<port>/deribit/api/v2/public/  (https://www.deribit.com/api/v2/public/)

What the docs say, as served here: a request without `id` is refused; replies echo the id with
`usIn`/`usOut`/`usDiff`/`testnet`; `public/subscribe` answers with the channels it subscribed and
silently leaves out the others (unknown instrument, `raw` without authentication, or an instrument
in `faults.reject_symbols`); a subscribe costs 3,000 of 30,000 credits refilled at 10,000/s and
running out answers 10028 `too_many_requests` and ends the session; a frame over 32 kB is refused
(-32600); `public/set_heartbeat` (interval >= 10) starts `heartbeat` frames of type `heartbeat`
and `test_request`, and a `test_request` without a `public/test` within the deadline closes the
connection. Option prices are in the coin and IVs in percent; perpetual open interest is in USD.

Switches on DeribitSim (set in-process): `heartbeat_interval_s` (None: the interval the client
asked for; tests use a fraction of a second), `test_deadline_s` (None: one interval),
`trade_every` (options trade on one tick in N; futures on every tick). `expire_nearest(coin)`
delists an expiry and `add_expiry(coin, weeks)` lists one (through `Simulator.call` or directly).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from aiohttp import web

from .market import Instrument, black_scholes, now_ms, smile_iv
from .server import ExchangeSim, SimSession

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
STRIKE_STEP = {"BTC": 1000, "ETH": 50}
STRIKES_EACH_SIDE = 8
PERPETUAL_EXPIRY_MS = 32503708800000  # the docs' example: year 3000
MAX_FRAME_BYTES = 32 * 1024
SUBSCRIBE_COST, SUBSCRIBE_POOL, SUBSCRIBE_REFILL_PER_S = 3000, 30000, 10000
MIN_HEARTBEAT_S = 10
INTERVALS = {"100ms", "agg2", "raw"}
INDEX_STEP_S = 0.05


def _code(day: dt.datetime | dt.date) -> str:
    """Deribit's expiry code: day without a leading zero, month, two-digit year (5AUG23, 27DEC26)."""
    return f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"


def _round(value: float, step: float) -> float:
    return round(round(value / step) * step, 8)


class DeribitSession(SimSession):
    def __init__(self, sim: DeribitSim, ws: web.WebSocketResponse) -> None:
        super().__init__(sim, ws)
        self.sim: DeribitSim = sim
        self.channels: dict[str, None] = {}   # subscribed channels, in order
        self.heartbeat_on = asyncio.Event()
        self.heartbeat_s = 0.0
        self.awaiting_test = False
        self.credits = float(SUBSCRIBE_POOL)
        self.credits_at = time.monotonic()
        self.tick = 0

    # -- requests -------------------------------------------------------------------------

    def _envelope(self, rid: Any, **body: Any) -> dict:
        now_us = time.time_ns() // 1000
        return {"jsonrpc": "2.0", "id": rid, **body, "usIn": now_us, "usOut": now_us + 120, "usDiff": 120, "testnet": False}

    async def _error(self, rid: Any, code: int, message: str) -> None:
        await self.send(self._envelope(rid, error={"code": code, "message": message}))

    async def on_text(self, text: str) -> None:
        if len(text.encode()) > MAX_FRAME_BYTES:
            await self._error(None, -32600, "request entity too large")
            return
        try:
            req = json.loads(text)
        except ValueError:
            await self._error(None, -32700, "Parse error")
            return
        if not isinstance(req, dict) or "id" not in req:
            await self._error(None, -32600, "Invalid Request")  # the docs: `id` is mandatory
            return
        rid, method, params = req["id"], req.get("method"), req.get("params") or {}
        self.sim.requests.append(method)
        if method == "public/set_heartbeat":
            interval = params.get("interval")
            if not isinstance(interval, (int, float)) or interval < MIN_HEARTBEAT_S:
                await self._error(rid, -32602, "Invalid params")
                return
            self.heartbeat_s = float(interval)
            self.heartbeat_on.set()
            await self.send(self._envelope(rid, result="ok"))
        elif method == "public/test":
            self.awaiting_test = False
            self.sim.tests_answered += 1
            await self.send(self._envelope(rid, result={"version": "1.2.26"}))
        elif method in ("public/subscribe", "public/unsubscribe"):
            await self.subscribe(rid, method, params.get("channels"))
        else:
            await self._error(rid, -32601, "Method not found")

    def _credit(self) -> bool:
        now = time.monotonic()
        self.credits = min(SUBSCRIBE_POOL, self.credits + (now - self.credits_at) * SUBSCRIBE_REFILL_PER_S)
        self.credits_at = now
        if self.credits < SUBSCRIBE_COST:
            return False
        self.credits -= SUBSCRIBE_COST
        return True

    def _valid(self, channel: str) -> bool:
        parts = channel.split(".")
        if len(parts) != 3 or parts[0] not in ("ticker", "trades") or parts[2] not in INTERVALS:
            return False
        if parts[2] == "raw":  # raw needs an authorized session: left out for a public client
            return False
        return parts[1] in self.sim.listed() and parts[1] not in self.sim.faults.reject_symbols

    async def subscribe(self, rid: Any, method: str, channels: Any) -> None:
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            await self._error(rid, -32602, "Invalid params")
            return
        if method == "public/subscribe":
            self.sim.subscribe_requests += 1
            if not self._credit():
                self.sim.too_many_requests += 1
                await self._error(rid, 10028, "too_many_requests")
                await self.ws.close(code=1000, message=b"too_many_requests")
                return
            done = [c for c in channels if self._valid(c)]
            for c in done:
                self.channels[c] = None
        else:
            done = [c for c in channels if c in self.channels]
            for c in done:
                self.channels.pop(c, None)
        await self.send(self._envelope(rid, result=done))

    # -- heartbeat --------------------------------------------------------------------------

    async def heartbeat_loop(self) -> None:
        await self.heartbeat_on.wait()
        while not self.ws.closed:
            period = self.sim.heartbeat_interval_s or self.heartbeat_s
            await asyncio.sleep(period)
            await self.send({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}})
            if self.sim.faults.silent:
                continue  # nothing went out: nothing to answer
            self.awaiting_test = True
            self.sim.test_requests += 1
            await self.send({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
            await asyncio.sleep(self.sim.test_deadline_s or period)
            if self.awaiting_test and not self.ws.closed:
                self.sim.heartbeat_closes += 1
                await self.ws.close(code=1000, message=b"test_request not answered")
                return

    # -- data -------------------------------------------------------------------------------

    async def publish_once(self) -> None:
        faults = self.sim.faults
        while faults.garbage:
            await self.send(faults.garbage.pop(0))
        if faults.no_data:
            return
        self.tick += 1
        for channel in list(self.channels):
            kind, symbol, _ = channel.split(".")
            frame = self.script_frame(channel, self.sim.data, kind, symbol, self.tick)
            if frame is not None:
                await self.send({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": frame}})


class DeribitSim(ExchangeSim):
    name = "deribit"

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.heartbeat_interval_s: float | None = None
        self.test_deadline_s: float | None = None
        self.trade_every = 3
        self.subscribe_requests = 0
        self.too_many_requests = 0
        self.test_requests = 0
        self.tests_answered = 0
        self.heartbeat_closes = 0
        self.requests: list[Any] = []
        self._walks: dict[str, Instrument] = {}
        self._index_moved: dict[str, float] = {}
        self.rows: dict[str, dict] = {}
        today = self.sim.model_now().replace(hour=8, minute=0, second=0, microsecond=0)
        for coin in STRIKE_STEP:
            self._future_row(f"{coin}-PERPETUAL", coin, "USD", PERPETUAL_EXPIRY_MS, today)
            for months in (1, 2):  # monthlies: the last Friday of the next two months
                first = (today.replace(day=1) + dt.timedelta(days=32 * months)).replace(day=1)
                last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
                last -= dt.timedelta(days=(last.weekday() - 4) % 7)
                self._future_row(f"{coin}-{_code(last)}", coin, "USD", int(last.timestamp() * 1000), today)
            for weeks in (1, 2, 3):
                self.add_expiry(coin, weeks)
        self._future_row("BTC_USDC-PERPETUAL", "BTC", "USDC", PERPETUAL_EXPIRY_MS, today)

    # -- listing ------------------------------------------------------------------------------

    def _future_row(self, name: str, coin: str, quote: str, expiry_ms: int, today: dt.datetime) -> None:
        linear = quote != "USD"
        self.rows[name] = {
            "tick_size": 0.5 if coin == "BTC" else 0.05, "tick_size_steps": [], "taker_commission": 0.0005,
            "settlement_period": "perpetual" if expiry_ms == PERPETUAL_EXPIRY_MS else "month",
            "settlement_currency": quote if linear else coin, "quote_currency": quote, "price_index": f"{coin.lower()}_usd",
            "min_trade_amount": 0.001 if linear else 10, "max_liquidation_commission": 0.0075, "max_leverage": 50,
            "maker_commission": 0, "kind": "future", "is_active": True, "instrument_name": name,
            "instrument_id": 100000 + len(self.rows), "instrument_type": "linear" if linear else "reversed",
            "expiration_timestamp": expiry_ms, "creation_timestamp": int(today.timestamp() * 1000) - 86_400_000 * 90,
            "counter_currency": quote, "contract_size": 0.001 if linear else 10, "base_currency": coin, "state": "open",
        }

    def add_expiry(self, coin: str, weeks_ahead: int) -> list[str]:
        """List an expiry (Friday 08:00 UTC, `weeks_ahead` weeks out) with strikes around the index."""
        today = self.sim.model_now().replace(hour=8, minute=0, second=0, microsecond=0)
        friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 + 7 * weeks_ahead)
        step = STRIKE_STEP[coin]
        centre = round(self.index(coin).price / step) * step
        added = []
        for k in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1):
            for kind in ("C", "P"):
                name = f"{coin}-{_code(friday)}-{centre + k * step}-{kind}"
                self.rows[name] = {
                    "tick_size": 0.0001, "taker_commission": 0.0003, "strike": centre + k * step, "settlement_period": "week",
                    "settlement_currency": coin, "quote_currency": coin, "price_index": f"{coin.lower()}_usd",
                    "option_type": "call" if kind == "C" else "put", "min_trade_amount": 0.1, "maker_commission": 0.0003,
                    "kind": "option", "is_active": True, "instrument_name": name, "instrument_id": 200000 + len(self.rows),
                    "expiration_timestamp": int(friday.timestamp() * 1000),
                    "creation_timestamp": int(today.timestamp() * 1000) - 86_400_000, "counter_currency": "USD",
                    "contract_size": 1, "base_currency": coin, "state": "open",
                }
                added.append(name)
        return added

    def expire_nearest(self, coin: str) -> list[str]:
        """Delist the nearest option expiry of `coin`, as at delivery."""
        mine = [r for r in self.rows.values() if r["kind"] == "option" and r["base_currency"] == coin]
        nearest = min(r["expiration_timestamp"] for r in mine)
        gone = [r["instrument_name"] for r in mine if r["expiration_timestamp"] == nearest]
        for name in gone:
            del self.rows[name]
        return gone

    def listed(self) -> dict[str, dict]:
        return self.rows

    # -- prices -------------------------------------------------------------------------------

    def _walk(self, label: str) -> Instrument:
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(label, self.sim.seed))
        inst = self._walks.get(label)
        if inst is None:
            inst = self._walks[label] = Instrument(label, self.sim.seed)
        return inst

    def index(self, coin: str) -> Instrument:
        """The coin's index; live, it moves one step per INDEX_STEP_S however many channels read it."""
        walk = self._walk(f"{coin}_usd")
        if not self.sim.script:
            now = time.monotonic()
            if now - self._index_moved.get(coin, 0.0) >= INDEX_STEP_S:
                self._index_moved[coin] = now
                walk.step()
        return walk

    def data(self, kind: str, symbol: str, tick: int) -> Any:
        """The `data` of one push of `kind` (ticker | trades) for `symbol`; None for no trade this tick."""
        row = self.rows.get(symbol)
        if row is None:
            return None
        ts = now_ms() + self.faults.future_ts_ms
        if row["kind"] == "option":
            ticker = self.option_ticker(symbol, row, ts)
            if kind == "ticker":
                return ticker
            step = self.script_k if self.sim.script else tick  # script mode: the topic's own step
            return self.trades(symbol, ticker["mark_price"], ticker["index_price"], ts) if step % self.trade_every == 0 else None
        ticker = self.future_ticker(symbol, row, ts)
        return ticker if kind == "ticker" else self.trades(symbol, ticker["last_price"], ticker["index_price"], ts)

    def trades(self, symbol: str, price: float, index: float, ts: int) -> list[dict]:
        walk = self._walk(symbol)
        trade = {"trade_seq": walk.update_id, "trade_id": str(48079269 + walk.update_id), "timestamp": ts, "tick_direction": 2,
                 "price": price, "mark_price": price, "instrument_name": symbol, "index_price": index,
                 "direction": "sell" if walk.update_id % 2 else "buy", "amount": 10}
        return [trade]

    def future_ticker(self, symbol: str, row: dict, ts: int) -> dict:
        coin = row["base_currency"]
        idx = self.index(coin)
        walk = self._walk(symbol)
        walk.step()
        tick = row["tick_size"]
        last = _round(walk.price, tick)
        index = round(idx.price, 2)
        linear = row["instrument_type"] == "linear"
        data = {
            "best_ask_amount": 100 if not linear else 0.5, "best_ask_price": _round(last + tick, tick),
            "best_bid_amount": 5000 if not linear else 1.2, "best_bid_price": last,
            "estimated_delivery_price": index, "index_price": index, "instrument_name": symbol,
            "last_price": last, "mark_price": round(walk.price * 1.0001, 2), "max_price": round(last * 1.015, 2),
            "min_price": round(last * 0.985, 2),
            "open_interest": round(walk.volume * 3, 3) if linear else int(walk.volume * 20000),
            "settlement_price": round(walk.open_24h, 2), "state": "open",
            "stats": {"high": _round(walk.high, tick), "low": _round(walk.low, tick),
                      "price_change": round((walk.price / walk.open_24h - 1) * 100, 4),
                      "volume": round(walk.volume, 8), "volume_usd": int(walk.volume * walk.price)},
            "timestamp": ts,
        }
        if row["settlement_period"] == "perpetual":
            data |= {"current_funding": 0, "funding_8h": 2.11e-05, "interest_value": 1.7362511643080387}
        return data

    def option_ticker(self, symbol: str, row: dict, ts: int) -> dict:
        coin = row["base_currency"]
        idx = self.index(coin)
        walk = self._walk(symbol)
        walk.step()
        index = round(idx.price, 2)
        strike = float(row["strike"])
        call = row["option_type"] == "call"
        now = int(self.sim.model_now().timestamp() * 1000) if self.sim.script else ts  # script mode: a fixed clock
        years = (row["expiration_timestamp"] - now) / 31_536_000_000
        underlying = round(idx.price * 1.0005, 4)
        iv = smile_iv(underlying, strike)
        g = black_scholes(underlying, strike, years, iv, call)
        mark = max(0.0001, round(g["price"] / index, 4))  # in the coin
        bid = round(mark * 0.97, 4) if mark >= 0.0005 else 0
        ask = round(mark * 1.03 + 0.0001, 4)
        return {
            "timestamp": ts, "state": "open",
            "stats": {"high": None, "low": None, "price_change": None, "volume": round(walk.volume / 100, 1),
                      "volume_usd": round(walk.volume * 10, 2)},
            "greeks": {"delta": round(g["delta"], 5), "gamma": round(g["gamma"] * index, 5), "vega": round(g["vega"], 5),
                       "theta": round(g["theta"], 5), "rho": round(g["rho"], 5)},
            "index_price": index, "instrument_name": symbol, "last_price": None,
            "settlement_price": mark, "min_price": 0.0001, "max_price": round(mark * 2 + 0.01, 4),
            "open_interest": round(walk.volume / 50, 1), "mark_price": mark, "interest_rate": 0,
            "best_ask_price": ask, "best_bid_price": bid,
            "mark_iv": round(iv * 100, 2), "bid_iv": round((iv - 0.02) * 100, 2) if bid else 0, "ask_iv": round((iv + 0.02) * 100, 2),
            "underlying_price": underlying, "underlying_index": f"SYN.{coin}-{symbol.split('-')[1]}",
            "estimated_delivery_price": index, "best_ask_amount": 6.9, "best_bid_amount": 6.9 if bid else 0,
        }

    # -- REST ---------------------------------------------------------------------------------

    @staticmethod
    def _reply(result: Any = None, error: dict | None = None) -> web.Response:
        now_us = time.time_ns() // 1000
        body: dict[str, Any] = {"jsonrpc": "2.0"}
        body |= {"error": error} if error is not None else {"result": result}
        body |= {"usIn": now_us, "usOut": now_us + 200, "usDiff": 200, "testnet": False}
        return web.json_response(body, status=400 if error is not None else 200)

    async def get_instruments(self, request: web.Request) -> web.Response:
        if (fault := await self.rest_fault()) is not None:
            return fault
        q = request.query
        currency, kind = q.get("currency"), q.get("kind")
        if currency not in ("BTC", "ETH", "USDC", "USDT", "EURR", "any") or kind not in (None, "future", "option", "spot",
                                                                                      "future_combo", "option_combo"):
            return self._reply(error={"code": -32602, "message": "Invalid params", "data": {"param": "currency"}})

        def match(r: dict) -> bool:
            cur = r["settlement_currency"] if r["settlement_currency"] in ("USDC", "USDT") else r["base_currency"]
            return (currency == "any" or cur == currency) and (kind is None or r["kind"] == kind)
        return self._reply([r for r in self.rows.values() if match(r)])

    async def get_index_price(self, request: web.Request) -> web.Response:
        if (fault := await self.rest_fault()) is not None:
            return fault
        name = request.query.get("index_name", "")
        coin = name.removesuffix("_usd").upper()
        if not name.endswith("_usd") or coin not in STRIKE_STEP:
            return self._reply(error={"code": -32602, "message": "Invalid params", "data": {"param": "index_name"}})
        price = round(self.index(coin).price, 2)
        return self._reply({"index_price": price, "estimated_delivery_price": price})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/deribit/ws/api/v2", self.ws_handler),
            web.get("/deribit/api/v2/public/get_instruments", self.get_instruments),
            web.get("/deribit/api/v2/public/get_index_price", self.get_index_price),
        ]

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        session = DeribitSession(self, await self.accept(request, 1 << 20))
        return await self.serve(session, self.publish_loop(session), session.heartbeat_loop())

    async def blast(self, session: DeribitSession) -> None:
        """Benchmark mode (rate_hz <= 0): pre-built pushes of the subscribed channels, as fast as the socket takes them."""
        if not session.channels:
            await asyncio.sleep(0.01)
            return
        frames = []
        for tick in range(64):
            for channel in session.channels:
                kind, symbol, _ = channel.split(".")
                data = self.data(kind, symbol, tick)
                if data is not None:
                    frames.append(json.dumps({"jsonrpc": "2.0", "method": "subscription",
                                              "params": {"channel": channel, "data": data}}))
        await self.send_prebuilt(session, frames)
