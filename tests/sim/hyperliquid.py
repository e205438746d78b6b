"""Hyperliquid public market data as documented (gitbook websocket, subscriptions, heartbeats, info endpoint;
the official Python SDK's types; live-probe notes where the docs are silent, marked [U]).

    ws://127.0.0.1:<port>/hyperliquid/ws          (wss://api.hyperliquid.xyz/ws)
    http://127.0.0.1:<port>/hyperliquid/info      (POST https://api.hyperliquid.xyz/info)
    POST /_sim/hyperliquid {"idle_close_s": 5, "idle_counts": "client", "ctx_hz": 1}   (simulator settings)

WebSocket: the plain-text greeting `Websocket connection established.`, `subscriptionResponse` echoes,
`{"channel":"error","data":"..."}` for unreadable requests and double (un)subscribes (the socket stays open),
`pong`, string numbers, nullable `midPx` / `impactPxs` / `premium` / bbo sides, `activeSpotAssetCtx` for spot
coins, `bbo` only when it changed, whole-book `l2Book`. [U] A subscription naming an unknown coin (or one in
`faults.reject_symbols`) drops the TCP connection with no close frame (the client sees 1006), and so does a
connection idle for `idle_close_s` (60 s): by default one whose client has sent nothing for that long
(`idle_counts = "client"`, the docs' wording as briefed); `"server"` counts what the server sent instead
(what a live probe measured).

Markets: perps BTC, ETH, SOL, XRP, DOGE, kPEPE, HPOS (isolated only), MATIC (delisted: frozen mark, null
mid/premium/impact prices, no trades, no bbo, empty book) and SIM000..SIM149; spot PURR/USDC (index 0),
@1 = HFUN/USDC (bids only: ask side null, midPx null), @2..@106 filler pairs, @107 = HYPE/USDC (HYPE is token
150: a spot index is not a token index), @108 UBTC/USDC, @109 UETH/USDC.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json

from aiohttp import web

from .market import Instrument, now_ms
from .server import ExchangeSim, SimSession

GREETING = "Websocket connection established."
PARSE_ERROR = "Error parsing JSON into valid websocket request: "
COIN_TYPES = {"trades", "bbo", "activeAssetCtx", "l2Book"}
SUB_TYPES = COIN_TYPES | {"allMids"}


def _perp_universe() -> list[dict]:
    rows = [
        {"name": "BTC", "szDecimals": 5, "maxLeverage": 40, "marginTableId": 56},
        {"name": "ETH", "szDecimals": 4, "maxLeverage": 25, "marginTableId": 55},
        {"name": "SOL", "szDecimals": 2, "maxLeverage": 20, "marginTableId": 54},
        {"name": "XRP", "szDecimals": 0, "maxLeverage": 20, "marginTableId": 54},
        {"name": "DOGE", "szDecimals": 0, "maxLeverage": 10, "marginTableId": 52},
        {"name": "MATIC", "szDecimals": 1, "maxLeverage": 20, "marginTableId": 20, "isDelisted": True},
        {"name": "kPEPE", "szDecimals": 0, "maxLeverage": 10, "marginTableId": 52},
        {"name": "HPOS", "szDecimals": 0, "maxLeverage": 3, "onlyIsolated": True, "marginTableId": 3},
    ]
    rows += [{"name": f"SIM{i:03d}", "szDecimals": 1, "maxLeverage": 5, "marginTableId": 5} for i in range(150)]
    return rows


def _spot_meta() -> dict:
    names = {0: "USDC", 1: "PURR", 2: "HFUN", 150: "HYPE", 151: "UBTC", 152: "UETH"}
    names.update({i: f"TKN{i:03d}" for i in range(3, 150)})
    tokens = [{"name": names[i], "szDecimals": 8 if i == 0 else 2, "weiDecimals": 8, "index": i,
               "tokenId": "0x" + hashlib.md5(names[i].encode()).hexdigest(), "isCanonical": i < 2,
               "evmContract": None, "fullName": None} for i in sorted(names)]
    universe = [{"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True}]
    bases = {1: 2, 107: 150, 108: 151, 109: 152}
    for index in range(1, 110):
        universe.append({"tokens": [bases.get(index, index + 1), 0], "name": f"@{index}", "index": index, "isCanonical": False})
    return {"tokens": tokens, "universe": universe}


def _s(value: float, places: int) -> str:
    """Hyperliquid's number style: a decimal string, at least one decimal ("84143.0"), no exponent."""
    text = f"{value:.{places}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


