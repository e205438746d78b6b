"""Feed `bybit_futures_orderbook`: Bybit V5 linear perpetuals, merged tickers + local order book."""

from __future__ import annotations

from workers.exchanges import bybit
from workers.runtime.config import ConfigError
from workers.runtime.feed import FeedContext, run_feed
from workers.runtime.ws import WsConnection

SERVICE_ID = "bybit_futures_orderbook"


def build(ctx: FeedContext) -> list[WsConnection]:
    svc = ctx.service
    if svc.depth not in bybit.LINEAR_BOOK_DEPTHS:
        raise ConfigError(f"exchanges.bybit.services.{SERVICE_ID}.depth", f"{svc.depth} is not offered by Bybit",
                          ", ".join(map(str, bybit.LINEAR_BOOK_DEPTHS)))
    streams = bybit.linear_streams(svc.url, list(svc.symbols), depth=svc.depth, levels=svc.levels,
                                   ping_interval=svc.ping_interval)
    return [WsConnection(s, ctx.sink, ctx.stats, silence_timeout=svc.silence_timeout) for s in streams]


def main() -> None:
    run_feed(SERVICE_ID, build)


if __name__ == "__main__":
    main()
