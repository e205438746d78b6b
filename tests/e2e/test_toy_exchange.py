"""Adding an exchange is what the README's "Adding an exchange" says, and nothing more.

In a copy of the tree, a toy exchange is added exactly that way: its module (protocol + declared feed),
one registry line, one exchanges.yaml block, one simulator module. The copy then shows it in
`python -m workers`, in the supervisord blocks `python -m workers.supervisor_conf` writes, and, with the
feed running under that tree's supervisord against that tree's simulator, in /api/venues, /api/status
and /api/compare.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness import ROOT, RedisServer, Supervisor, wait_for
from tests.sim.demo import point_at_simulator

pytestmark = pytest.mark.e2e

TOY_MODULE = '''
"""Toy: one WebSocket, `{"op":"sub","symbols":[..]}`, trades pushed as `{"s":"TOYUSDT","p":"1.25","t":<ms>}`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.exchanges.common import decimal_str, decode_object
from workers.runtime.declare import SPOT, Exchange, Feed
from workers.runtime.markets import Market, market, split_quote
from workers.runtime.model import IGNORED, Control, Update
from workers.runtime.stream import WsStream

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source


class ToyStream(WsStream):
    def __init__(self, url: str, symbols: list[str]) -> None:
        self.name, self.url, self.symbols, self.ping_interval = "toy#0", url, symbols, None

    def on_connect(self) -> list[str]:
        import json
        return [json.dumps({"op": "sub", "symbols": self.symbols})]

    def parse(self, raw: bytes) -> list[Update] | Control:
        msg = decode_object(raw)
        if "s" not in msg:
            return Control(IGNORED)
        return [Update(msg["s"], {"ltp": decimal_str(msg["p"], "p", positive=True)}, int(msg["t"]))]


def market_of(symbol: str, kind: str) -> Market | None:
    split = split_quote(symbol)
    return market(*split, SPOT) if split else None


def spot(ctx: FeedContext) -> list[Source]:
    return [ctx.connection(ToyStream(ctx.service.url, list(ctx.service.symbols)))]


EXCHANGE = Exchange(name="toy", display="Toy Exchange", feeds=(Feed("toy_spot", SPOT, spot, "toy trades"),),
                    market=market_of, funding_interval_hours=None, simulator="tests.sim.toy:ToySim")
'''

TOY_SIM = '''
"""The toy exchange: ws://<sim>/toy/ws; trades of every subscribed symbol at the simulator's rate."""

from __future__ import annotations

import json
import time

from aiohttp import web

from .server import ExchangeSim, SimSession


class ToySession(SimSession):
    symbols: list[str] = []

    async def on_text(self, data: str) -> None:
        self.symbols = json.loads(data).get("symbols", [])

    async def publish_once(self) -> None:
        for sym in self.symbols:
            await self.send({"s": sym, "p": "1.25", "t": int(time.time() * 1000)})


class ToySim(ExchangeSim):
    name = "toy"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/toy/ws", self.ws_handler)]

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        session = ToySession(self, await self.accept(request, 1 << 16))
        return await self.serve(session, self.publish_loop(session))
