"""CoinDCX as documented (/work/shared/exchanges/coindcx.md): socket.io over a plain WebSocket
(Engine.IO v4) and the public REST endpoints the feeds poll.

    ws://127.0.0.1:<port>/coindcx/socket.io/?EIO=4&transport=websocket   (wss://stream[-spot].coindcx.com)
    http://127.0.0.1:<port>/coindcx/market_data/v3/current_prices/futures/rt   (public.coindcx.com)
    http://127.0.0.1:<port>/coindcx/exchange/...                               (api.coindcx.com)

Socket: the server opens with `0{sid,upgrades,pingInterval,pingTimeout,maxPayload}`, answers the
client's `40` with `40{sid}`, pings (`2`) every pingInterval and closes a client whose `3` has not
come within pingTimeout; a client `2` or a malformed packet closes the socket (as reported of the
real one). Joins (`42["join",{"channelName":..}]`) get no answer; unknown channels and
`reject_symbols` are silently ignored. Each joined `<pair>@trades` gets a `new-trade` at
sim.rate_hz, its `data` a JSON *string*. The heartbeat is set through the fault API
(`ping_interval_s`, `ping_timeout_s`, in seconds) and applies to new connections.

REST: RT futures prices are JSON numbers (funding rates in exponent form), some keys missing per
pair, an inactive pair with a frozen mark; instrument details answer an unknown pair with another
pair's details; the spot ticker's timestamp is in seconds (as on the wire) and its `volume` is
quote volume; markets_details keeps the docs' swapped base/target naming.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .market import BASE_PRICES, Instrument, now_ms
from .server import ExchangeSim, Faults, SimSession

# pair -> funding interval hours (active perpetuals)
FUTURES = {"B-BTC_USDT": 8, "B-ETH_USDT": 8, "B-SOL_USDT": 4, "B-XRP_USDT": 4, "B-DOGE_USDT": 4, "B-1000SHIB_USDT": 1}
INACTIVE_FUTURES = {"B-LUNA_USDT": 8}  # still in the RT reply with a frozen mark, not in the active list
# Keys a pair's RT entry leaves out ("every field optional").
RT_OMIT = {"B-DOGE_USDT": ("h", "l", "skw"), "B-1000SHIB_USDT": ("efr", "fr")}
# spot pair -> (market, base, quote, status)
SPOT = {
    "B-BTC_USDT": ("BTCUSDT", "BTC", "USDT", "active"),
    "B-ETH_USDT": ("ETHUSDT", "ETH", "USDT", "active"),
    "B-SOL_USDT": ("SOLUSDT", "SOL", "USDT", "active"),
    "B-XRP_USDT": ("XRPUSDT", "XRP", "USDT", "active"),
    "B-DOGE_USDT": ("DOGEUSDT", "DOGE", "USDT", "active"),
    "I-BTC_INR": ("BTCINR", "BTC", "INR", "active"),
    "I-USDT_INR": ("USDTINR", "USDT", "INR", "active"),  # the panel's default USDT/INR rate for INR pairs
    "B-XTZ_BTC": ("XTZBTC", "XTZ", "BTC", "active"),     # empty book: bid/ask "0.00000000"
    "B-OLD_USDT": ("OLDUSDT", "OLD", "USDT", "inactive"),
}
EMPTY_BOOK = {"B-XTZ_BTC"}
# INR pairs start at their coin's USD price (USDT: 1) times this, so a pair converted at the
# simulated USDT/INR rate lands near the USDT pairs, as on the real exchange.
INR_PER_USDT = 88.0


@dataclass
class CoinDCXFaults(Faults):
    ping_interval_s: float = 25.0  # stream.coindcx.com: 25000 / 20000 ms (stream-spot: 45000 / 60000)
    ping_timeout_s: float = 20.0
    connect_delay_s: float = 0.0   # before the namespace ack (the real one takes ~270 ms)


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _price_in_inr(inst: Instrument, base: str) -> None:
    """Re-base a fresh INR pair's walk to its coin's USD price x INR_PER_USDT (tick re-derived as Instrument does)."""
    usd = 1.0 if base == "USDT" else BASE_PRICES.get(base)
    if usd is None:
        return
    scale = usd * INR_PER_USDT / inst.price
    inst.price, inst.open_24h, inst.high, inst.low = (v * scale for v in (inst.price, inst.open_24h, inst.high, inst.low))
    inst.tick = 10 ** (len(str(int(inst.price))) - 6) if inst.price >= 1 else 0.0001


def _spot_fmt(inst: Instrument, value: float) -> str:
    return f"{float(inst.fmt(value)):.8f}"


class CoinDCXSession(SimSession):
    def __init__(self, sim: CoinDCXSim, ws: web.WebSocketResponse, ping_interval_s: float, ping_timeout_s: float) -> None:
        super().__init__(sim, ws)
        self.sim: CoinDCXSim = sim
        self.sid = uuid.uuid4().hex[:20]
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.connected = False        # namespace "/" connected (after the client's 40)
        self.channels: set[str] = set()
        self.pong = asyncio.Event()

    async def open(self) -> None:
        await self.send("0" + _compact({"sid": self.sid, "upgrades": [], "pingInterval": int(self.ping_interval_s * 1000),
                                         "pingTimeout": int(self.ping_timeout_s * 1000), "maxPayload": 1000000}))

    async def on_text(self, text: str) -> None:
        if text == "3":
            self.pong.set()
            self.sim.pongs += 1
        elif text == "40" or text.startswith("40{"):
            await asyncio.sleep(self.sim.faults.connect_delay_s)
            self.connected = True
            await self.send("40" + _compact({"sid": uuid.uuid4().hex[:20]}))
        elif text == "41":
            self.connected = False
            self.channels.clear()
        elif text.startswith("42") and self.connected:
            try:
                args = json.loads(text[2:])
                name, payload = args[0], args[1] if len(args) > 1 else None
                channel = payload.get("channelName") if isinstance(payload, dict) else None
            except (ValueError, TypeError, IndexError, AttributeError):
                await self.ws.close(code=1000, message=b"parse error")  # engine.io drops a client sending garbage
                return
            if name == "join" and isinstance(channel, str) and self.sim.valid_channel(channel):
                self.channels.add(channel)
                self.sim.joins += 1
            elif name == "leave" and isinstance(channel, str):
                self.channels.discard(channel)
            # anything else (the docs' app-level "ping" included) gets no answer
        elif text.startswith("42"):
            pass  # an event before the namespace is connected goes nowhere
        else:
            # a client ping ("2") and unknown packets end the session [U]
            await self.ws.close(code=1000, message=b"unexpected packet")

    async def publish_once(self) -> None:
        faults = self.sim.faults
        while faults.garbage:
            await self.send(faults.garbage.pop(0))
        for channel in sorted(self.channels):
            frame = self.script_frame(channel, self.sim.trade_frame, channel.removesuffix("@trades"))
            if frame is not None:
                await self.send(frame)


class CoinDCXSim(ExchangeSim):
    name = "coindcx"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.faults: CoinDCXFaults = CoinDCXFaults()
        self._spot: dict[str, Instrument] = {}
        self._futures: dict[str, Instrument] = {}
        self._frozen: dict[str, dict[str, Any]] = {}
        self._ticker_cache: tuple[int, list[dict]] = (-1, [])
        self.version = 54_000_000
        self.pongs = 0
        self.joins = 0
        self.ping_timeouts = 0
        self._hanging: set[asyncio.Task] = set()

    # -- heartbeat settings (also settable through POST /_sim/fault) ---------------------------

    @property
    def ping_interval_s(self) -> float:
        return self.faults.ping_interval_s

    @ping_interval_s.setter
    def ping_interval_s(self, value: float) -> None:
        self.faults.ping_interval_s = value

    @property
    def ping_timeout_s(self) -> float:
        return self.faults.ping_timeout_s

    @ping_timeout_s.setter
    def ping_timeout_s(self, value: float) -> None:
        self.faults.ping_timeout_s = value

    def stats(self) -> dict[str, Any]:
        return super().stats() | {"pongs": self.pongs, "joins": self.joins, "ping_timeouts": self.ping_timeouts}

    # -- instruments ---------------------------------------------------------------------------

    def spot(self, pair: str) -> Instrument:
        if self.sim.script:
            return self.script_instrument(lambda: self._new_spot(pair))
        inst = self._spot.get(pair)
        if inst is None:
            inst = self._spot[pair] = self._new_spot(pair)
        return inst

    def _new_spot(self, pair: str) -> Instrument:
        inst = Instrument(SPOT[pair][0], self.sim.seed)
        if SPOT[pair][2] == "INR":
            _price_in_inr(inst, SPOT[pair][1])
        return inst

    def future(self, pair: str) -> Instrument:
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(pair.removeprefix("B-").replace("_", ""), self.sim.seed + 1))
        inst = self._futures.get(pair)
        if inst is None:
            inst = self._futures[pair] = Instrument(pair.removeprefix("B-").replace("_", ""), self.sim.seed + 1)
        return inst

    def valid_channel(self, channel: str) -> bool:
        pair, _, kind = channel.partition("@")
        return kind == "trades" and pair in SPOT and SPOT[pair][3] == "active" and pair not in self.faults.reject_symbols

    def trade_frame(self, pair: str) -> str:
        inst = self.spot(pair)
        inst.step()
        price = _spot_fmt(inst, inst.price)
        if self.sim.probe:  # benchmark latency probe: the price carries the send time (µs mod 10^9)
            price = f"{(time.time_ns() // 1000) % 1_000_000_000 / 1000:.3f}"
        data = {"T": now_ms() + self.faults.future_ts_ms, "p": price, "q": f"{inst.rng.uniform(0.0001, 2):.8f}",
                "m": inst.rng.randint(0, 1), "s": pair, "pr": "spot"}
        return "42" + _compact(["new-trade", {"event": "new-trade", "data": _compact(data)}])

    # -- WebSocket -------------------------------------------------------------------------------

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if self.faults.refuse_connections:
            raise web.HTTPServiceUnavailable(text="simulator refusing connections")
        if q.get("transport") != "websocket":
            # Long polling is broken on the real host [U]; engine.io's error shape
            return web.json_response({"code": 0, "message": "Transport unknown"}, status=400)
        if q.get("EIO") != "4":
            return web.json_response({"code": 5, "message": "Unsupported protocol version"}, status=400)
        faults = self.faults
        session = CoinDCXSession(self, await self.accept(request, 1 << 20), faults.ping_interval_s, faults.ping_timeout_s)
        await session.open()
        return await self.serve(session, self.publish_loop(session), self._heartbeat(session))

    async def _heartbeat(self, session: CoinDCXSession) -> None:
        ws = session.ws
        while not ws.closed:
            await asyncio.sleep(session.ping_interval_s)
            if ws.closed:
                return
            if self.faults.silent:
                continue  # nothing sent, nothing owed
            session.pong.clear()
            try:
                await session.send("2")
                await asyncio.wait_for(session.pong.wait(), session.ping_timeout_s)
            except TimeoutError:
                self.ping_timeouts += 1
                await ws.close(code=1000, message=b"ping timeout")
                return
            except ConnectionError:
                return

    async def drop_all(self) -> None:
        for task in list(self._hanging):  # let the simulator stop without waiting out "timeout" faults
            task.cancel()
        await super().drop_all()

    async def _rest(self) -> web.Response | None:
        """rest_fault(), remembering a handler that sleeps out a "timeout" so drop_all can cancel it."""
        task = asyncio.current_task()
        if task is None or not self.faults.rest_errors or self.faults.rest_errors[0] != "timeout":
            return await self.rest_fault()
        self._hanging.add(task)
        try:
            return await self.rest_fault()
        finally:
            self._hanging.discard(task)

    # -- REST: futures -----------------------------------------------------------------------------

    def rt_entry(self, pair: str, now: int) -> dict[str, Any]:
        if pair in INACTIVE_FUTURES:
            if pair not in self._frozen:
                inst = self.future(pair)
                self._frozen[pair] = {"mkt": pair.removeprefix("B-").replace("_", ""), "mp": round(inst.price, 6),
                                      "bmST": now // 1000 * 1000 - 86_400_000, "cmRT": now - 86_400_000}
            return dict(self._frozen[pair])
        inst = self.future(pair)
        inst.step()
        shift = self.faults.future_ts_ms
        price = float(inst.fmt(inst.price))
        bt = now - 50 + shift
        bm = now // 1000 * 1000 + shift
        fr = 5e-05 if pair.endswith("BTC_USDT") else round(inst.rng.uniform(-2e-4, 2e-4), 8)
        entry = {
            "fr": fr, "h": float(inst.fmt(inst.high)), "l": float(inst.fmt(inst.low)),
            "v": round(inst.volume * price, 4), "ls": price, "pc": round((price / inst.open_24h - 1) * 100, 3),
            "mkt": pair.removeprefix("B-").replace("_", ""), "btST": bt, "ctRT": bt + 90, "skw": -207,
            "mp": round(price * 1.0001, 8), "efr": round(fr * 0.9, 10), "bmST": bm, "cmRT": bm + 117,
        }
        for key in RT_OMIT.get(pair, ()):
            entry.pop(key, None)
        return entry

    async def rt_prices(self, request: web.Request) -> web.Response:
        if (fault := await self._rest()) is not None:
            return fault
        now = now_ms()
        self.version += 1
        prices = {pair: self.rt_entry(pair, now) for pair in (*FUTURES, *INACTIVE_FUTURES)}
        return web.json_response({"ts": now + self.faults.future_ts_ms, "vs": self.version, "prices": prices})

    async def active_instruments(self, request: web.Request) -> web.Response:
        if (fault := await self._rest()) is not None:
            return fault
        margin = request.query.getall("margin_currency_short_name[]", ["USDT"])
        # the INR list is the USDT one [U]; anything else is listed nowhere
        return web.json_response(list(FUTURES) if set(margin) & {"USDT", "INR"} else [])

    def instrument_json(self, pair: str) -> dict[str, Any]:
        base = pair.removeprefix("B-").split("_")[0]
        inst = self.future(pair)
        return {
            "settle_currency_short_name": "USDT", "quote_currency_short_name": "USDT",
            "position_currency_short_name": base, "underlying_currency_short_name": base,
            "status": "inactive" if pair in INACTIVE_FUTURES else "active", "pair": pair, "kind": "perpetual",
            "settlement": "never", "max_leverage_long": 10.0, "max_leverage_short": 10.0, "unit_contract_value": 1.0,
            "price_increment": inst.tick, "quantity_increment": 0.001, "min_trade_size": 0.001,
            "min_price": round(inst.price / 10, 6), "max_price": round(inst.price * 10, 6), "min_quantity": 0.001,
            "max_quantity": 1000.0, "min_notional": 6.0, "maker_fee": 0.025, "taker_fee": 0.075,
            "safety_percentage": 2.0, "quanto_to_settle_multiplier": 1.0, "is_inverse": False, "is_quanto": False,
            "allow_post_only": False, "allow_hidden": False, "max_market_order_quantity": 100.0,
            "funding_frequency": {**FUTURES, **INACTIVE_FUTURES}[pair], "max_notional": 320000.0,
            "expiry_time": 2548162800000, "exit_only": False, "multiplier_up": 8.0, "multiplier_down": 8.0,
            "liquidation_fee": 1.0, "margin_currency_short_name": "USDT",
            "time_in_force_options": ["good_till_cancel", "immediate_or_cancel", "fill_or_kill"],
            "order_types": ["market_order", "limit_order", "stop_limit", "take_profit_limit", "stop_market", "take_profit_market"],
            "dynamic_position_leverage_details": {"5": 15000000.0, "10": 1000000.0},
            "dynamic_safety_margin_details": {"50000": 1.5, "100000": 2.0},
        }

    async def instrument(self, request: web.Request) -> web.Response:
        if (fault := await self._rest()) is not None:
            return fault
        pair = request.query.get("pair", "")
        known = {**FUTURES, **INACTIVE_FUTURES}
        # An unknown pair is answered 200 with another pair's details [U]
        return web.json_response({"instrument": self.instrument_json(pair if pair in known else next(iter(FUTURES)))})

    # -- REST: spot --------------------------------------------------------------------------------

    async def ticker(self, request: web.Request) -> web.Response:
        if (fault := await self._rest()) is not None:
            return fault
        second = now_ms() // 1000
        if self._ticker_cache[0] != second:  # "A ticker is generated once every second"
            rows = []
            for pair, (market, _base, _quote, status) in SPOT.items():
                inst = self.spot(pair)
                if status == "active":
                    inst.step()
                last = inst.price
                empty = pair in EMPTY_BOOK
                rows.append({
                    "market": market, "change_24_hour": f"{(last / inst.open_24h - 1) * 100:.3f}",
                    "high": _spot_fmt(inst, inst.high), "low": _spot_fmt(inst, inst.low),
                    "volume": f"{inst.volume * last:.8f}",  # quote currency
                    "last_price": _spot_fmt(inst, last),
                    "bid": "0.00000000" if empty else _spot_fmt(inst, last - inst.tick),
                    "ask": "0.00000000" if empty else _spot_fmt(inst, last + inst.tick),
                    "timestamp": second + self.faults.future_ts_ms // 1000,  # seconds on the wire [U]
                })
            self._ticker_cache = (second, rows)
        return web.json_response(self._ticker_cache[1])

    async def markets_details(self, request: web.Request) -> web.Response:
        if (fault := await self._rest()) is not None:
            return fault
        rows = []
        for pair, (market, base, quote, status) in SPOT.items():
            ecode = pair.split("-")[0]
            rows.append({
                "coindcx_name": market, "base_currency_short_name": quote, "target_currency_short_name": base,
                "target_currency_name": base, "base_currency_name": quote, "base_currency_precision": 8,
                "target_currency_precision": 4, "min_quantity": 0.0001, "max_quantity": 9000000, "min_price": 1e-08,
                "max_price": 10000000, "min_notional": 1, "step": 0.0001,
                "order_types": ["limit_order", "market_order"], "symbol": market, "ecode": ecode, "pair": pair,
                "status": status,
            })
        return web.json_response(rows)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/coindcx/socket.io/", self.ws_handler),
            web.get("/coindcx/socket.io", self.ws_handler),
            web.get("/coindcx/market_data/v3/current_prices/futures/rt", self.rt_prices),
            web.get("/coindcx/exchange/v1/derivatives/futures/data/active_instruments", self.active_instruments),
            web.get("/coindcx/exchange/v1/derivatives/futures/data/instrument", self.instrument),
            web.get("/coindcx/exchange/ticker", self.ticker),
            web.get("/coindcx/exchange/v1/markets_details", self.markets_details),
        ]

