"""Feed `bybit_options`: Bybit V5 option tickers with Greeks over a chain that REST discovery keeps current."""

from __future__ import annotations

import time

import requests

from workers.exchanges import bybit
from workers.runtime.discovery import DiscoveredWsFeed
from workers.runtime.feed import FeedContext, run_feed
from workers.runtime.ws import WsConnection

SERVICE_ID = "bybit_options"


def build(ctx: FeedContext) -> list[DiscoveredWsFeed]:
    svc = ctx.service
    rest = svc.rest_url
    explicit = list(svc.symbols)
    rule = None if explicit else bybit.check_selection(dict(svc.selection), f"exchanges.bybit.services.{SERVICE_ID}.selection")

    def discover(session: requests.Session) -> list[str]:
        now = int(time.time() * 1000)
        coins = rule["underlyings"] if rule else sorted({s.split("-")[0] for s in explicit})
        instruments = [i for coin in coins for i in bybit.fetch_option_instruments(session, rest, coin)]
        if rule is not None:
            spot = {coin: bybit.fetch_spot_price(session, rest, coin) for coin in coins}
            return bybit.select_chain(instruments, {c: p for c, p in spot.items() if p}, rule, now)
        live = {i.get("symbol") for i in instruments if i.get("status") == "Trading" and int(i.get("deliveryTime") or 0) > now}
        for symbol in explicit:
            if symbol not in live:  # reported once (stats.reject dedupes), never subscribed
                ctx.stats.reject(symbol, "not a live Bybit option (unknown, expired or not trading)")
        return [s for s in explicit if s in live]

    def connections(symbols: list[str]) -> list[WsConnection]:
        return [WsConnection(s, ctx.sink, ctx.stats, silence_timeout=svc.silence_timeout)
                for s in bybit.option_streams(svc.url, symbols, ping_interval=svc.ping_interval)]

    return [DiscoveredWsFeed(ctx, discover, connections, svc.discovery_interval)]


def main() -> None:
    run_feed(SERVICE_ID, build)


if __name__ == "__main__":
    main()
