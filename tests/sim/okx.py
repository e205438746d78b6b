"""OKX API v5 public market data as documented (docs/exchanges/okx.md: the official v5 docs).

    ws://127.0.0.1:<port>/okx/ws/v5/public              (wss://ws.okx.com:8443/ws/v5/public)
    http://127.0.0.1:<port>/okx/api/v5/public/instruments (GET https://openapi.okx.com/api/v5/...)
    POST /_sim/okx {"idle_close_s": 30, "notice_close_s": 60, "slow_hz": 1}   (simulator settings)
    POST /_sim/okx {"notice": true}                      (64008 notice to every connection, then close)

WebSocket: text `ping` -> text `pong`; `{"op":"subscribe","args":[..]}` acked per arg with
`{"event":"subscribe","arg":..,"connId":..}` (+ `id` when the request had one); an arg naming an
instrument or index that is not listed (or in `faults.reject_symbols`) gets
`{"event":"error","code":"60018","msg":"Wrong URL or channel:<ch>,instId:<id> doesn't exist. ..."}`
with no `arg`, the other args of the request still served [U: the docs do not say]; unreadable
requests get 60012. Pushes are `{"arg":{"channel","instId"},"data":[{..}]}` with string numbers and
string ms `ts`: `tickers` (SPOT vol24h base / volCcy24h quote; SWAP vol24h contracts / volCcy24h
base coin), `trades` (integer `seqId`), `mark-price`, `index-tickers` (instId = index),
`funding-rate` (fundingTime = the next settlement, nextFundingTime the one after) and
`open-interest` (oi contracts, oiCcy coin, oiUsd USD); funding and open interest come on subscribe
and then `slow_hz` times a second (the exchange: every 30-90 s and 3 s). A connection that the
server has sent nothing for `idle_close_s` (30 s), or that subscribed nothing within it, is closed
with 4004 "No data received in 30s" (a `pong` counts as sent). `notice()` sends the 64008 notice
and closes each connection `notice_close_s` later (1001). REST errors: 429 is OKX's
`{"code":"50011","msg":"Too Many Requests"}` with HTTP 429; `"50011"` the same code with HTTP 200.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSCloseCode, web

from .market import Instrument, now_ms
from .server import ExchangeSim, SimSession

SPOT = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT", "BTC-USDC"] + [f"SIM{i:03d}-USDT" for i in range(300)]
SPOT_SET = set(SPOT)
# instId -> (ctType, ctVal, ctValCcy, settleCcy, funding interval in hours)
SWAP = {
    "BTC-USDT-SWAP": ("linear", "0.01", "BTC", "USDT", 8),
    "ETH-USDT-SWAP": ("linear", "0.1", "ETH", "USDT", 8),
    "SOL-USDT-SWAP": ("linear", "1", "SOL", "USDT", 4),
    "XRP-USDT-SWAP": ("linear", "100", "XRP", "USDT", 8),
    "BTC-USDC-SWAP": ("linear", "0.0001", "BTC", "USDC", 8),
    "BTC-USD-SWAP": ("inverse", "100", "USD", "BTC", 8),
    "ETH-USD-SWAP": ("inverse", "10", "USD", "ETH", 8),
} | {f"SIM{i:03d}-USDT-SWAP": ("linear", "1", f"SIM{i:03d}", "USDT", 8) for i in range(300)}
SUSPENDED = {"DOGE-USDT-SWAP": ("linear", "1000", "DOGE", "USDT", 8)}  # listed with state "suspend"
CHANNELS = {"tickers", "trades", "mark-price", "index-tickers", "funding-rate", "open-interest"}
SWAP_ONLY = {"mark-price", "funding-rate", "open-interest"}
NO_SUCH = ("Wrong URL or channel:{ch},instId:{inst} doesn't exist. Please use the correct URL, channel and "
           "parameters referring to API document.")


def index_of(swap: str) -> str:
    return swap.removesuffix("-SWAP")


INDICES = {index_of(s) for s in SWAP} | {"ETH-BTC"}


class OkxSession(SimSession):
    def __init__(self, sim: OkxSim, ws: web.WebSocketResponse) -> None:
        super().__init__(sim, ws)
        self.okx = sim
        self.conn_id = uuid.uuid4().hex[:8]
        self.subs: dict[tuple[str, str], None] = {}
        loop = asyncio.get_running_loop()
        self.opened = self.last_sent = loop.time()
        self.ticks = 0

    async def send(self, obj: Any) -> None:
        if self.okx.faults.silent or self.ws.closed:
            return
        await super().send(obj)
        self.last_sent = asyncio.get_running_loop().time()

    # -- requests -------------------------------------------------------------------

    async def on_text(self, text: str) -> None:
        if text == "ping":
            await self.send("pong")
            return
        try:
            req = json.loads(text)
        except ValueError:
            req = None
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            await self.error("60012", f"Invalid request: {text[:200]}", req)
            return
        if len(json.dumps(args)) > 64 * 1024:
            await self.error("60013", "Invalid args", req)
            return
        self.okx.requests += 1
        fresh = []
        for arg in args:
            ch, inst = (arg.get("channel"), arg.get("instId")) if isinstance(arg, dict) else (None, None)
            if not isinstance(ch, str) or not isinstance(inst, str) or ch not in CHANNELS:
                await self.error("60013", f"Invalid args: {json.dumps(arg)[:120]}", req)
                continue
            if not self.okx.listed(ch, inst):
                await self.error("60018", NO_SUCH.format(ch=ch, inst=inst), req)
                continue
            echo = {"channel": ch, "instId": inst}
            ack: dict[str, Any] = {"event": op, "arg": echo, "connId": self.conn_id}
            if isinstance(req, dict) and "id" in req:
                ack = {"id": req["id"]} | ack
            await self.send(ack)
            if op == "unsubscribe":
                self.subs.pop((ch, inst), None)
            elif (ch, inst) not in self.subs:
                self.subs[(ch, inst)] = None
                fresh.append((ch, inst))
        for ch, inst in fresh:  # a subscription's first push comes right after its ack
            await self.push(ch, inst)

    async def error(self, code: str, msg: str, req: Any) -> None:
        frame: dict[str, Any] = {"event": "error", "code": code, "msg": msg, "connId": self.conn_id}
        if isinstance(req, dict) and "id" in req:
            frame = {"id": req["id"]} | frame
        await self.send(frame)

    # -- data -----------------------------------------------------------------------

    async def push(self, ch: str, inst: str) -> None:
        frame = self.script_frame((ch, inst), self.okx.frame, ch, inst)
        if frame is not None:
            await self.send(frame)

    async def publish_once(self) -> None:
        okx = self.okx
        while okx.faults.garbage:
            await self.send(okx.faults.garbage.pop(0))
        if okx.faults.no_data:
            return
        self.ticks += 1
        rate = okx.sim.rate_hz
        slow = okx.sim.script or rate <= 0 or self.ticks % max(1, round(rate / okx.slow_hz)) == 0
        for ch, inst in list(self.subs):
            if ch in ("funding-rate", "open-interest") and not slow:
                continue
            await self.push(ch, inst)


class OkxSim(ExchangeSim):
    name = "okx"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.idle_close_s = 30.0     # the server's "no data for 30 s" close
        self.notice_close_s = 60.0   # a 64008 notice comes 60 s before the close (current docs)
        self.slow_hz = 1.0           # funding-rate and open-interest pushes per second
        self.requests = 0            # subscribe/unsubscribe requests, every connection
        self.idle_closes = 0
        self._instruments: dict[str, Instrument] = {}
        self._trade_id = 130639474
        self._seq = 1234

    # -- markets --------------------------------------------------------------------

    def listed(self, ch: str, inst: str) -> bool:
        if inst in self.faults.reject_symbols:
            return False
        if ch == "index-tickers":
            return inst in INDICES
        if ch in SWAP_ONLY:
            return inst in SWAP
        return inst in SWAP or inst in SPOT_SET

    def instrument(self, inst: str) -> Instrument:
        """One walk per market: a swap and its index move with the spot market of the same pair."""
        label = index_of(inst)
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(label, self.sim.seed))
        walk = self._instruments.get(label)
        if walk is None:
            walk = self._instruments[label] = Instrument(label, self.sim.seed)
        return walk

    def frame(self, ch: str, inst: str) -> dict:
        ts = now_ms() + self.faults.future_ts_ms
        return {"arg": {"channel": ch, "instId": inst}, "data": [self.data(ch, inst, ts)]}

    def data(self, ch: str, inst: str, ts: int) -> dict:
        w = self.instrument(inst)
        f = w.fmt
        if ch == "trades":
            w.step()
            self._trade_id += 1
            self._seq += 1
            size = f"{w.rng.uniform(0.001, 2):.8f}" if inst in SPOT_SET else str(w.rng.randint(1, 500))
            px = f(w.price)
            if self.sim.probe:
                px = f"{(now_ms() * 1000) % 1_000_000_000 / 1000:.3f}"
            return {"instId": inst, "tradeId": str(self._trade_id), "px": px, "sz": size,
                    "side": w.rng.choice(("buy", "sell")), "ts": str(ts), "count": "1", "source": "0", "seqId": self._seq}
        if ch == "tickers":
            return self.ticker(inst, w, ts)
        if ch == "mark-price":
            return {"instType": "SWAP", "instId": inst, "markPx": f(w.price * 1.0002), "ts": str(ts)}
        if ch == "index-tickers":
            return {"instId": inst, "idxPx": f(w.price * 0.9999), "high24h": f(w.high), "low24h": f(w.low),
                    "open24h": f(w.open_24h), "sodUtc0": f(w.open_24h), "sodUtc8": f(w.open_24h), "ts": str(ts)}
        if ch == "funding-rate":
            hours = SWAP[inst][4]
            period = hours * 3_600_000
            settle = (ts // period + 1) * period
            return {"formulaType": "noRate", "fundingRate": "0.0001", "fundingTime": str(settle), "impactValue": "",
                    "instId": inst, "instType": "SWAP", "interestRate": "", "method": "current_period",
                    "maxFundingRate": "0.00375", "minFundingRate": "-0.00375", "nextFundingRate": "",
                    "nextFundingTime": str(settle + period), "premium": "0.0000910113652644",
                    "settFundingRate": "0.0000145824401745", "settState": "settled", "ts": str(ts)}
        # open-interest: contracts, coin and USD
        ct_type, ct_val = SWAP[inst][0], float(SWAP[inst][1])
        contracts = round(w.volume * 40, 2)
        coin = contracts * ct_val / w.price if ct_type == "inverse" else contracts * ct_val
        return {"instId": inst, "instType": "SWAP", "oi": f"{contracts:.2f}", "oiCcy": f"{coin:.8f}",
                "oiUsd": f"{coin * w.price:.4f}", "ts": str(ts)}

    def ticker(self, inst: str, w: Instrument, ts: int) -> dict:
        f = w.fmt
        if inst in SPOT_SET:
            vol, vol_ccy = f"{w.volume:.8f}", f"{w.volume * w.price:.4f}"      # base, quote
        else:
            ct_type, ct_val = SWAP[inst][0], float(SWAP[inst][1])
            contracts = round(w.volume / ct_val) if ct_type == "linear" else round(w.volume * w.price / ct_val)
            vol, vol_ccy = str(contracts), f"{w.volume:.8f}"                    # contracts, base coin
        return {"instType": "SPOT" if inst in SPOT_SET else "SWAP", "instId": inst, "last": f(w.price),
                "lastSz": "0.1", "askPx": f(w.price + w.tick), "askSz": "11", "bidPx": f(w.price - w.tick), "bidSz": "5",
                "open24h": f(w.open_24h), "high24h": f(w.high), "low24h": f(w.low), "volCcy24h": vol_ccy, "vol24h": vol,
                "sodUtc0": f(w.open_24h), "sodUtc8": f(w.open_24h), "ts": str(ts)}

    # -- REST -----------------------------------------------------------------------

    async def rest_fault(self) -> web.Response | None:
        if self.faults.rest_errors and self.faults.rest_errors[0] in (429, "50011"):
            self.rest_requests += 1
            fault = self.faults.rest_errors.pop(0)
            body = {"code": "50011", "msg": "Too Many Requests" if fault == 429 else
                    "Rate limit reached. Please refer to API documentation and throttle requests accordingly.", "data": []}
            return web.json_response(body, status=429 if fault == 429 else 200)
        return await super().rest_fault()

    async def instruments(self, request: web.Request) -> web.Response:
        if (fault := await self.rest_fault()) is not None:
            return fault
        kind = request.query.get("instType")
        if kind == "SPOT":
            rows = [self.spot_record(s) for s in SPOT]
        elif kind == "SWAP":
            rows = [self.swap_record(s, spec, "live") for s, spec in SWAP.items()]
            rows += [self.swap_record(s, spec, "suspend") for s, spec in SUSPENDED.items()]
        elif kind in ("MARGIN", "FUTURES", "OPTION", "EVENTS"):
            rows = []
        else:
            return web.json_response({"code": "51000", "msg": "Parameter instType error", "data": []}, status=400)
        if inst := request.query.get("instId"):
            rows = [r for r in rows if r["instId"] == inst]
        return web.json_response({"code": "0", "msg": "", "data": rows})

    @staticmethod
    def spot_record(inst: str) -> dict:
        base, quote = inst.split("-")
        return {"alias": "", "baseCcy": base, "category": "1", "ctMult": "", "ctType": "", "ctVal": "", "ctValCcy": "",
                "expTime": "", "instFamily": "", "instId": inst, "instType": "SPOT", "lever": "10",
                "listTime": "1606468572000", "lotSz": "0.00000001", "minSz": "0.00001", "quoteCcy": quote,
                "settleCcy": "", "state": "live", "ruleType": "normal", "tickSz": "0.1", "uly": "", "instCategory": "1"}

    @staticmethod
    def swap_record(inst: str, spec: tuple, state: str) -> dict:
        ct_type, ct_val, ct_ccy, settle, _ = spec
        uly = index_of(inst)
        return {"alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": ct_type, "ctVal": ct_val,
                "ctValCcy": ct_ccy, "expTime": "", "instFamily": uly, "instId": inst, "instType": "SWAP", "lever": "100",
                "listTime": "1573557408000", "lotSz": "0.1", "minSz": "0.1", "quoteCcy": "", "ruleType": "normal",
                "settleCcy": settle, "state": state, "tickSz": "0.1", "uly": uly, "instCategory": "1"}

    # -- planned closes ---------------------------------------------------------------

    async def notice(self) -> int:
        """The 64008 notice to every open connection; each is closed `notice_close_s` later."""
        sessions = [s for s in self.sessions if not s.ws.closed]
        for s in sessions:
            await s.send({"event": "notice", "code": "64008",
                          "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                          "connId": s.conn_id})

        async def close_later(s: OkxSession) -> None:
            await asyncio.sleep(self.notice_close_s)
            await s.ws.close(code=WSCloseCode.GOING_AWAY, message=b"service upgrade")

        for s in sessions:
            asyncio.get_running_loop().create_task(close_later(s))
        return len(sessions)

    # -- routes -----------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/okx/ws/v5/public", self.ws_handler),
            web.get("/okx/api/v5/public/instruments", self.instruments),
            web.post("/_sim/okx", self.settings_handler),
        ]

    def stats(self) -> dict:
        return super().stats() | {"requests": self.requests, "idle_closes": self.idle_closes}

    async def settings_handler(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.pop("notice", False):
            await self.notice()
        allowed = {"idle_close_s": float, "notice_close_s": float, "slow_hz": float}
        for key, value in body.items():
            if key not in allowed:
                return web.json_response({"error": f"unknown setting {key}", "allowed": sorted(allowed)}, status=400)
            setattr(self, key, allowed[key](value))
        return web.json_response({"ok": True})

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        session = OkxSession(self, await self.accept(request, 1 << 20))
        return await self.serve(session, self.publish_loop(session), self._idle_loop(session))

    async def _idle_loop(self, session: OkxSession) -> None:
        loop = asyncio.get_running_loop()
        while not session.ws.closed:
            await asyncio.sleep(min(0.25, self.idle_close_s / 8))
            if self.faults.silent:
                continue  # the silence fault keeps TCP open and says nothing, not even a close
            now = loop.time()
            if now - session.last_sent > self.idle_close_s or (not session.subs and now - session.opened > self.idle_close_s):
                self.idle_closes += 1
                await session.ws.close(code=4004, message=b"No data received in 30s")
                return

    async def blast(self, session: OkxSession) -> None:
        """Benchmark mode (rate_hz <= 0): pre-built ticker and trade frames, as fast as the socket takes them."""
        subs = [k for k in session.subs if k[0] in ("tickers", "trades")]
        if not subs:
            await asyncio.sleep(0.01)
            return
        frames = [json.dumps(self.frame(ch, inst)) for _ in range(64) for ch, inst in subs]
        await self.send_prebuilt(session, frames)
