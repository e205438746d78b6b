"""Feed `bybit_spot`: Bybit V5 spot tickers (+ best bid/ask) into `<prefix>:<SYMBOL>`."""

from __future__ import annotations

from workers.exchanges import bybit
from workers.runtime.feed import FeedContext, run_feed
from workers.runtime.ws import WsConnection


def build(ctx: FeedContext) -> list[WsConnection]:
    svc = ctx.service
    streams = bybit.spot_streams(svc.url, list(svc.symbols), book_top=svc.book_top, ping_interval=svc.ping_interval)
    return [WsConnection(s, ctx.sink, ctx.stats, silence_timeout=svc.silence_timeout) for s in streams]


def main() -> None:
    run_feed("bybit_spot", build)


if __name__ == "__main__":
    main()
