"""Delta Exchange (India) public socket as documented: the compact channels (`ticker`,
`trades`, `funding_rate`, `spot_price`), `product_updates` notices, heartbeat,
per-channel subscription errors, and REST products/tickers/indices.

    ws://127.0.0.1:<port>/delta           (wss://public-socket.india.delta.exchange)
    http://127.0.0.1:<port>/delta/v2/...  (https://api.india.delta.exchange/v2/...)

The legacy channels of the private socket (`v2/ticker`, `v2/spot_price`, `all_trades`) are
gone from the docs (changelog 17.04.26): asking for one is refused like any unknown channel.
The wording of the unknown-symbol error is invented (Delta's is undocumented); it follows
the documented "subscription forbidden on <channel>..." pattern and names the symbols.
Every tick brings one trade per subscribed contract (a real option trades far less often).
Tests roll option expiries with `roll(underlying)` and send notices with
`product_update(event, symbol)`, both through `Simulator.call`; `trades_paused` stops trades.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from aiohttp import web

from .market import Instrument, black_scholes, now_ms, smile_iv
from .server import ExchangeSim, SimSession

CHANNELS = {"ticker", "trades", "funding_rate", "spot_price"}
PRODUCT_UPDATE_STATUS = {"market_disruption": "disrupted_cancel_only", "start_auction": "disrupted_post_only",
                         "finish_auction": "operational"}
INDICES = {".DEXBTUSD": "BTC", ".DEETHUSD": "ETH"}
STRIKES = {"BTC": (55000, 75000, 1000), "ETH": (2800, 3600, 100)}


def _ddmmyy(day: dt.date) -> str:
    return day.strftime("%d%m%y")


class DeltaSession(SimSession):
    def __init__(self, sim: DeltaSim, ws: web.WebSocketResponse) -> None:
        super().__init__(sim, ws)
        self.subs: dict[str, set[str]] = {}
        self.heartbeat = False

    async def on_text(self, text: str) -> None:
        try:
            req = json.loads(text)
            kind = req.get("type")
        except (ValueError, AttributeError):
            return  # Delta ignores what it cannot read
        if kind == "enable_heartbeat":
            self.heartbeat = True
        elif kind == "disable_heartbeat":
            self.heartbeat = False
        elif kind == "ping":
            await self.send({"type": "pong"})
        elif kind in ("subscribe", "unsubscribe"):
            await self.subscribe(((req.get("payload") or {}).get("channels")) or [], kind)

    def _known(self, channel: str, symbol: str) -> bool:
        if symbol in self.sim.faults.reject_symbols:
            return False
        if channel == "spot_price":
            return symbol in INDICES
        if channel == "funding_rate":
            return symbol in self.sim.products and self.sim.products[symbol]["contract_type"] == "perpetual_futures"
        product = self.sim.products.get(symbol)
        return product is not None and product["state"] == "live"

    async def subscribe(self, channels: list[dict], kind: str) -> None:
        errors = []
        for ch in channels:
            name, symbols = ch.get("name"), ch.get("symbols")
            if kind == "unsubscribe":
                if symbols is None:
                    self.subs.pop(name, None)
                else:
                    self.subs.get(name, set()).difference_update(symbols)
                continue
            if name not in CHANNELS:
                errors.append({"name": name, "error": f"subscription forbidden on {name}. Unknown channel"})
                continue
            bad = [s for s in symbols or () if not self._known(name, s)]
            if bad:
                errors.append({"name": name, "error": f"subscription forbidden on {name}. Invalid symbols: {', '.join(bad)}"})
                continue
            self.subs.setdefault(name, set()).update(symbols or ())
        listing = [{"name": n, "symbols": sorted(s)} for n, s in self.subs.items() if s]
        await self.send({"type": "subscriptions", "channels": listing + errors})
        await self.publish_once()

    async def publish_once(self) -> None:
        faults = self.sim.faults
        while faults.garbage:
            await self.send(faults.garbage.pop(0))
        ts_us = (now_ms() + faults.future_ts_ms) * 1000
        for name, symbols in list(self.subs.items()):
            for sym in sorted(symbols):
                frame = self.script_frame((name, sym), self.sim.frame, name, sym, ts_us)
                if frame is not None:
                    await self.send(frame)


class DeltaSim(ExchangeSim):
    name = "delta"

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.heartbeat_s = 30.0
        self._instruments: dict[str, Instrument] = {}
        self.products: dict[str, dict] = {}
        self._next_id = 1000
        self._trade_n = 0
        self.trades_paused = False  # tests: no trades while tickers go on
        for sym, und in (("BTCUSD", "BTC"), ("ETHUSD", "ETH"), ("SOLUSD", "SOL"), ("XRPUSD", "XRP")):
            self._add({"symbol": sym, "contract_type": "perpetual_futures", "underlying": und, "settlement_time": None})
        self._add({"symbol": "BTC_USDT", "contract_type": "spot", "underlying": "BTC", "settlement_time": None})
        today = self.sim.model_now().date()
        for und in STRIKES:
            for days in (1, 2, 7):
                self.add_expiry(und, today + dt.timedelta(days=days))

    # -- instruments ----------------------------------------------------------------------

    def _add(self, spec: dict) -> None:
        self._next_id += 1
        self.products[spec["symbol"]] = {"id": self._next_id, "state": "live", "trading_status": "operational", **spec}

    def add_expiry(self, underlying: str, day: dt.date) -> list[str]:
        lo, hi, step = STRIKES[underlying]
        added = []
        for strike in range(lo, hi + 1, step):
            for kind, ctype in (("C", "call_options"), ("P", "put_options")):
                sym = f"{kind}-{underlying}-{strike}-{_ddmmyy(day)}"
                self._add({"symbol": sym, "contract_type": ctype, "underlying": underlying, "strike_price": str(strike),
                           "settlement_time": f"{day.isoformat()}T12:00:00Z"})
                added.append(sym)
        return added

    def live_expiries(self, underlying: str) -> list[str]:
        return sorted({p["settlement_time"][:10] for p in self.products.values()
                       if p["underlying"] == underlying and p["contract_type"].endswith("options") and p["state"] == "live"})

    async def roll(self, underlying: str) -> tuple[str, str]:
        """Expire the nearest expiry of `underlying` and list a new one after the last: (gone, new) ISO dates."""
        expiries = self.live_expiries(underlying)
        gone = expiries[0]
        for p in self.products.values():
            if p["underlying"] == underlying and (p.get("settlement_time") or "").startswith(gone):
                p["state"] = "expired"
        new = dt.date.fromisoformat(expiries[-1]) + dt.timedelta(days=7)
        self.add_expiry(underlying, new)
        return gone, new.isoformat()

    def instrument(self, symbol: str) -> Instrument:
        # Index names ('.DEXBTUSD') don't start with the coin; prefix it so the walk starts at its price.
        label = INDICES[symbol] + symbol if symbol in INDICES else symbol
        if self.sim.script:
            return self.script_instrument(lambda: Instrument(label, self.sim.seed))
        inst = self._instruments.get(symbol)
        if inst is None:
            inst = self._instruments[symbol] = Instrument(label, self.sim.seed)
        return inst

    def index_price(self, underlying: str) -> float:
        return self.instrument(".DEXBTUSD" if underlying == "BTC" else f".DE{underlying}USD").price

    # -- frames ---------------------------------------------------------------------------

    def _price(self, product: dict) -> tuple[float, float]:
        """(last traded price, 24 h open) of a contract; a future's walk takes a step."""
        if product["contract_type"].endswith("options"):
            price = round(self.option_model(product)["price"], 1)
            return price, price * 0.98
        inst = self.instrument(product["symbol"])
        inst.step()
        return float(inst.fmt(inst.price)), inst.open_24h

    def option_model(self, product: dict) -> dict[str, float]:
        """Black-Scholes from the index and a smile: marks, IVs and Greeks that differ across strikes and sides."""
        spot = self.index_price(product["underlying"])
        strike = float(product["strike_price"])
        settle = dt.datetime.fromisoformat(product["settlement_time"].replace("Z", "+00:00"))
        years = (settle - self.sim.model_now()).total_seconds() / 31_536_000
        iv = smile_iv(spot, strike)
        return {**black_scholes(spot, strike, years, iv, product["symbol"].startswith("C")), "iv": iv}

    def ticker_row(self, product: dict, ts_us: int) -> dict:
        """A REST /v2/tickers row, with the fields of the docs' Ticker schema."""
        sym, und = product["symbol"], product["underlying"]
        spot = self.index_price(und)
        option = product["contract_type"].endswith("options")
        close, open_ = self._price(product)
        oi = 469919  # contracts ("oi: the number of outstanding contracts")
        model = self.option_model(product) if option else {}
        iv = model.get("iv", 0.0)
        row = {
            "symbol": sym, "product_id": product["id"], "contract_type": product["contract_type"], "timestamp": ts_us,
            "open": open_, "high": max(open_, close) * 1.01, "low": min(open_, close) * 0.99, "close": close,
            "size": 10, "volume": 1234.5, "turnover": 1234.5 * close, "turnover_symbol": "USD", "turnover_usd": 1234.5 * close,
            "mark_price": f"{close * 1.0001:.4f}", "mark_vol": "500", "spot_price": f"{spot:.4f}", "oi": str(oi),
            "oi_value": f"{oi * 0.001 * spot:.4f}", "oi_value_symbol": "USD", "oi_value_usd": f"{oi * 0.001 * spot:.4f}",
            "price_band": {"lower_limit": f"{close * 0.9:.1f}", "upper_limit": f"{close * 1.1:.1f}"},
            "quotes": {"best_bid": f"{close - 0.5:.1f}", "best_ask": f"{close + 0.5:.1f}", "bid_size": "10", "ask_size": "12",
                       "bid_iv": f"{iv - 0.01:.4f}" if option else None, "ask_iv": f"{iv + 0.01:.4f}" if option else None,
                       "mark_iv": f"{iv:.4f}" if option else "-0.44", "impact_mid_price": None},
            "greeks": {name: f"{model[name]:.6g}" for name in ("delta", "gamma", "rho", "theta", "vega")} | {"spot": f"{spot:.4f}"}
            if option else None,
        }
        if product["contract_type"] == "perpetual_futures":
            row["funding_rate"] = "0.0100"  # not in the docs' Ticker schema; the futures feed reads it when present
        if option:
            row["strike_price"] = product["strike_price"]
        return row

    def frame(self, channel: str, symbol: str, ts_us: int) -> dict | None:
        if channel == "spot_price":
            inst = self.instrument(symbol)
            inst.step()
            return {"p": f"{inst.price:.4f}", "sy": symbol, "ts": ts_us, "type": "spot_price"}
        product = self.products.get(symbol)
        if product is None or product["state"] != "live":
            return None  # expired contracts go quiet
        if channel == "funding_rate":
            return {"fi": 28800, "fr": 0.01, "nfr": (ts_us // 28_800_000_000 + 1) * 28_800_000_000, "sy": symbol,
                    "ts": ts_us, "type": "funding_rate"}
        if channel == "trades":
            if self.trades_paused:
                return None  # nobody trades: the ticker goes on, ltp must not move
            price, _ = self._price(product)
            self._trade_n += 1
            n = self.script_k if self.sim.script else self._trade_n  # script mode: the topic's own count
            return {"p": f"{price:.10g}", "r": "m" if n % 2 else "t", "s": float(1 + n % 5),
                    "sy": symbol, "t": ts_us - 400, "ts": ts_us, "type": "trades"}
        row = self.ticker_row(product, ts_us)
        q, g = row["quotes"], row["greeks"]
        entry = {
            "g": [g["delta"], g["gamma"], g["rho"], g["theta"], g["vega"]] if g else None,
            "i": product["id"], "m": row["mark_price"], "m24hc": "1.5",
            "ohlc": [row["open"], row["high"], row["low"], row["close"]],
            "oi": [row["oi"], "0.0000"], "pb": ["1", "1000000"],
            "q": [q["best_ask"], q["ask_size"], q["best_bid"], q["bid_size"], None],
            "qiv": [q["ask_iv"], q["bid_iv"], q["mark_iv"]], "s": symbol, "to": [row["turnover"], row["turnover_usd"]],
        }
        return {"d": [entry], "sp": row["spot_price"], "sy": symbol, "ts": ts_us, "type": "ticker"}

    async def product_update(self, event: str, symbol: str) -> int:
        """Send a `product_updates` notice (docs: sent to clients without a subscription) on every connection."""
        product = self.products[symbol]
        frame = {"type": "product_updates", "event": event,
                 "product": {"id": product["id"], "symbol": symbol, "trading_status": PRODUCT_UPDATE_STATUS[event]},
                 "timestamp": now_ms() * 1000}
        conns = list(self.connections)
        for ws in conns:
            await ws.send_str(json.dumps(frame))
        return len(conns)

    # -- routes ---------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/delta", self.ws_handler),
            web.get("/delta/v2/products", self.products_handler),
            web.get("/delta/v2/tickers", self.tickers_handler),
            web.get("/delta/v2/indices", self.indices_handler),
        ]

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        session = DeltaSession(self, await self.accept(request, 1 << 22))
        return await self.serve(session, self.publish_loop(session), self._heartbeat_loop(session))

    async def _heartbeat_loop(self, session: DeltaSession) -> None:
        while not session.ws.closed:
            await asyncio.sleep(self.heartbeat_s)
            if session.heartbeat:
                try:
                    await session.send({"type": "heartbeat"})
                except ConnectionError:
                    return

    @staticmethod
    def _list(request: web.Request, key: str) -> set[str] | None:
        raw = request.query.get(key)
        return set(raw.split(",")) if raw else None

    def _product_json(self, p: dict) -> dict:
        out = {k: v for k, v in p.items() if k != "underlying"}
        out["underlying_asset"] = {"symbol": p["underlying"]}
        out.setdefault("strike_price", None)
        return out

    async def products_handler(self, request: web.Request) -> web.Response:
        fault = await self.rest_fault()
        if fault is not None:
            return fault
        types, states = self._list(request, "contract_types"), self._list(request, "states") or {"live"}
        rows = [self._product_json(p) for p in self.products.values()
                if (types is None or p["contract_type"] in types) and p["state"] in states]
        size = int(request.query.get("page_size", "100"))
        start = int(request.query.get("after", "0") or 0)
        page = rows[start:start + size]
        after = str(start + size) if start + size < len(rows) else None
        return web.json_response({"success": True, "result": page, "meta": {"after": after, "before": None}})

    async def tickers_handler(self, request: web.Request) -> web.Response:
        fault = await self.rest_fault()
        if fault is not None:
            return fault
        types, unds = self._list(request, "contract_types"), self._list(request, "underlying_asset_symbols")
        ts_us = now_ms() * 1000
        rows = [self.ticker_row(p, ts_us) for p in self.products.values()
                if p["state"] == "live" and (types is None or p["contract_type"] in types) and (unds is None or p["underlying"] in unds)]
        return web.json_response({"success": True, "result": rows})

    async def indices_handler(self, request: web.Request) -> web.Response:
        fault = await self.rest_fault()
        if fault is not None:
            return fault
        return web.json_response({"success": True, "result": [
            {"id": i, "symbol": s, "index_type": "spot_pair"} for i, s in enumerate(INDICES, start=14)]})
