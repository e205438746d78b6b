"""Hyperliquid feeds: perpetuals and spot pairs over one WebSocket each, names resolved over REST.

An unknown coin in a subscription makes the server close the whole socket, so nothing is
subscribed that the live `meta` / `spotMeta` does not list: names are resolved at start and
every `discovery_interval`, unknown or delisted ones are reported once and skipped, and later
listings are picked up without a restart. Limits are per IP and shared by both feeds: each
keeps to hyperliquid.FEED_SUBSCRIPTION_SHARE subscriptions on one connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.exchanges import hyperliquid
from workers.runtime.config import ConfigError
from workers.runtime.discovery import DiscoveredWsFeed
from workers.runtime.feed import FeedContext, Source
from workers.runtime.poll import post_parsed

if TYPE_CHECKING:
    from workers.runtime.poll import RestSession


def _feed(ctx: FeedContext, kind: str) -> list[Source]:
    svc = ctx.service
    problem = hyperliquid.budget_problem(len(svc.symbols))
    if problem:
        raise ConfigError(f"{svc.path}.symbols", problem, f"at most {hyperliquid.max_coins()} symbols per feed")
    info = hyperliquid.info_url(svc.rest_url)
    keys: dict[str, str] = {}  # exchange coin ('BTC', '@107') -> Redis symbol ('BTC', 'HYPE/USDC')

    def discover(session: RestSession) -> list[str]:
        nonlocal keys
        if kind == hyperliquid.PERP:
            coins, refused = post_parsed(session, info, hyperliquid.meta_request(),
                                         parse=lambda reply: hyperliquid.resolve_perp(reply, svc.symbols))
            resolved = {coin: coin for coin in coins}
        else:
            names, refused = post_parsed(session, info, hyperliquid.spot_meta_request(),
                                         parse=lambda reply: hyperliquid.resolve_spot(reply, svc.symbols))
            resolved = {coin: name for name, coin in names.items()}
        for name, reason in refused.items():
            ctx.stats.reject(name, f"{reason}; not subscribed")
        for name in resolved.values():
            ctx.stats.rejected.pop(name, None)
        keys = resolved
        return sorted(resolved.values())

    def connections(_symbols: list[str]) -> list[Source]:
        if not keys:
            return []
        stream = hyperliquid.HyperliquidStream(f"{kind}#0", svc.url, kind, keys, ping_interval=svc.ping_interval)
        return [ctx.connection(stream)]

    return [DiscoveredWsFeed(ctx, discover, connections, svc.discovery_interval)]


def perpetual(ctx: FeedContext) -> list[Source]:
    return _feed(ctx, hyperliquid.PERP)


def spot(ctx: FeedContext) -> list[Source]:
    return _feed(ctx, hyperliquid.SPOT)