class HyperliquidSession(SimSession):
    def __init__(self, sim: HyperliquidSim, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        super().__init__(sim, ws)
        self.hl = sim
        self.transport = transport
        self.subs: dict[tuple[str, str], dict] = {}  # (type, coin or "") -> the subscription as echoed
        self.last_bbo: dict[str, tuple] = {}
        loop = asyncio.get_running_loop()
        self.last_client = self.last_server = loop.time()
        self.ticks = 0

    async def send(self, obj: object) -> None:
        if self.hl.faults.silent or self.ws.closed:
            return
        await super().send(obj)
        self.last_server = asyncio.get_running_loop().time()

    def kill(self, why: str) -> None:
        """Drop the TCP connection without a close frame (what the client reports as 1006)."""
        self.hl.kills[why] += 1
        if self.transport is not None:
            self.transport.abort()

    # -- requests ---------------------------------------------------------------------

    async def on_text(self, text: str) -> None:
        self.last_client = asyncio.get_running_loop().time()
        try:
            req = json.loads(text)
        except ValueError:
            req = None
        method = req.get("method") if isinstance(req, dict) else None
        if method == "ping":
            await self.send({"channel": "pong"})
        elif method in ("subscribe", "unsubscribe") and isinstance(req, dict) and isinstance(req.get("subscription"), dict):
            await self.subscribe(req["subscription"], method, text)
        elif method == "post" and isinstance(req, dict) and isinstance(req.get("id"), int) and isinstance(req.get("request"), dict):
            await self.post(req["id"], req["request"], text)
        else:
            await self.send({"channel": "error", "data": PARSE_ERROR + text})

    async def subscribe(self, sub: dict, method: str, text: str) -> None:
        kind, coin = sub.get("type"), sub.get("coin")
        if kind not in SUB_TYPES or (kind in COIN_TYPES and not isinstance(coin, str)):
            await self.send({"channel": "error", "data": PARSE_ERROR + text})  # incl. a coin array
            return
        name = coin if isinstance(coin, str) else ""  # "" for allMids, which takes no coin
        if kind in COIN_TYPES and not self.hl.known(name):
            self.kill("unknown_coin")  # [U] no message: the socket and every subscription on it are gone
            return
        echo = {"type": kind, "coin": coin} if kind in COIN_TYPES else {"type": kind}
        if kind == "l2Book":
            echo |= {"nSigFigs": sub.get("nSigFigs"), "mantissa": sub.get("mantissa"), "fast": bool(sub.get("fast", False))}
        key = (kind, name)
        compact = json.dumps(echo, separators=(",", ":"))
        if method == "unsubscribe":
            if self.subs.pop(key, None) is None:
                await self.send({"channel": "error", "data": f"Already unsubscribed: {compact}"})
                return
            await self.send({"channel": "subscriptionResponse", "data": {"method": "unsubscribe", "subscription": echo}})
            return
        if key in self.subs:
            await self.send({"channel": "error", "data": f"Already subscribed: {compact}"})
            return
        self.subs[key] = echo
        await self.send({"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": echo}})
        # The first frames come right after the ack: recent trades (replayed [U]), the current context and book top.
        if kind == "trades" and self.hl.recent[name]:
            await self.send({"channel": "trades", "data": list(self.hl.recent[name])})
        elif kind in ("activeAssetCtx", "l2Book", "allMids"):
            await self.send_frame(kind, name)
        elif kind == "bbo":
            await self.send_bbo(name)

    async def post(self, req_id: int, request: dict, text: str) -> None:
        payload = request.get("payload")
        if request.get("type") != "info" or not isinstance(payload, dict):
            await self.send({"channel": "error", "data": PARSE_ERROR + text})
            return
        status, data = self.hl.info(payload)
        if status != 200:
            await self.send({"channel": "error", "data": PARSE_ERROR + text})
            return
        await self.send({"channel": "post", "data": {"id": req_id, "response": {
            "type": "info", "payload": {"type": payload.get("type"), "data": data}}}})

    # -- data ---------------------------------------------------------------------------

    async def send_bbo(self, coin: str) -> None:
        """`bbo` is sent only when the best bid or ask changed (and never for an empty book)."""
        top = self.script_frame(("bbo", coin), self.hl.bbo, coin)
        if top is None or self.last_bbo.get(coin) == top:
            return
        self.last_bbo[coin] = top
        bid, ask = top
        await self.send({"channel": "bbo", "data": {"coin": coin, "time": now_ms() + self.hl.faults.future_ts_ms, "bbo": [
            {"px": bid[0], "sz": bid[1], "n": bid[2]} if bid else None,
            {"px": ask[0], "sz": ask[1], "n": ask[2]} if ask else None]}})

    async def publish_once(self) -> None:
        hl = self.hl
        while hl.faults.garbage:
            await self.send(hl.faults.garbage.pop(0))
        self.ticks += 1
        # Script mode: every topic on every tick (the script is N updates per topic, whatever the kind).
        slow_tick = self.ticks % max(1, round(hl.sim.rate_hz / hl.ctx_hz)) == 0 if hl.sim.rate_hz > 0 and not hl.sim.script else True
        for (kind, coin) in list(self.subs):
            if kind == "trades":
                trades = self.script_frame((kind, coin), hl.trade, coin)
                if trades:
                    await self.send({"channel": "trades", "data": trades})
            elif kind == "bbo":
                await self.send_bbo(coin)
            elif slow_tick:
                await self.send_frame(kind, coin)

    async def send_frame(self, kind: str, coin: str) -> None:
        frame = self.script_frame((kind, coin), self.hl.frame, kind, coin)
        if frame is not None:
            await self.send(frame)


