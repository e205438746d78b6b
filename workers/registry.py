"""Every feed, in one place: feed id -> exchange and the builder that wires it.

A feed id is also its supervisord program name, its `exchanges.yaml` service key and
its status hash `service:status:<id>`. `python -m workers <id>` runs it. Builders are
named as "module:function" and imported only by the feed that runs them, so a feed
process loads one exchange's code.
"""

from __future__ import annotations

from typing import NamedTuple


class FeedSpec(NamedTuple):
    exchange: str
    builder: str          # "workers.feeds.<exchange>:<function>" taking a FeedContext
    uses_rest: bool       # needs `rest_endpoint` (discovery or polling over REST)
    summary: str


FEEDS: dict[str, FeedSpec] = {
    "bybit_spot": FeedSpec("bybit", "workers.feeds.bybit:spot", False, "Bybit spot tickers and best bid/ask"),
    "bybit_futures_orderbook": FeedSpec("bybit", "workers.feeds.bybit:linear", False,
                                        "Bybit USDT perpetuals: tickers, funding and a local order book"),
    "bybit_options": FeedSpec("bybit", "workers.feeds.bybit:options", True, "Bybit option chains with Greeks"),
    "bybit_spot_testnet_spot": FeedSpec("bybit", "workers.feeds.bybit:spot", False, "the spot feed on Bybit's testnet"),
    "delta_spot": FeedSpec("delta", "workers.feeds.delta:spot", True, "Delta spot markets or spot indices"),
    "delta_futures_ltp": FeedSpec("delta", "workers.feeds.delta:futures", True,
                                  "Delta perpetuals and futures: LTP, mark, funding, OI"),
    "delta_options": FeedSpec("delta", "workers.feeds.delta:options", True, "Delta option chains with Greeks"),
    "coindcx_spot": FeedSpec("coindcx", "workers.feeds.coindcx:spot", True,
                             "CoinDCX spot: trades over socket.io, quotes and 24 h stats from the REST ticker"),
    "coindcx_futures_rest": FeedSpec("coindcx", "workers.feeds.coindcx:futures", True,
                                     "CoinDCX futures over REST: LTP, mark, current and estimated funding"),
    "hyperliquid_perpetual": FeedSpec("hyperliquid", "workers.feeds.hyperliquid:perpetual", True,
                                      "Hyperliquid perpetuals: trades, mark, oracle, hourly funding, OI, best bid/ask"),
    "hyperliquid_spot": FeedSpec("hyperliquid", "workers.feeds.hyperliquid:spot", True,
                                 "Hyperliquid spot pairs by name (HYPE/USDC): trades, mark, mid, best bid/ask"),
}

KNOWN_FEEDS: dict[str, str] = {feed_id: spec.exchange for feed_id, spec in FEEDS.items()}
KNOWN_EXCHANGES: list[str] = sorted(set(KNOWN_FEEDS.values()))
