"""Bybit feeds: spot, linear (tickers + local book) and options (chain kept current over REST)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.exchanges import bybit
from workers.runtime.chain import ChainRule
from workers.runtime.config import ConfigError
from workers.runtime.discovery import DiscoveredWsFeed
from workers.runtime.feed import FeedContext, Source
from workers.runtime.paging import fetch_pages
from workers.runtime.poll import get_parsed
from workers.runtime.timefmt import now_ms
from workers.runtime.ws import WsConnection

if TYPE_CHECKING:
    from workers.runtime.poll import RestSession


def _connections(ctx: FeedContext, streams: list[bybit.SpotStream] | list[bybit.LinearStream] | list[bybit.OptionStream],
                 ) -> list[WsConnection]:
    return [ctx.connection(s) for s in streams]


def spot(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    return list(_connections(ctx, bybit.spot_streams(svc.url, list(svc.symbols), book_top=svc.book_top,
                                                     ping_interval=svc.ping_interval)))


def linear(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    if svc.depth not in bybit.LINEAR_BOOK_DEPTHS:
        raise ConfigError(f"{svc.path}.depth", f"{svc.depth} is not offered by Bybit", ", ".join(map(str, bybit.LINEAR_BOOK_DEPTHS)))
    return list(_connections(ctx, bybit.linear_streams(svc.url, list(svc.symbols), depth=svc.depth, levels=svc.levels,
                                                       ping_interval=svc.ping_interval)))


def options(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    rest = svc.rest_url
    rule = ChainRule.from_config(svc.selection, f"{svc.path}.selection")
    explicit = list(svc.symbols)

    def discover(session: RestSession) -> list[str]:
        coins = sorted(set(rule.underlyings) | {s.split("-")[0] for s in explicit})
        url = f"{rest}{bybit.INSTRUMENTS_PATH}"
        contracts = [c for coin in coins
                     for c in bybit.option_contracts(fetch_pages(session, url, bybit.option_params(coin), bybit.instruments_page,
                                                                 "cursor"))]
        now = now_ms()
        prices = {}
        for coin in rule.underlyings if rule.strike_range_pct else ():
            price = get_parsed(session, f"{rest}{bybit.TICKERS_PATH}", bybit.spot_ticker_params(coin), parse=bybit.last_price)
            if price:
                prices[coin] = price
        chosen, no_price = rule.select(contracts, prices, now)
        for coin in no_price:
            ctx.stats.error("no_spot_price", f"no spot price for {coin}; its chain is skipped this round", parse=False)
        live = {c.symbol for c in contracts if c.expiry_ms > now}
        return sorted(set(chosen) | set(ctx.accept_listed(explicit, live, "live Bybit option (unknown, expired or not trading)")))

    def connections(symbols: list[str]) -> list[Source]:
        return list(_connections(ctx, bybit.option_streams(svc.url, symbols, ping_interval=svc.ping_interval)))

    return [DiscoveredWsFeed(ctx, discover, connections, svc.discovery_interval)]
