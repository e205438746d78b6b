"""Binance spot and USDⓈ-M futures public market data, as docs/exchanges/binance.md describes them.

    ws://127.0.0.1:<port>/binance/ws, /binance/stream            (wss://stream.binance.com:9443/ws, /stream)
    ws://127.0.0.1:<port>/binance/public/ws, /public/stream      (wss://fstream.binance.com/public/...: book data)
    ws://127.0.0.1:<port>/binance/market/ws, /market/stream      (wss://fstream.binance.com/market/...: the rest)
    http://127.0.0.1:<port>/binance/api/v3/exchangeInfo          (https://api.binance.com)
    http://127.0.0.1:<port>/binance/fapi/v1/{exchangeInfo,fundingInfo,openInterest,premiumIndex}
    POST /_sim/binance {"lifetime_s": 3, "ping_interval_s": 0.5, "pong_timeout_s": 1, "server_shutdown": true}

WebSocket: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY with `{"result":..,"id":N}`
replies and the documented error table (`{"code":2|3,"msg":..}`). A stream that does not exist (unknown or
uppercase symbol, unknown type, a `/market` stream on `/public` or the reverse, a symbol in
`faults.reject_symbols`) is acked and never delivers [3P, as the docs' notes say]. `/stream` and
`SET_PROPERTY combined` wrap events as `{"stream":..,"data":..}`. The server pings (RFC 6455) every
`ping_interval_s` (spot 20 s, futures 180 s) and closes a connection whose pong (echoing the payload) is
later than `pong_timeout_s` (60 s / 600 s); it closes a connection at `lifetime_s` (24 h; close code 1001
is a guess), one that sends more than 5 (spot) / 10 (futures) messages a second (pongs count; 1008 "Too
many requests") and one with more streams than 1024 (spot) / 200 (futures). `server_shutdown` sends spot
connections a `serverShutdown` event and closes them `shutdown_grace_s` later.

REST: exchangeInfo lists TRADING symbols plus a halted spot pair (LUNAUSDT, BREAK), a dated future and a
SETTLING perpetual (OLDUSDT); `reject_symbols` are left out. Weight is counted per minute (spot 6000,
futures 2400: 429 + Retry-After beyond), `X-MBX-USED-WEIGHT-1M` on every answer, `{"code":-1121,...}`
with HTTP 400 for an unknown symbol. `faults.rest_errors` answer as Binance does (429 / 418 with
Retry-After and code -1003).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from .market import Instrument, now_ms
from .server import ExchangeSim, SimSession

SPOT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "BNBBTC", "ETHBTC") + tuple(
    f"SIM{i:03d}USDT" for i in range(80))  # fillers: benchmarks and sharding at size
SPOT_HALTED = {"LUNAUSDT": "BREAK"}
FUTURES_PERPS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "1000PEPEUSDT") + tuple(
    f"SIM{i:03d}USDT" for i in range(80))
FUTURES_OTHER = {"BTCUSDT_261225": ("CURRENT_QUARTER", "TRADING"), "OLDUSDT": ("PERPETUAL", "SETTLING")}
FUNDING_INTERVALS = {"SOLUSDT": 4, "DOGEUSDT": 4, "1000PEPEUSDT": 4}  # others: not listed (8 h)
SPOT_TYPES = {"trade", "aggTrade", "bookTicker", "ticker"}
ROUTE_TYPES = {"public": {"bookTicker"}, "market": {"aggTrade", "ticker", "markPrice", "markPrice@1s"}}
SLOW_TYPES = {"ticker", "markPrice", "markPrice@1s"}  # 1 s (spot ticker, markPrice@1s) to 3 s: at `slow_hz`
WEIGHT_PER_MIN = {"spot": 6000, "futures": 2400}
MSGS_PER_S = {"spot": 5, "futures": 10}
MAX_STREAMS = {"spot": 1024, "futures": 200}
TIMINGS = {"spot": (20.0, 60.0), "futures": (180.0, 600.0)}  # ping interval, pong deadline
WEIGHTS = {"spot_exchangeInfo": 20, "exchangeInfo": 1, "fundingInfo": 0, "openInterest": 1, "premiumIndex": 1}


def _error(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


class BinanceSession(SimSession):
    def __init__(self, sim: BinanceSim, ws: web.WebSocketResponse, market: str, route: str, combined: bool) -> None:
        super().__init__(sim, ws)
        self.bn = sim
        self.market = market            # "spot" or "futures"
        self.route = route              # "spot", "public" or "market"
        self.combined = combined
        self.subs: dict[str, tuple[str, str] | None] = {}  # stream name -> (SYMBOL, type), None: acked but silent
        loop = asyncio.get_running_loop()
        self.opened = loop.time()
        self.msg_times: collections.deque[float] = collections.deque()
        self.pings: dict[bytes, float] = {}  # unanswered ping payload -> sent at
        self.ticks = 0

    # -- client messages ------------------------------------------------------------------

    async def count_message(self) -> bool:
        """Rate limit on incoming messages (pings, pongs and JSON all count); False: the connection was closed."""
        now = asyncio.get_running_loop().time()
        self.msg_times.append(now)
        while self.msg_times and now - self.msg_times[0] > 1.0:
            self.msg_times.popleft()
        if len(self.msg_times) > MSGS_PER_S[self.market]:
            self.bn.kills["rate"] += 1
            await self.ws.close(code=1008, message=b"Too many requests")
            return False
        return True

    async def on_text(self, text: str) -> None:
        if not await self.count_message():
            return
        try:
            req = json.loads(text)
        except ValueError:
            await self.send({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
            return
        if not isinstance(req, dict) or "method" not in req:
            await self.send({"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 1"})
            return
        req_id, method, params = req.get("id"), req.get("method"), req.get("params", [])
        if not (req_id is None or isinstance(req_id, (int, str))) or isinstance(req_id, bool):
            await self.send({"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"})
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                await self.send({"code": 2, "msg": "Invalid request: invalid type: expected a sequence of strings", "id": req_id})
                return
            if method == "SUBSCRIBE":
                for name in params:
                    self.subs[name] = self.bn.resolve(self.route, name)
                if len(self.subs) > MAX_STREAMS[self.market]:
                    self.bn.kills["streams"] += 1
                    await self.ws.close(code=1008, message=b"Too many streams")
                    return
            else:
                for name in params:
                    self.subs.pop(name, None)
            await self.send({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await self.send({"result": list(self.subs), "id": req_id})
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or params[0] != "combined":
                await self.send({"code": 0, "msg": "Unknown property", "id": req_id})
            elif method == "GET_PROPERTY":
                await self.send({"result": self.combined, "id": req_id})
            elif len(params) != 2 or not isinstance(params[1], bool):
                await self.send({"code": 1, "msg": "Invalid value type: expected Boolean", "id": req_id})
            else:
                self.combined = params[1]
                await self.send({"result": None, "id": req_id})
        else:
            await self.send({"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, "
                                               "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`", "id": req_id})

    # -- data -------------------------------------------------------------------------------

    async def emit(self, name: str, event: dict) -> None:
        await self.send({"stream": name, "data": event} if self.combined else event)

    async def publish_once(self) -> None:
        bn = self.bn
        while bn.faults.garbage:
            await self.send(bn.faults.garbage.pop(0))
        if bn.faults.no_data:
            return
        self.ticks += 1
        rate = bn.sim.rate_hz
        slow_tick = bn.sim.script or rate <= 0 or self.ticks % max(1, round(rate / bn.slow_hz)) == 0
        for name, target in list(self.subs.items()):
            if target is None or (target[1] in SLOW_TYPES and not slow_tick):
                continue
            sym, kind = target
            if sym in bn.faults.reject_symbols:
                continue
            event = self.script_frame(name, bn.event, self.market, sym, kind)
            if event is not None:
                await self.emit(name, event)


class BinanceSim(ExchangeSim):
    name = "binance"

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.lifetime_s = 24 * 3600.0
        self.ping_interval_s: float | None = None   # None: the documented figure per market (TIMINGS)
        self.pong_timeout_s: float | None = None
        self.shutdown_grace_s = 1.0
        self.slow_hz = 1.0                           # @ticker and @markPrice@1s pushes per second
        self.kills: collections.Counter[str] = collections.Counter()
        self.weight: dict[str, collections.deque[tuple[float, int]]] = {"spot": collections.deque(), "futures": collections.deque()}
        self._instruments: dict[tuple[str, str], Instrument] = {}
        self._ids = 1_000_000

    # -- markets ----------------------------------------------------------------------------

    def listed(self, market: str, symbol: str) -> bool:
        if symbol in self.faults.reject_symbols:
            return False
        return symbol in SPOT_SYMBOLS if market == "spot" else symbol in FUTURES_PERPS

    def resolve(self, route: str, name: str) -> tuple[str, str] | None:
        """A stream name -> (SYMBOL, type) if it delivers on this route; None: acked and silent."""
        sym, sep, kind = name.partition("@")
        if not sep or sym != sym.lower():
            return None
        market = "spot" if route == "spot" else "futures"
        allowed = SPOT_TYPES if route == "spot" else ROUTE_TYPES[route]
        if kind not in allowed or not self.listed(market, sym.upper()):
            return None
        return sym.upper(), kind

    def instrument(self, market: str, symbol: str) -> Instrument:
        seed = self.sim.seed + (0 if market == "spot" else 1)
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(symbol, seed))
        inst = self._instruments.get((market, symbol))
        if inst is None:
            inst = self._instruments[(market, symbol)] = Instrument(symbol, seed)
        return inst

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def event(self, market: str, symbol: str, kind: str) -> dict:
        inst = self.instrument(market, symbol)
        ts = now_ms() + self.faults.future_ts_ms
        if kind in ("trade", "aggTrade"):
            if not self.sim.script:
                inst.step()
            qty = f"{0.001 + (inst.update_id % 997) / 100:.3f}"
            if kind == "trade":
                return {"e": "trade", "E": ts, "s": symbol, "t": self._next_id(), "p": inst.fmt(inst.price), "q": qty,
                        "T": ts, "m": inst.update_id % 2 == 0, "M": True}
            first = self._next_id()
            return {"e": "aggTrade", "E": ts, "s": symbol, "a": first, "p": inst.fmt(inst.price), "q": qty, "nq": qty,
                    "f": first, "l": first, "T": ts, "m": inst.update_id % 2 == 0, "st": 1}
        if kind == "bookTicker":
            bid, ask = inst.fmt(inst.price - inst.tick), inst.fmt(inst.price + inst.tick)
            sizes = f"{1 + inst.update_id % 50 / 10:.2f}", f"{2 + inst.update_id % 30 / 10:.2f}"
            top = {"u": inst.update_id, "s": symbol, "b": bid, "B": sizes[0], "a": ask, "A": sizes[1]}
            if market == "spot":
                return top  # no "e", no time
            return {"e": "bookTicker", "u": inst.update_id, "E": ts, "T": ts, **top, "st": 1}
        if kind == "ticker":
            return self.ticker(market, symbol, inst, ts)
        return self.mark(symbol, inst, ts)

    def ticker(self, market: str, symbol: str, inst: Instrument, ts: int) -> dict:
        last, open_ = inst.fmt(inst.price), inst.fmt(inst.open_24h)
        change = float(last) - float(open_)
        out = {"e": "24hrTicker", "E": ts, "s": symbol, "p": inst.fmt(change) if change >= 0 else "-" + inst.fmt(-change),
               "P": f"{change / float(open_) * 100:.3f}", "w": inst.fmt((inst.high + inst.low) / 2), "c": last, "Q": "0.010",
               "o": open_, "h": inst.fmt(inst.high), "l": inst.fmt(inst.low), "v": f"{inst.volume:.3f}",
               "q": f"{inst.volume * inst.price:.2f}", "O": ts - 86_400_000, "C": ts, "F": 1, "L": inst.update_id,
               "n": inst.update_id}
        if market == "spot":
            out |= {"x": open_, "b": inst.fmt(inst.price - inst.tick), "B": "1.00", "a": inst.fmt(inst.price + inst.tick), "A": "1.00"}
        else:
            out |= {"ps": symbol, "st": 1}
        return out

    def funding_hours(self, symbol: str) -> int:
        return FUNDING_INTERVALS.get(symbol, 8)

    def next_funding_ms(self, symbol: str, now: int) -> int:
        step = self.funding_hours(symbol) * 3_600_000
        return (now // step + 1) * step

    def mark(self, symbol: str, inst: Instrument, ts: int) -> dict:
        rate = 0.0001 + (inst.update_id % 7 - 3) * 0.00001
        return {"e": "markPriceUpdate", "E": ts, "s": symbol, "p": inst.fmt(inst.price), "i": inst.fmt(inst.price * 0.9999),
                "P": inst.fmt(inst.price * 0.9998), "r": f"{rate:.8f}", "ap": inst.fmt(inst.price),
                "T": self.next_funding_ms(symbol, now_ms()), "st": 1}

    # -- REST -----------------------------------------------------------------------------------

    async def rest_guard(self, market: str, endpoint: str) -> web.Response | dict[str, str]:
        """Faults and the weight limit first: a refusal, or the headers of a served answer."""
        self.rest_requests += 1
        if self.faults.rest_errors:
            fault = self.faults.rest_errors.pop(0)
            if fault == 429:
                return _error(-1003, "Too many requests; current limit is 2400 request weight per 1 MINUTE.", 429,
                              {"Retry-After": "1"})
            if fault == 418:
                return _error(-1003, "Way too much request weight used; IP banned until 1893456000000.", 418,
                              {"Retry-After": "2"})
            if fault == "garbage":
                return web.Response(text="<html>not json", content_type="application/json")
            if fault == "timeout":
                await asyncio.sleep(30)
            return _error(-1000, "An unknown error occurred while processing the request.", int(fault) if isinstance(fault, int) else 500)
        now = time.monotonic()
        used = self.weight[market]
        while used and now - used[0][0] > 60:
            used.popleft()
        total = sum(w for _, w in used) + WEIGHTS[endpoint]
        if total > WEIGHT_PER_MIN[market]:
            self.kills["rest_429"] += 1
            wait = max(1, int(60 - (now - used[0][0])) + 1) if used else 1
            return _error(-1003, f"Too much request weight used; current limit is {WEIGHT_PER_MIN[market]} request "
                                 "weight per 1 MINUTE.", 429, {"Retry-After": str(wait)})
        used.append((now, WEIGHTS[endpoint]))
        return {"X-MBX-USED-WEIGHT-1M": str(total)}

    def _limits(self, market: str) -> list[dict]:
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": WEIGHT_PER_MIN[market]},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]

    async def spot_exchange_info(self, request: web.Request) -> web.Response:
        guard = await self.rest_guard("spot", "spot_exchangeInfo")
        if isinstance(guard, web.Response):
            return guard
        rows = [(s, "TRADING") for s in SPOT_SYMBOLS if s not in self.faults.reject_symbols] + list(SPOT_HALTED.items())
        symbols = [{"symbol": s, "status": status, "baseAsset": s[:-4] if s.endswith("USDT") else s[:-3],
                    "quoteAsset": "USDT" if s.endswith("USDT") else s[-3:], "baseAssetPrecision": 8, "quotePrecision": 8,
                    "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                    "filters": [], "permissions": [], "permissionSets": [["SPOT"]]} for s, status in rows]
        if request.query.get("showPermissionSets") == "false":
            for row in symbols:
                row.pop("permissionSets")
        return web.json_response({"timezone": "UTC", "serverTime": now_ms(), "rateLimits": self._limits("spot"),
                                  "exchangeFilters": [], "symbols": symbols}, headers=guard)

    async def futures_exchange_info(self, request: web.Request) -> web.Response:
        guard = await self.rest_guard("futures", "exchangeInfo")
        if isinstance(guard, web.Response):
            return guard
        rows = [(s, "PERPETUAL", "TRADING") for s in FUTURES_PERPS if s not in self.faults.reject_symbols]
        rows += [(s, ct, st) for s, (ct, st) in FUTURES_OTHER.items()]
        symbols = [{"symbol": s, "pair": s.split("_")[0], "contractType": ct,
                    "deliveryDate": 4133404800000 if ct == "PERPETUAL" else 1798185600000, "onboardDate": 1569398400000,
                    "status": st, "baseAsset": s.split("_")[0][:-4], "quoteAsset": "USDT", "marginAsset": "USDT",
                    "pricePrecision": 2, "quantityPrecision": 3, "underlyingType": "COIN", "filters": []} for s, ct, st in rows]
        return web.json_response({"timezone": "UTC", "serverTime": now_ms(), "rateLimits": self._limits("futures"),
                                  "exchangeFilters": [], "assets": [], "symbols": symbols}, headers=guard)

    async def funding_info(self, request: web.Request) -> web.Response:
        guard = await self.rest_guard("futures", "fundingInfo")
        if isinstance(guard, web.Response):
            return guard
        return web.json_response([{"symbol": s, "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
                                   "fundingIntervalHours": h, "disclaimer": False} for s, h in FUNDING_INTERVALS.items()],
                                 headers=guard)

    async def open_interest(self, request: web.Request) -> web.Response:
        guard = await self.rest_guard("futures", "openInterest")
        if isinstance(guard, web.Response):
            return guard
        symbol = request.query.get("symbol")
        if not symbol:
            return _error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not self.listed("futures", symbol) and symbol not in FUTURES_OTHER:
            return _error(-1121, "Invalid symbol.")
        inst = self.instrument("futures", symbol)
        return web.json_response({"openInterest": f"{inst.volume * 3:.3f}", "symbol": symbol, "time": now_ms()}, headers=guard)

    async def premium_index(self, request: web.Request) -> web.Response:
        guard = await self.rest_guard("futures", "premiumIndex")
        if isinstance(guard, web.Response):
            return guard
        symbol = request.query.get("symbol", "")
        if not self.listed("futures", symbol):
            return _error(-1121, "Invalid symbol.")
        m = self.mark(symbol, self.instrument("futures", symbol), now_ms())
        return web.json_response({"symbol": symbol, "markPrice": m["p"], "indexPrice": m["i"], "estimatedSettlePrice": m["P"],
                                  "lastFundingRate": m["r"], "interestRate": "0.00010000", "nextFundingTime": m["T"],
                                  "time": m["E"]}, headers=guard)

    # -- WebSocket ---------------------------------------------------------------------------------

    async def blast(self, session: Any) -> None:
        """Benchmark mode (rate_hz <= 0): pre-built frames of every subscribed stream (the slow @ticker and
        @markPrice@1s ones included, as at full rate), as fast as the socket takes them."""
        subs = [(name, target) for name, target in session.subs.items() if target is not None]
        if not subs:
            await asyncio.sleep(0.01)
            return
        frames = []
        for _ in range(64):
            for name, (sym, kind) in subs:
                event = self.event(session.market, sym, kind)
                frames.append(json.dumps({"stream": name, "data": event} if session.combined else event))
        await self.send_prebuilt(session, frames)

    def routes(self) -> list[web.RouteDef]:
        ws = [web.get(f"/binance{prefix}/{mode}", self.ws_handler(route, mode == "stream"))
              for prefix, route in (("", "spot"), ("/public", "public"), ("/market", "market")) for mode in ("ws", "stream")]
        return ws + [
            web.get("/binance/api/v3/exchangeInfo", self.spot_exchange_info),
            web.get("/binance/fapi/v1/exchangeInfo", self.futures_exchange_info),
            web.get("/binance/fapi/v1/fundingInfo", self.funding_info),
            web.get("/binance/fapi/v1/openInterest", self.open_interest),
            web.get("/binance/fapi/v1/premiumIndex", self.premium_index),
            web.post("/_sim/binance", self.settings_handler),
        ]

    def stats(self) -> dict:
        return super().stats() | {"kills": dict(self.kills)}

    async def settings_handler(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.pop("server_shutdown", False):
            await self.server_shutdown()
        allowed = {"lifetime_s", "ping_interval_s", "pong_timeout_s", "shutdown_grace_s", "slow_hz"}
        for key, value in body.items():
            if key not in allowed:
                return web.json_response({"error": f"unknown setting {key}", "allowed": sorted(allowed)}, status=400)
            setattr(self, key, float(value))
        return web.json_response({"ok": True})

    async def server_shutdown(self) -> None:
        """Spot's notice: a `serverShutdown` event to every spot connection, closed `shutdown_grace_s` later."""
        sessions = [s for s in self.sessions if s.market == "spot"]
        for s in sessions:
            await s.emit("!serverShutdown", {"e": "serverShutdown", "E": now_ms()})

        async def close_later() -> None:
            await asyncio.sleep(self.shutdown_grace_s)
            for s in sessions:
                await s.ws.close(code=1001, message=b"server shutdown")
        asyncio.get_running_loop().create_task(close_later())

    def ws_handler(self, route: str, combined: bool) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            if self.faults.refuse_connections:
                raise web.HTTPServiceUnavailable(text="simulator refusing connections")
            # autoping off: the server's own pings and the client's pongs are followed here.
            ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
            await ws.prepare(request)
            self.connects += 1
            self.connections.add(ws)
            self.sockets[ws] = request.transport.get_extra_info("socket") if request.transport else None
            session = BinanceSession(self, ws, "spot" if route == "spot" else "futures", route, combined)
            for name in filter(None, request.query.get("streams", "").split("/")) if combined else ():
                session.subs[name] = self.resolve(route, name)
            return await self._serve(session)
        return handler

    async def _serve(self, session: BinanceSession) -> web.WebSocketResponse:
        tasks = [asyncio.create_task(t) for t in (self.publish_loop(session), self._keeper(session))]
        self.sessions.add(session)
        ws = session.ws
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await session.on_text(msg.data)
                elif msg.type == WSMsgType.PING:
                    if await session.count_message():
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    session.pings.pop(bytes(msg.data), None)  # only a pong echoing the payload answers its ping
                    if session.market == "spot":
                        await session.count_message()
        finally:
            for t in tasks:
                t.cancel()
            self.connections.discard(ws)
            self.sockets.pop(ws, None)
            self.sessions.discard(session)
        return ws

    async def _keeper(self, session: BinanceSession) -> None:
        """Pings, pong deadlines and the connection lifetime of one connection."""
        loop = asyncio.get_running_loop()
        ws = session.ws
        last_ping = loop.time()
        while not ws.closed:
            default_ping, default_pong = TIMINGS[session.market]
            ping_every = self.faults.ws_heartbeat or self.ping_interval_s or default_ping
            pong_within = self.pong_timeout_s or default_pong
            await asyncio.sleep(min(0.1, ping_every / 4))
            now = loop.time()
            if now - session.opened >= self.lifetime_s:
                self.kills["lifetime"] += 1
                await ws.close(code=1001, message=b"connection lifetime reached")
                return
            if any(now - sent > pong_within for sent in session.pings.values()):
                self.kills["no_pong"] += 1
                await ws.close(code=1008, message=b"pong timeout")
                return
            if now - last_ping >= ping_every and not self.faults.silent:
                last_ping = now
                payload = str(dt.datetime.now(dt.UTC).timestamp()).encode()
                session.pings[payload] = now
                try:
                    await ws.ping(payload)
                except ConnectionError:
                    return
