"""Bybit V5 public WebSocket (spot, linear) as documented: acks, pongs, tickers, order books.

Order books follow docs/v5/websocket/public/orderbook.mdx: a subscription starts with a
snapshot at the book's current update id `u` (not 1); `u` only increases, and not by one
(the docs stopped calling it a sequence); level 1 is snapshots only. Switches on BybitSim
(set in-process, e.g. `sim.exchanges["bybit"].book_restart_next = 1`):

- `faults.gap_next = N`: the next N deltas jump `u` by several ids (a normal stream does too);
- `u_max_step`: every delta advances `u` by a random 1..u_max_step (default 1);
- `book_restart_next = N`: the next N book frames are the service-restart frame the docs
  describe: the whole book with `u` = 1, typed `delta` (deltas then go on from 2);
- `ts_as_string`: book frames carry `ts` as a digit string, as the docs' reminder shows,
  with `ts` before `type` on spot and level 1 and after it elsewhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid

from aiohttp import web

from .market import Instrument, black_scholes, now_ms, smile_iv
from .server import ExchangeSim, SimSession

LISTED = {
    "spot": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT"] + [f"SIM{i:03d}USDT" for i in range(1000)],
    "linear": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"] + [f"SIM{i:03d}USDT" for i in range(1000)],
}
BOOK_DEPTHS = {"spot": {1, 50, 200, 1000}, "linear": {1, 50, 200, 1000}, "option": {25, 100}}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
OPTION_STRIKE_STEP = {"BTC": 2500, "ETH": 100}
SPOT_MAX_ARGS_PER_REQUEST = 10


class _Book:
    """The simulator's side of an order-book subscription: it diffs successive books into deltas."""

    def __init__(self, depth: int, first_u: int = 18521288) -> None:
        self.depth = depth
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.u = first_u - 1  # the book's update id before this subscription's snapshot (the docs' example id)
        self.sent = False
        self.seq = 7961638724
        self.offset = 0  # book mid relative to the last price, in ticks

    def next(self, inst: Instrument) -> tuple[dict[str, str], dict[str, str]]:
        """The book after one step: levels follow the price; a few resting sizes change (as on
        a real book, where a delta touches a handful of levels, not all of them)."""
        if inst.rng.random() < 0.2:  # the book drifts a tick now and then (the last price stays put)
            self.offset = max(-3, min(3, self.offset + inst.rng.choice((-1, 1))))
        fresh_bids, fresh_asks = inst.book(self.depth, self.offset)
        out = []
        for fresh, old in ((fresh_bids, self.bids), (fresh_asks, self.asks)):
            side = {p: old.get(p, s) for p, s in fresh}
            for p in inst.rng.sample(list(side), min(3, len(side))):
                side[p] = f"{inst.rng.uniform(0.01, 5):.3f}"
            out.append(side)
        return out[0], out[1]

    @staticmethod
    def diff(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
        out = [[p, "0"] for p in old if p not in new]
        out += [[p, s] for p, s in new.items() if old.get(p) != s]
        return out


class BybitSession(SimSession):
    def __init__(self, sim: BybitSim, category: str, ws: web.WebSocketResponse) -> None:
        super().__init__(sim, ws)
        self.category = category
        self.conn_id = str(uuid.uuid4())
        self.tickers: dict[str, bool] = {}        # symbol -> snapshot sent (linear sends deltas after)
        self.books: dict[tuple[int, str], _Book] = {}

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
            if self.category == "option":
                await self.send({"args": [str(now_ms())], "op": "pong"})
            elif self.category == "spot":
                await self.send({"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "op": "ping"})
            else:
                await self.send({"success": True, "ret_msg": "pong", "conn_id": self.conn_id, "req_id": req_id, "op": "ping"})
        elif op in ("subscribe", "unsubscribe"):
            await self.subscribe(req.get("args") or [], req_id, op)

    def _valid(self, topic: str) -> bool:
        parts = topic.split(".")
        listed = self.sim.option_symbols() if self.category == "option" else LISTED[self.category]
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
        faults = self.sim.faults
        if op == "subscribe":
            self.sim.subscribe_requests += 1
        if op == "subscribe" and faults.sub_internal_error > 0:
            faults.sub_internal_error -= 1
            await self.send({"success": False, "ret_msg": "Internal error, please retry", **base})
            await self.ws.close()
            return
        if op == "subscribe" and faults.ack_unrequested > 0:
            faults.ack_unrequested -= 1
            await self.send({"success": False, "ret_msg": "error:handler not found,topic:tickers.NOTASKEDUSDT", **base})
            return
        bad = [t for t in args if not self._valid(t)]
        if self.category == "option":
            # Options answer per topic: refused ones are listed in failTopics.
            good = [t for t in args if t not in bad]
            await self.send({"success": True, "conn_id": self.conn_id, "type": "COMMAND_RESP",
                             "data": {"failTopics": bad, "successTopics": good}})
            args = good
        elif bad:
            # One bad topic fails the whole request on spot/linear (observed behaviour).
            await self.send({"success": False, "ret_msg": f"error:handler not found,topic:{bad[0]}", **base})
            return
        else:
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
                self.books[(int(parts[1]), parts[2])] = _Book(int(parts[1]), self.sim.book_u(self.category, parts[2]))
        await self.publish_once()

    # -- data -----------------------------------------------------------------------

    async def publish_once(self) -> None:
        faults = self.sim.faults
        while faults.garbage:
            await self.send(faults.garbage.pop(0))
        if faults.no_data:
            return
        ts = now_ms() + faults.future_ts_ms
        for symbol, snapshot_sent in list(self.tickers.items()):
            frame = self.script_frame(("tickers", symbol), self._ticker_update, symbol, ts, snapshot_sent)
            if frame is None:
                continue  # script mode: this topic's script has played
            await self.send(frame)
            self.tickers[symbol] = True
        for (depth, symbol), book in list(self.books.items()):
            frame = self.script_frame(("orderbook", depth, symbol), self._book_update, symbol, book, ts)
            if frame is not None:
                await self.send(frame)

    def _ticker_update(self, symbol: str, ts: int, delta: bool) -> dict:
        inst = self.sim.instrument(self.category, symbol)
        inst.step()
        return self.ticker_frame(inst, ts, delta=delta)

    def _book_update(self, symbol: str, book: _Book, ts: int) -> dict:
        return self.book_frame(self.sim.instrument(self.category, symbol), book, ts)

    def ticker_frame(self, inst: Instrument, ts: int, delta: bool) -> dict:
        f = inst.fmt
        data = {
            "symbol": inst.symbol, "lastPrice": f(inst.price), "highPrice24h": f(inst.high),
            "lowPrice24h": f(inst.low), "prevPrice24h": f(inst.open_24h), "volume24h": f"{inst.volume:.4f}",
            "turnover24h": f"{inst.volume * inst.price:.4f}",
            "price24hPcnt": f"{(inst.price / inst.open_24h - 1):.4f}",
        }
        if self.category == "option":
            return self.sim.option_ticker_frame(inst.symbol, ts)
        if self.sim.sim.probe:
            # Latency probe: the price carries the send time (µs, modulo 10^9) for the benchmark to decode.
            data["lastPrice"] = f"{(time.time_ns() // 1000) % 1_000_000_000 / 1000:.3f}"
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
        sim, faults = self.sim, self.sim.faults
        full = (list(map(list, bids.items())), list(map(list, asks.items())))
        if sim.book_restart_next > 0 and book.sent:
            # The service restarted: the whole book again, u = 1, typed as a delta (docs: overwrite your book).
            sim.book_restart_next -= 1
            kind, (b, a) = "delta", full
            book.u = 1
        elif not book.sent or book.depth == 1:
            kind, (b, a) = "snapshot", full
            book.u += 1
        else:
            kind, b, a = "delta", _Book.diff(book.bids, bids), _Book.diff(book.asks, asks)
            step = inst.rng.randint(1, max(1, sim.u_max_step))
            if faults.gap_next > 0:
                faults.gap_next -= 1
                step += inst.rng.randint(2, 9)
            book.u += step
        book.sent = True
        sim.book_u_seen[(self.category, inst.symbol)] = book.u
        book.bids, book.asks = bids, asks
        book.seq += inst.rng.randint(1, 5)
        b.sort(key=lambda lv: -float(lv[0]))
        a.sort(key=lambda lv: float(lv[0]))
        data = {"s": inst.symbol, "b": b, "a": a, "u": book.u, "seq": book.seq}
        topic = f"orderbook.{book.depth}.{inst.symbol}"
        ts_out: int | str = str(ts) if sim.ts_as_string else ts
        if self.category == "spot" or book.depth == 1:  # the reminder's key order: ts before type
            return {"topic": topic, "ts": ts_out, "type": kind, "data": data, "cts": ts - 1}
        return {"topic": topic, "type": kind, "ts": ts_out, "data": data, "cts": ts - 1}


class BybitSim(ExchangeSim):
    name = "bybit"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.subscribe_requests = 0  # subscribe requests received, every connection
        self._instruments: dict[tuple[str, str], Instrument] = {}
        self.page_size = 1000  # instruments-info page size; tests lower it to exercise the cursor
        self.u_max_step = 1          # deltas advance u by 1..u_max_step
        self.book_restart_next = 0   # next N book frames: the u=1 restart frame typed delta
        self.ts_as_string = False    # book frames' ts as a digit string
        self.book_u_seen: dict[tuple[str, str], int] = {}  # (category, symbol) -> last u sent; a new subscription goes on from it
        self.option_chain: list[dict] = []
        for coin in OPTION_STRIKE_STEP:
            for weeks in (1, 2, 3):
                self.add_expiry(coin, weeks)

    # -- option chain -------------------------------------------------------------

    def add_expiry(self, coin: str, weeks_ahead: int) -> list[str]:
        """List a new expiry (Friday 08:00 UTC, `weeks_ahead` weeks out) with strikes around spot."""
        today = self.sim.model_now().replace(hour=8, minute=0, second=0, microsecond=0)
        friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 + 7 * weeks_ahead)
        code = f"{friday.day}{MONTHS[friday.month - 1]}{friday.year % 100}"
        step = OPTION_STRIKE_STEP[coin]
        spot = self.instrument("spot", f"{coin}USDT").price
        centre = round(spot / step) * step
        added = []
        for k in range(-4, 5):
            for kind in ("C", "P"):
                symbol = f"{coin}-{code}-{centre + k * step}-{kind}"
                self.option_chain.append({
                    "symbol": symbol, "status": "Trading", "baseCoin": coin, "quoteCoin": "USD", "settleCoin": "USDC",
                    "optionsType": "Call" if kind == "C" else "Put", "launchTime": str(now_ms() - 86_400_000),
                    "deliveryTime": str(int(friday.timestamp() * 1000)), "deliveryFeeRate": "0.00015",
                    "priceFilter": {"minPrice": "5", "maxPrice": "10000000", "tickSize": "5"},
                    "lotSizeFilter": {"maxOrderQty": "500", "minOrderQty": "0.01", "qtyStep": "0.01"},
                    "displayName": "",
                })
                added.append(symbol)
        return added

    def expire_nearest(self, coin: str) -> list[str]:
        """Delist the nearest expiry of `coin` as the exchange does at delivery."""
        mine = [i for i in self.option_chain if i["baseCoin"] == coin]
        nearest = min(int(i["deliveryTime"]) for i in mine)
        gone = [i["symbol"] for i in mine if int(i["deliveryTime"]) == nearest]
        self.option_chain = [i for i in self.option_chain if i["symbol"] not in gone]
        return gone

    def book_u(self, category: str, symbol: str) -> int:
        """The update id a new subscription's snapshot carries: the book's current id (the docs' example id at
        first), which has moved on since this simulator last sent the book (by 1000 here)."""
        last = self.book_u_seen.get((category, symbol))
        return 18521288 if last is None else last + 1000

    def option_symbols(self) -> set[str]:
        return {i["symbol"] for i in self.option_chain}

    def option_ticker_frame(self, symbol: str, ts: int) -> dict:
        coin, _, strike_s, kind = symbol.split("-")[:4]
        inst = next(i for i in self.option_chain if i["symbol"] == symbol) if symbol in self.option_symbols() else None
        spot = self.instrument("spot", f"{coin}USDT").price
        expiry = int(inst["deliveryTime"]) if inst else ts + 86_400_000
        iv = smile_iv(spot, float(strike_s))
        now = int(self.sim.model_now().timestamp() * 1000) if self.sim.script else ts  # script mode: a fixed clock
        g = black_scholes(spot, float(strike_s), (expiry - now) / 31_536_000_000, iv, kind == "C")
        mark = g["price"]
        data = {
            "symbol": symbol, "bidPrice": f"{mark * 0.98:.2f}", "bidSize": "1.5", "bidIv": f"{iv - 0.01:.4f}",
            "askPrice": f"{mark * 1.02:.2f}", "askSize": "2.1", "askIv": f"{iv + 0.01:.4f}", "lastPrice": f"{mark:.2f}",
            "highPrice24h": f"{mark * 1.1:.2f}", "lowPrice24h": f"{mark * 0.9:.2f}", "markPrice": f"{mark:.8f}",
            "indexPrice": f"{spot:.2f}", "markPriceIv": f"{iv:.4f}", "underlyingPrice": f"{spot * 1.001:.2f}",
            "openInterest": "12.5", "turnover24h": "1000.5", "volume24h": "3.2", "totalVolume": "100",
            "totalTurnover": "5000000", "delta": f"{g['delta']:.8f}", "gamma": f"{g['gamma']:.8f}",
            "vega": f"{g['vega']:.8f}", "theta": f"{g['theta']:.8f}", "predictedDeliveryPrice": "0", "change24h": "0.01",
        }
        return {"id": f"tickers.{symbol}-{self.frames_sent}-{ts}", "topic": f"tickers.{symbol}", "ts": ts,
                "data": data, "type": "snapshot"}

    # -- REST ---------------------------------------------------------------------

    @staticmethod
    def _ok(result: dict) -> web.Response:
        return web.json_response({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms()})

    async def instruments_info(self, request: web.Request) -> web.Response:
        if (fault := await self.rest_fault()) is not None:
            return fault
        q = request.query
        category = q.get("category")
        if category != "option":
            items = [{"symbol": s, "status": "Trading"} for s in LISTED.get(category or "", [])]
            return self._ok({"category": category, "list": items, "nextPageCursor": ""})
        coin = q.get("baseCoin", "BTC")  # Bybit defaults options to BTC
        items = [i for i in self.option_chain if i["baseCoin"] == coin]
        start = int(q.get("cursor") or 0)
        size = min(int(q.get("limit", 500)), self.page_size)
        page = items[start:start + size]
        cursor = str(start + size) if start + size < len(items) else ""
        return self._ok({"category": "option", "list": page, "nextPageCursor": cursor})

    async def tickers(self, request: web.Request) -> web.Response:
        if (fault := await self.rest_fault()) is not None:
            return fault
        category, symbol = request.query.get("category"), request.query.get("symbol", "")
        if category != "spot" or symbol not in LISTED["spot"]:
            return web.json_response({"retCode": 10001, "retMsg": "Not supported symbols", "result": {}, "retExtInfo": {},
                                      "time": now_ms()})
        inst = self.instrument("spot", symbol)
        return self._ok({"category": "spot", "list": [{"symbol": symbol, "lastPrice": inst.fmt(inst.price),
                                                        "bid1Price": inst.fmt(inst.price - inst.tick),
                                                        "ask1Price": inst.fmt(inst.price + inst.tick)}]})

    def instrument(self, category: str, symbol: str) -> Instrument:
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(symbol, self.sim.seed))
        key = (category, symbol)
        inst = self._instruments.get(key)
        if inst is None:
            inst = self._instruments[key] = Instrument(symbol, self.sim.seed)
        return inst

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/bybit/v5/public/{category}", self.ws_handler),
            web.get("/bybit/v5/market/instruments-info", self.instruments_info),
            web.get("/bybit/v5/market/tickers", self.tickers),
        ]

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        category = request.match_info["category"]
        if category not in BOOK_DEPTHS:
            raise web.HTTPNotFound(text=f"unknown category {category}")
        session = BybitSession(self, category, await self.accept(request, 1 << 20))
        return await self.serve(session, self.publish_loop(session))

    async def blast(self, session: BybitSession) -> None:
        """Benchmark mode (rate_hz <= 0): pre-built ticker frames, as fast as the socket takes them."""
        if not session.tickers:
            await asyncio.sleep(0.01)
            return
        frames = []
        for _ in range(64):
            ts = now_ms()
            for symbol in session.tickers:
                inst = self.instrument(session.category, symbol)
                inst.step()
                frames.append(json.dumps(session.ticker_frame(inst, ts, delta=False)))
        await self.send_prebuilt(session, frames)