class HyperliquidSim(ExchangeSim):
    name = "hyperliquid"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.idle_close_s = 60.0
        self.idle_counts = "client"   # or "server": which side's silence the idle close counts
        self.ctx_hz = 1.0             # activeAssetCtx / l2Book / allMids pushes per second [U: ~1/s observed]
        self.perps = _perp_universe()
        self.spot = _spot_meta()
        token_names = {t["index"]: t["name"] for t in self.spot["tokens"]}
        # Spot coin ('@107') -> human name ('HYPE/USDC'), as a client derives it.
        self.spot_names = {u["name"]: f"{token_names[u['tokens'][0]]}/{token_names[u['tokens'][1]]}" for u in self.spot["universe"]}
        self.delisted = {p["name"] for p in self.perps if p.get("isDelisted")}
        self.one_sided = {"@1"}       # bids only
        self._instruments: dict[str, Instrument] = {}
        self.recent: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=10))
        self.kills: collections.Counter[str] = collections.Counter()
        self._tid = 1_000_000_000_000

    # -- markets --------------------------------------------------------------------------

    def is_spot(self, coin: str) -> bool:
        return coin in self.spot_names

    def known(self, coin: str) -> bool:
        if coin in self.faults.reject_symbols or self.spot_names.get(coin) in self.faults.reject_symbols:
            return False
        return self.is_spot(coin) or any(p["name"] == coin for p in self.perps)

    def instrument(self, coin: str) -> Instrument:
        # Spot walks start from the base coin's price: 'UBTC/USDC' -> 'BTC...' via the human name.
        label = self.spot_names[coin].removeprefix("U") if self.is_spot(coin) else coin
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(label, self.sim.seed))
        inst = self._instruments.get(coin)
        if inst is None:
            inst = self._instruments[coin] = Instrument(label, self.sim.seed)
        return inst

    def trade(self, coin: str) -> list[dict]:
        """One or two trades of a step of the walk (none on a delisted coin)."""
        if coin in self.delisted:
            return []
        inst = self.instrument(coin)
        ts = now_ms() + self.faults.future_ts_ms
        out = []
        for _ in range(1 + (inst.rng.random() < 0.3)):
            inst.step()
            self._tid += 7919
            trade = {"coin": coin, "side": inst.rng.choice("AB"), "px": inst.fmt(inst.price),
                     "sz": _s(inst.rng.uniform(0.001, 3), 5), "time": ts,
                     "hash": "0x" + hashlib.sha256(f"{coin}{self._tid}".encode()).hexdigest(), "tid": self._tid,
                     "users": ["0x" + "1" * 40, "0x" + "2" * 40]}
            out.append(trade)
            self.recent[coin].append(trade)
        return out

    def bbo(self, coin: str) -> tuple | None:
        """(bid, ask) levels as (px, sz, n) or None per side; None when the book is empty."""
        if coin in self.delisted:
            return None
        inst = self.instrument(coin)
        bid_px, ask_px = inst.fmt(inst.price - inst.tick), inst.fmt(inst.price + inst.tick)
        # Sizes follow the price level, so an unchanged top is an unchanged bbo (and is not re-sent).
        bid = (bid_px, _s(1 + int(hashlib.md5(bid_px.encode()).hexdigest()[:4], 16) % 5000 / 100, 5), 3)
        ask = (ask_px, _s(1 + int(hashlib.md5(ask_px.encode()).hexdigest()[:4], 16) % 5000 / 100, 5), 2)
        return (bid, None) if coin in self.one_sided else (bid, ask)

    def perp_ctx(self, coin: str) -> dict:
        inst = self.instrument(coin)
        mark = inst.fmt(inst.price)
        if coin in self.delisted:
            return {"funding": "0.0", "openInterest": "0.0", "prevDayPx": mark, "dayNtlVlm": "0.0", "premium": None,
                    "oraclePx": mark, "markPx": mark, "midPx": None, "impactPxs": None, "dayBaseVlm": "0.0"}
        top = self.bbo(coin)
        assert top is not None
        (bid, _, _), (ask, _, _) = top[0], top[1]
        return {
            "funding": _s(0.0000125 + inst.rng.uniform(-0.00001, 0.00001), 10), "openInterest": _s(inst.volume * 3, 5),
            "prevDayPx": inst.fmt(inst.open_24h), "dayNtlVlm": _s(inst.volume * inst.price, 6),
            "premium": _s(inst.rng.uniform(-0.001, 0.001), 10), "oraclePx": inst.fmt(inst.price * 0.9999), "markPx": mark,
            "midPx": _s((float(bid) + float(ask)) / 2, 8), "impactPxs": [bid, ask], "dayBaseVlm": _s(inst.volume, 5),
        }

    def spot_ctx(self, coin: str) -> dict:
        inst = self.instrument(coin)
        top = self.bbo(coin)
        mid = None if top is None or top[1] is None else _s((float(top[0][0]) + float(top[1][0])) / 2, 8)
        return {"prevDayPx": inst.fmt(inst.open_24h), "dayNtlVlm": _s(inst.volume * inst.price, 6), "markPx": inst.fmt(inst.price),
                "midPx": mid, "circulatingSupply": "298462370.4079165459", "coin": coin, "totalSupply": "998882916.6303099394",
                "dayBaseVlm": _s(inst.volume, 5)}

    def book(self, coin: str) -> dict:
        if coin in self.delisted:
            levels: list[list[dict]] = [[], []]
        else:
            inst = self.instrument(coin)
            bids, asks = inst.book(20)
            if coin in self.one_sided:
                asks = []
            levels = [[{"px": p, "sz": s, "n": 1} for p, s in side] for side in (bids, asks)]
        return {"coin": coin, "time": now_ms() + self.faults.future_ts_ms, "levels": levels}

    def mids(self) -> dict[str, str]:
        out = {p["name"]: self.instrument(p["name"]).fmt(self.instrument(p["name"]).price) for p in self.perps
               if p["name"] not in self.delisted}
        out |= {coin: self.instrument(coin).fmt(self.instrument(coin).price) for coin in self.spot_names if coin not in self.one_sided}
        return out

    def frame(self, kind: str, coin: str) -> dict:
        if kind == "activeAssetCtx":
            if self.is_spot(coin):
                return {"channel": "activeSpotAssetCtx", "data": {"coin": coin, "ctx": self.spot_ctx(coin)}}
            return {"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": self.perp_ctx(coin)}}
        if kind == "l2Book":
            return {"channel": "l2Book", "data": self.book(coin)}
        return {"channel": "allMids", "data": {"mids": self.mids()}}

    # -- REST /info -----------------------------------------------------------------------

    def info(self, body: dict) -> tuple[int, object]:
        """(HTTP status, JSON answer) of one /info request."""
        kind, dex = body.get("type"), body.get("dex", "")
        if dex not in ("", None) and kind in ("meta", "metaAndAssetCtxs", "allMids"):
            return 500, None  # [U] an unknown builder dex
        if kind == "meta":
            return 200, {"universe": self.perps, "marginTables": [], "collateralToken": 0}
        if kind == "metaAndAssetCtxs":
            return 200, [{"universe": self.perps, "marginTables": [], "collateralToken": 0},
                         [self.perp_ctx(p["name"]) for p in self.perps]]
        if kind == "spotMeta":
            return 200, self.spot
        if kind == "spotMetaAndAssetCtxs":
            return 200, [self.spot, [self.spot_ctx(u["name"]) for u in self.spot["universe"]]]
        if kind == "allMids":
            return 200, self.mids()
        if kind == "l2Book":
            coin = body.get("coin")
            return 200, self.book(coin) if isinstance(coin, str) and self.known(coin) else None
        return 422, "Failed to deserialize the JSON body into the target type"

    async def info_handler(self, request: web.Request) -> web.Response:
        if (fault := await self.rest_fault()) is not None:
            return fault
        if request.content_type != "application/json":
            return web.Response(status=415, text="Expected request with `Content-Type: application/json`")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=422, text="Failed to deserialize the JSON body into the target type")
        status, answer = self.info(body)
        if isinstance(answer, str):
            return web.Response(status=status, text=answer)
        return web.json_response(answer, status=status)

    # -- routes ---------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/hyperliquid/ws", self.ws_handler),
            web.post("/hyperliquid/info", self.info_handler),
            web.post("/_sim/hyperliquid", self.settings_handler),
        ]

    def stats(self) -> dict:
        return super().stats() | {"kills": dict(self.kills)}

    async def settings_handler(self, request: web.Request) -> web.Response:
        body = await request.json()
        allowed = {"idle_close_s": float, "idle_counts": str, "ctx_hz": float}
        for key, value in body.items():
            if key not in allowed or (key == "idle_counts" and value not in ("client", "server")):
                return web.json_response({"error": f"unknown setting {key}={value!r}", "allowed": sorted(allowed)}, status=400)
            setattr(self, key, allowed[key](value))
        return web.json_response({"ok": True})

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        session = HyperliquidSession(self, await self.accept(request, 1 << 20), request.transport)
        await session.send(GREETING)
        return await self.serve(session, self.publish_loop(session), self._idle_loop(session))

    async def _idle_loop(self, session: HyperliquidSession) -> None:
        loop = asyncio.get_running_loop()
        while not session.ws.closed:
            await asyncio.sleep(min(0.25, self.idle_close_s / 8))
            last = session.last_client if self.idle_counts == "client" else session.last_server
            if loop.time() - last > self.idle_close_s:
                session.kill("idle")
                return