'''

TOY_CONFIG = {"endpoints": {"ws": "wss://stream.toy.example/ws"},
              "services": {"toy_spot": {"endpoint": "ws", "redis_prefix": "toy_spot", "symbols": ["TOYUSDT"]}}}


def _copy_tree(dst: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("workers", "controlpanel"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    (dst / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "__init__.py", dst / "tests")
    shutil.copytree(ROOT / "tests" / "sim", dst / "tests" / "sim", ignore=ignore)
    for name in ("exchanges.yaml", "supervisord.conf"):
        shutil.copy(ROOT / name, dst / name)
    return dst


def _add_toy_exchange(tree: Path) -> None:
    """The README's list, exactly: module, registry entry, exchanges.yaml block, simulator module."""
    (tree / "workers" / "exchanges" / "toy.py").write_text(TOY_MODULE)
    registry = tree / "workers" / "registry.py"
    text = registry.read_text()
    anchor = 'EXCHANGES: dict[str, str] = {\n'
    assert anchor in text
    registry.write_text(text.replace(anchor, anchor + '    "toy": "workers.exchanges.toy",\n'))
    config = yaml.safe_load((tree / "exchanges.yaml").read_text())
    config["exchanges"]["toy"] = TOY_CONFIG
    (tree / "exchanges.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tree / "tests" / "sim" / "toy.py").write_text(TOY_SIM)


def _run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=tree, capture_output=True, text=True, timeout=60)


def test_a_toy_exchange_added_the_documented_way_shows_up_everywhere(tmp_path):
    tree = _copy_tree(tmp_path / "ltp")
    _add_toy_exchange(tree)

    listing = _run(tree, "-m", "workers")
    assert listing.returncode == 0 and any(line.split()[:3] == ["toy_spot", "Toy", "Exchange"] for line in listing.stdout.splitlines())

    gen = _run(tree, "-m", "workers.supervisor_conf")
    assert gen.returncode == 0, gen.stderr
    conf = (tree / "supervisord.conf").read_text()
    assert "[program:toy_spot]\n; toy trades\ncommand=python -OO -m workers %(program_name)s\n" in conf
    assert conf.count("[program:") == (ROOT / "supervisord.conf").read_text().count("[program:") + 1

    port_file = tmp_path / "sim.port"
    sim = subprocess.Popen([sys.executable, "-m", "tests.sim", "--port", "0", "--port-file", str(port_file), "--rate", "5"],
                           cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_server = RedisServer().start()
    sv = None
    try:
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 20)
        config = point_at_simulator(yaml.safe_load((tree / "exchanges.yaml").read_text()), int(port_file.read_text()))
        config["redis"]["url"] = redis_server.url
        for ex in config["exchanges"].values():
            for sid, svc in ex["services"].items():
                svc["enabled"] = sid == "toy_spot"
        sv = Supervisor(config, redis_server.url, root=tree).start()
        panel = f"http://127.0.0.1:{sv.panel_port}"
        client = redis_server.client()

        try:
            wait_for(lambda: client.hget("toy_spot:TOYUSDT", "ltp") == "1.25", 30)
        except AssertionError:
            raise AssertionError(f"no toy price in Redis; feed log:\n{sv.log('toy_spot')[-3000:]}\n"
                                 f"autostart log:\n{sv.log('autostart')[-2000:]}") from None

        def status_row() -> dict | None:
            try:
                body = requests.get(f"{panel}/api/status", timeout=5).json()
            except (requests.RequestException, ValueError):
                return None
            row = next((s for s in body["services"] if s["id"] == "toy_spot"), None)
            return row if row and row.get("process_state") == "RUNNING" and row.get("feed_state") == "subscribed" else None

        row = wait_for(status_row, 30)
        assert row["exchange"] == "toy"

        venues = requests.get(f"{panel}/api/venues", timeout=5).json()["venues"]
        toy = next(v for v in venues if v["exchange"] == "toy")
        assert toy["display"] == "Toy Exchange"
        assert toy["feeds"] == [{"id": "toy_spot", "kind": "spot", "summary": "toy trades", "uses_rest": False, "configured": True,
                                 "enabled": True, "redis_prefix": "toy_spot"}]

        compare = requests.get(f"{panel}/api/compare/TOY", timeout=5).json()
        assert [(r["feed"], r["venue"], r["symbol"], r["kind"], r["quote"]) for r in compare["rows"]] == [
            ("toy_spot", "toy", "TOYUSDT", "spot", "USDT")]
        assert compare["rows"][0]["ltp"] == 1.25
    finally:
        if sv is not None:
            sv.stop()
        redis_server.cleanup()
        sim.terminate()
        sim.wait(10)
