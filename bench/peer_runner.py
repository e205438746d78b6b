"""The reference peer: cryptofeed's Bybit linear ticker feed with its Redis backend (TickerRedis).

    bench/.peer-venv/bin/python bench/peer_runner.py WS_BASE REST_BASE REDIS_PORT SYMBOL [SYMBOL ...]

Runs inside the peer's own virtualenv (`make bench-peer` installs the pinned cryptofeed there), never
the project's, and imports nothing from ltp. `bench.peer` starts it; it is not a test.

Two changes to cryptofeed, both made from outside, in this process only:
- symbols: its Bybit symbol map is read from REST instruments-info (`Bybit.rest_endpoints`, fetched with
  `requests` by `Exchange.symbol_mapping`); the endpoint's address is swapped for REST_BASE (the bench's
  frame server answers the same routes with `baseCoin`, `quoteCoin`, `contractType`, `priceFilter.tickSize`).
- socket: `WSAsyncConn` refuses any address but wss://, so `Bybit.connect` is wrapped and each connection
  it built gets WS_BASE + its own path (…/v5/public/linear: the handler reads the market from the path).

Every second the frames cryptofeed received (its connections' own `received` counters, nothing added per
message, read by a thread) go to the hash `peer:status` (received, updated_at) in the same Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import threading
import time
from typing import Any

import redis
from cryptofeed import FeedHandler
from cryptofeed.backends.redis import TickerRedis
from cryptofeed.connection import WSAsyncConn
from cryptofeed.defines import TICKER
from cryptofeed.exchanges import Bybit


def point_at(ws_base: str, rest_base: str) -> list[WSAsyncConn]:
    """Redirect Bybit's REST symbol fetch and websocket connections; returns the list the connections land in."""
    Bybit.rest_endpoints = [dataclasses.replace(ep, address=rest_base) for ep in Bybit.rest_endpoints]
    built: list[WSAsyncConn] = []
    original = Bybit.connect

    def connect(self: Bybit) -> list[tuple[Any, ...]]:
        conns = original(self)
        for conn, *_ in conns:
            if isinstance(conn, WSAsyncConn):
                conn.address = ws_base + "/v5/" + conn.address.split("/v5/", 1)[1]
                built.append(conn)
        return conns

    Bybit.connect = connect  # type: ignore[method-assign]
    return built


def report(port: int, conns: list[WSAsyncConn]) -> None:
    """A thread, not a task: at full speed cryptofeed's loop starves other tasks for seconds at a time."""
    r = redis.Redis(port=port)
    while True:
        r.hset("peer:status", mapping={"received": sum(getattr(c, "received", 0) for c in conns), "updated_at": time.time()})
        time.sleep(1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ws_base", help="ws://127.0.0.1:PORT")
    ap.add_argument("rest_base", help="http://127.0.0.1:PORT")
    ap.add_argument("redis_port", type=int)
    ap.add_argument("symbols", nargs="+", help="exchange symbols, e.g. SIM000USDT (perpetuals: SIM000-USDT-PERP)")
    args = ap.parse_args()
    logging.getLogger("feedhandler").setLevel(logging.WARNING)
    conns = point_at(args.ws_base, args.rest_base)
    fh = FeedHandler(config={"log": {"disabled": True}, "uvloop": True})
    symbols = [f"{s[:-4]}-USDT-PERP" for s in args.symbols]
    fh.add_feed(Bybit(symbols=symbols, channels=[TICKER], callbacks={TICKER: TickerRedis(host="127.0.0.1", port=args.redis_port)}))
    # FeedHandler.run calls asyncio.get_event_loop(), which uvloop 0.23 (what pip resolves) refuses without a loop set.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    fh.run(start_loop=False)
    threading.Thread(target=report, args=(args.redis_port, conns), daemon=True).start()
    loop.run_forever()


if __name__ == "__main__":
    main()
