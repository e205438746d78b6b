"""The local exchange simulator: one aiohttp server, every exchange under its own path.

    ws://127.0.0.1:<port>/bybit/v5/public/spot        (Bybit's /v5/public/spot)
    http://127.0.0.1:<port>/bybit/v5/market/...       (Bybit's REST)
    POST /_sim/fault  {"exchange": "bybit", ...}      (misbehave on demand)
    GET  /_sim/stats                                  (connections, frames sent)

Script mode (`Simulator(script=N)`, golden tests): a fixed, finite script instead of a live
market. Each subscribed topic of a connection gets exactly N updates, its k-th built from the
market at step k (a fresh walk of the symbol's seeded instrument, k steps long), so what it
carries depends on the seed, the symbol and k only, never on what else was sent before or
how fast; REST answers show the market at step N (the script's end). Option chains are listed
and priced on a fixed clock (SCRIPT_EPOCH). Event timestamps stay the wall clock.

Runs in a background thread for tests (`Simulator().start()`) or standalone
(`python -m tests.sim --port 0 --port-file sim.port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from workers import registry

from .market import Instrument

T = TypeVar("T")
# Script mode's clock for listing and pricing option chains: far enough ahead that its expiries
# are live for years to come, fixed so that symbols (expiry codes) and Greeks never change.
SCRIPT_EPOCH = dt.datetime(2060, 1, 5, tzinfo=dt.UTC)


@dataclass
class Faults:
    """Switches a test flips; each exchange handler consults them."""

    silent: bool = False                 # stop sending anything (even pongs); TCP stays open
    refuse_connections: bool = False     # answer WebSocket upgrades with HTTP 503
    reject_symbols: set[str] = field(default_factory=set)  # subscribe requests naming these fail
    gap_next: int = 0                    # skip an order-book update id on the next N deltas
    garbage: list[str] = field(default_factory=list)  # frames to send once to every connection
    rest_errors: list[int | str] = field(default_factory=list)  # next REST answers: 429, 500, "garbage", "timeout"
    future_ts_ms: int = 0                # shift event timestamps (clock skew tests)
    ws_heartbeat: float = 0.0            # > 0: new connections get RFC 6455 pings this often and are
                                         # closed by the server when a pong does not come back in time
    no_data: bool = False                # market data paused; pongs, acks and other replies still sent
    sub_internal_error: int = 0          # Bybit: the next N subscribe requests refused naming no topic, then closed
    ack_unrequested: int = 0             # Bybit: the next N subscribe requests refused naming a topic nobody asked for


class SimSession:
    """One simulated client connection; `send` honours the silence fault and counts frames."""

    def __init__(self, sim: ExchangeSim, ws: web.WebSocketResponse) -> None:
        self.sim = sim
        self.ws = ws
        self.script_sent: dict[Hashable, int] = {}  # script mode: updates sent per topic

    def script_frame(self, topic: Hashable, build: Callable[..., T], *args: Any) -> T | None:
        """`build(*args)`; in script mode built at the topic's next step k (instruments at step k),
        and None once the topic has had its N updates."""
        n = self.sim.sim.script
        if n <= 0:
            return build(*args)
        k = self.script_sent.get(topic, 0) + 1
        if k > n:
            return None
        self.script_sent[topic] = k
        self.sim.script_k = k  # no await until it is reset: no other frame is built meanwhile
        try:
            return build(*args)
        finally:
            self.sim.script_k = n

    async def send(self, obj: Any) -> None:
        if self.sim.faults.silent or self.ws.closed:
            return
        await self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))
        self.sim.frames_sent += 1


class ExchangeSim:
    """Base for one exchange's protocol; subclasses register their routes."""

    name = ""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.faults = Faults()
        self.connections: set[web.WebSocketResponse] = set()
        self.sockets: dict[web.WebSocketResponse, Any] = {}  # each connection's TCP socket (for corking)
        self.frames_sent = 0
        self.connects = 0
        self.rest_requests = 0
        self.sessions: set[Any] = set()  # open sessions (script mode's progress report)
        self.script_k = sim.script       # script mode: the step instruments are built at (N outside a topic's update)

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        out = {"connections": len(self.connections), "connects": self.connects,
               "frames_sent": self.frames_sent, "rest_requests": self.rest_requests}
        if self.sim.script:
            # Topics of open connections still short of their N updates: 0 once the script has played.
            out["script_pending"] = sum(k < self.sim.script for s in self.sessions for k in s.script_sent.values())
        return out

    def script_instrument(self, make: Callable[[], Instrument]) -> Instrument:
        """Script mode: a fresh instrument walked `script_k` steps (a function of seed, symbol and k)."""
        inst = make()
        for _ in range(self.script_k):
            inst.step()
        return inst

    async def accept(self, request: web.Request, max_msg_size: int) -> web.WebSocketResponse:
        """Upgrade a request to a WebSocket (or refuse it, as the fault says) and register it."""
        if self.faults.refuse_connections:
            raise web.HTTPServiceUnavailable(text="simulator refusing connections")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=max_msg_size,
                                   heartbeat=self.faults.ws_heartbeat or None)
        await ws.prepare(request)
        self.connects += 1
        self.connections.add(ws)
        self.sockets[ws] = request.transport.get_extra_info("socket") if request.transport else None
        return ws

    async def serve(self, session: Any, *loops: Any) -> web.WebSocketResponse:
        """Feed the client's text frames to the session while its background loops run."""
        tasks = [asyncio.create_task(loop) for loop in loops]
        self.sessions.add(session)
        try:
            async for msg in session.ws:
                if msg.type == WSMsgType.TEXT:
                    await session.on_text(msg.data)
        finally:
            for t in tasks:
                t.cancel()
            self.connections.discard(session.ws)
            self.sockets.pop(session.ws, None)
            self.sessions.discard(session)
        return session.ws

    async def publish_loop(self, session: Any) -> None:
        """Publish at sim.rate_hz per topic; rate <= 0 hands over to `blast` (benchmarks)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not session.ws.closed:
            try:
                if self.sim.rate_hz <= 0:
                    await self.blast(session)
                    due = loop.time()
                    continue
                # Deadline scheduling keeps the rate exact even at 1 kHz, where sleep() overshoots.
                due += 1.0 / self.sim.rate_hz
                await asyncio.sleep(max(0.0, due - loop.time()))
                sock = self.sockets.get(session.ws) if self.sim.cork_bursts else None
                if sock is None:
                    await session.publish_once()
                    continue
                # One tick's frames leave in as few segments as the kernel can make, the way a
                # fast exchange server's burst arrives, instead of one segment per Python send.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                try:
                    await session.publish_once()
                finally:
                    with contextlib.suppress(OSError):  # the client may be gone mid-tick
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            except ConnectionError:
                return

    async def blast(self, session: Any) -> None:
        """As fast as possible; exchanges with a cheaper pre-built path override this (with `send_prebuilt`)."""
        await session.publish_once()
        await asyncio.sleep(0)

    async def send_prebuilt(self, session: Any, frames: list[str]) -> None:
        """Benchmark mode: the same pre-built frames over and over, as fast as the socket takes them, until the
        rate is set again or the connection goes silent or away."""
        ws = session.ws
        while not ws.closed and self.sim.rate_hz <= 0 and not self.faults.silent:
            for frame in frames:
                await ws.send_str(frame)
            self.frames_sent += len(frames)
            session.last_sent = asyncio.get_running_loop().time()  # idle-close rules count what the server sent
            await asyncio.sleep(0)  # let pings and control requests in

    async def drop_all(self) -> None:
        for ws in list(self.connections):
            await ws.close(code=1001, message=b"simulator drop")

    async def rest_fault(self) -> web.Response | None:
        """Serve the next queued REST fault, if any."""
        self.rest_requests += 1
        if not self.faults.rest_errors:
            return None
        fault = self.faults.rest_errors.pop(0)
        if fault == 429:
            return web.json_response({"error": "rate limited"}, status=429, headers={"Retry-After": "1"})
        if fault == "garbage":
            return web.Response(text="<html>not json", content_type="application/json")
        if fault == "timeout":
            await asyncio.sleep(30)
        return web.json_response({"error": "internal"}, status=int(fault) if isinstance(fault, int) else 500)


def _load(ref: str) -> type[ExchangeSim]:
    """The ExchangeSim class named "module:Class"."""
    module, _, name = ref.partition(":")
    cls: type[ExchangeSim] = getattr(importlib.import_module(module), name)
    return cls


class Simulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, rate_hz: float = 5.0, seed: int = 0,
                 ssl_context: ssl.SSLContext | None = None, script: int = 0) -> None:
        self.script = script    # > 0: script mode, N updates per topic (module docstring)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # TLS mode: every endpoint is wss:// / https:// (tests.harness.TlsCerts)
        self.rate_hz = rate_hz  # updates per second per subscribed topic; <= 0 means as fast as possible
        self.probe = False      # benchmark latency probe: prices carry their send time
        self.cork_bursts = False  # benchmark: each tick's frames leave together (TCP_CORK around the tick)
        self.seed = seed
        # Every registered exchange's simulator, as its declaration names it (`Exchange.simulator`).
        self.exchanges: dict[str, ExchangeSim] = {ex.name: _load(ex.simulator)(self) for ex in registry.exchanges()}
        self.app = web.Application()
        for ex in self.exchanges.values():
            self.app.add_routes(ex.routes())
        self.app.add_routes([web.post("/_sim/fault", self._fault), web.get("/_sim/stats", self._stats)])
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def model_now(self) -> dt.datetime:
        """The clock option chains are listed and priced by: the wall clock, or SCRIPT_EPOCH in script mode."""
        return SCRIPT_EPOCH if self.script else dt.datetime.now(dt.UTC)

    # -- URLs ---------------------------------------------------------------------

    def http_url(self, exchange: str) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}/{exchange}"

    def ws_url(self, exchange: str, path: str) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}/{exchange}/{path.lstrip('/')}"

    # -- lifecycle ------------------------------------------------------------------

    async def serve(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.loop = asyncio.get_running_loop()
        self._started.set()

    def start(self) -> Simulator:
        """Serve from a background thread; returns once the port is bound."""
        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
            loop.run_forever()
        self._thread = threading.Thread(target=run, name="simulator", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("simulator did not start")
        return self

    def stop(self) -> None:
        if self.loop is None:
            return
        async def shutdown() -> None:
            for ex in self.exchanges.values():
                await ex.drop_all()
            if self._runner is not None:
                await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def call(self, coro_fn, *args: Any) -> Any:
        """Run a coroutine function on the simulator's loop from another thread."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop).result(10)

    def drop(self, exchange: str) -> None:
        self.call(self.exchanges[exchange].drop_all)

    # -- control API ----------------------------------------------------------------

    async def _fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        ex = self.exchanges.get(body.pop("exchange", ""))
        if ex is None:
            return web.json_response({"error": "unknown exchange", "allowed": sorted(self.exchanges)}, status=404)
        if body.pop("drop", False):
            await ex.drop_all()
        if "rate_hz" in body:
            self.rate_hz = float(body.pop("rate_hz"))
        if "probe" in body:
            self.probe = bool(body.pop("probe"))
        if "cork_bursts" in body:
            self.cork_bursts = bool(body.pop("cork_bursts"))
        for key, value in body.items():
            if not hasattr(ex.faults, key):
                return web.json_response({"error": f"unknown fault {key}"}, status=400)
            setattr(ex.faults, key, set(value) if key == "reject_symbols" else value)
        return web.json_response({"ok": True})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({name: ex.stats() for name, ex in self.exchanges.items()} | {"port": self.port})
