"""Bybit V5 public WebSocket (spot, linear) as documented: acks, pongs, tickers, order books."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from .market import Instrument, now_ms
from .server import ExchangeSim

LISTED = {
    "spot": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT"] + [f"SIM{i:03d}USDT" for i in range(1000)],
    "linear": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"] + [f"SIM{i:03d}USDT" for i in range(1000)],
}
BOOK_DEPTHS = {"spot": {1, 50, 200, 1000}, "linear": {1, 50, 200, 1000}}
SPOT_MAX_ARGS_PER_REQUEST = 10


class _Book:
    """The simulator's side of an order-book subscription: it diffs successive books into deltas."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.u = 0
        self.seq = 0

    def next(self, inst: Instrument) -> tuple[dict[str, str], dict[str, str]]:
        bids, asks = inst.book(self.depth)
        return dict(map(tuple, bids)), dict(map(tuple, asks))

    @staticmethod
    def diff(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
        out = [[p, "0"] for p in old if p not in new]
        out += [[p, s] for p, s in new.items() if old.get(p) != s]
        return out


class BybitSession:
    def __init__(self, sim: BybitSim, category: str, ws: web.WebSocketResponse) -> None:
        self.sim = sim
        self.category = category
        self.ws = ws
        self.conn_id = str(uuid.uuid4())
        self.tickers: dict[str, bool] = {}        # symbol -> snapshot sent (linear sends deltas after)
        self.books: dict[tuple[int, str], _Book] = {}

    async def send(self, obj: Any) -> None:
        if self.sim.faults.silent or self.ws.closed:
            return
        await self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))
        self.sim.frames_sent += 1

    # -- requests -------------------------------------------------------------------

    async def on_text(self, text: str) -> None:
        try:
            req = json.loads(text)
            op = req.get("op")
        except (ValueError, AttributeError):
            await self.send({"success": False, "ret_msg": "Params Error", "conn_id": self.conn_id, "op": ""})
            return
        req_id = req.get("req_id", "")
        if op == "ping":
            if self.category == "spot":
                await self.send({"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "op": "ping"})
            else:
                await self.send({"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "req_id": req_id, "op": "ping"})
        elif op in ("subscribe", "unsubscribe"):
            await self.subscribe(req.get("args") or [], req_id, op)

    def _valid(self, topic: str) -> bool:
        parts = topic.split(".")
        listed = LISTED[self.category]
        if parts[0] == "tickers" and len(parts) == 2:
            symbol = parts[1]
        elif parts[0] == "orderbook" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in BOOK_DEPTHS[self.category]:
            symbol = parts[2]
        else:
            return False
        return symbol in listed and symbol not in self.sim.faults.reject_symbols

    async def subscribe(self, args: list[str], req_id: str, op: str) -> None:
        base = {"conn_id": self.conn_id, "req_id": req_id, "op": op}
        if self.category == "spot":
            base.pop("req_id") if not req_id else None
        if self.category == "spot" and len(args) > SPOT_MAX_ARGS_PER_REQUEST:
            await self.send({"success": False, "ret_msg": f"args size >{SPOT_MAX_ARGS_PER_REQUEST}", **base})
            return
        bad = [t for t in args if not self._valid(t)]
        if bad:
            # One bad topic fails the whole request on spot/linear (observed behaviour).
            await self.send({"success": False, "ret_msg": f"error:handler not found,topic:{bad[0]}", **base})
            return
        await self.send({"success": True, "ret_msg": "subscribe" if self.category == "spot" else "", **base})
        for topic in args:
            parts = topic.split(".")
            if op == "unsubscribe":
                self.tickers.pop(parts[-1], None)
                if parts[0] == "orderbook":
                    self.books.pop((int(parts[1]), parts[2]), None)
            elif parts[0] == "tickers":
                self.tickers[parts[1]] = False
            else:
                self.books[(int(parts[1]), parts[2])] = _Book(int(parts[1]))
        await self.publish_once()

    # -- data -----------------------------------------------------------------------

    async def publish_once(self) -> None:
        faults = self.sim.faults
        while faults.garbage:
            await self.send(faults.garbage.pop(0))
        ts = now_ms() + faults.future_ts_ms
        for symbol, snapshot_sent in list(self.tickers.items()):
            inst = self.sim.instrument(self.category, symbol)
            inst.step()
            await self.send(self.ticker_frame(inst, ts, delta=snapshot_sent))
            self.tickers[symbol] = True
        for (_depth, symbol), book in list(self.books.items()):
            inst = self.sim.instrument(self.category, symbol)
            await self.send(self.book_frame(inst, book, ts))

    def ticker_frame(self, inst: Instrument, ts: int, delta: bool) -> dict:
        f = inst.fmt
        data = {
            "symbol": inst.symbol, "lastPrice": f(inst.price), "highPrice24h": f(inst.high),
            "lowPrice24h": f(inst.low), "prevPrice24h": f(inst.open_24h), "volume24h": f"{inst.volume:.4f}",
            "turnover24h": f"{inst.volume * inst.price:.4f}",
            "price24hPcnt": f"{(inst.price / inst.open_24h - 1):.4f}",
        }
        if self.category == "spot":
            data["usdIndexPrice"] = f(inst.price * 1.0001)
            return {"topic": f"tickers.{inst.symbol}", "ts": ts, "type": "snapshot", "cs": inst.update_id, "data": data}
        data |= {
            "markPrice": f(inst.price * 1.0002), "indexPrice": f(inst.price * 0.9999),
            "openInterest": f"{inst.volume * 3:.3f}", "fundingRate": "0.0001", "nextFundingTime": str((ts // 28_800_000 + 1) * 28_800_000),
            "bid1Price": f(inst.price - inst.tick), "bid1Size": "1.000", "ask1Price": f(inst.price + inst.tick), "ask1Size": "2.000",
        }
        if delta:
            # Deltas carry only what changed (plus the symbol).
            keep = ("symbol", "lastPrice", "markPrice", "bid1Price", "ask1Price", "volume24h", "turnover24h", "highPrice24h", "lowPrice24h")
            data = {k: v for k, v in data.items() if k in keep}
        return {"topic": f"tickers.{inst.symbol}", "type": "delta" if delta else "snapshot", "data": data, "cs": inst.update_id, "ts": ts}

    def book_frame(self, inst: Instrument, book: _Book, ts: int) -> dict:
        bids, asks = book.next(inst)
        faults = self.sim.faults
        first = book.u == 0
        if first or book.depth == 1:
            kind, b, a = "snapshot", list(map(list, bids.items())), list(map(list, asks.items()))
            book.u = book.u + 1
        else:
            kind, b, a = "delta", _Book.diff(book.bids, bids), _Book.diff(book.asks, asks)
            book.u += 2 if faults.gap_next > 0 else 1
            if faults.gap_next > 0:
                faults.gap_next -= 1
        book.bids, book.asks = bids, asks
        book.seq += 1
        b.sort(key=lambda lv: -float(lv[0]))
        a.sort(key=lambda lv: float(lv[0]))
        return {"topic": f"orderbook.{book.depth}.{inst.symbol}", "type": kind, "ts": ts,
                "data": {"s": inst.symbol, "b": b, "a": a, "u": book.u, "seq": book.seq}, "cts": ts - 1}


class BybitSim(ExchangeSim):
    name = "bybit"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self._instruments: dict[tuple[str, str], Instrument] = {}

    def instrument(self, category: str, symbol: str) -> Instrument:
        key = (category, symbol)
        inst = self._instruments.get(key)
        if inst is None:
            inst = self._instruments[key] = Instrument(symbol, self.sim.seed)
        return inst

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/bybit/v5/public/{category}", self.ws_handler)]

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        category = request.match_info["category"]
        if category not in LISTED:
            raise web.HTTPNotFound(text=f"unknown category {category}")
        if self.faults.refuse_connections:
            raise web.HTTPServiceUnavailable(text="simulator refusing connections")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        self.connects += 1
        self.connections.add(ws)
        session = BybitSession(self, category, ws)
        publisher = asyncio.create_task(self._publish_loop(session))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await session.on_text(msg.data)
        finally:
            publisher.cancel()
            self.connections.discard(ws)
        return ws

    async def _publish_loop(self, session: BybitSession) -> None:
        while not session.ws.closed:
            await asyncio.sleep(1.0 / self.sim.rate_hz)
            try:
                await session.publish_once()
            except ConnectionError:
                return
