"""CoinDCX feeds: futures over REST polling (LTP, mark, funding), spot trades over socket.io plus the REST ticker.

Both feeds are separate processes sharing CoinDCX's per-IP budget (16 requests/s, 960/min);
each keeps to REQUESTS_PER_S_PER_FEED: one price or ticker request per `poll_interval`,
instrument checks every `discovery_interval`, detail sweeps spaced at
coindcx.DETAILS_SWEEP_MAX_PER_S.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from workers.exchanges import coindcx
from workers.runtime.backoff import Backoff
from workers.runtime.config import ConfigError
from workers.runtime.discovery import DiscoveredWsFeed
from workers.runtime.feed import FeedContext, Source
from workers.runtime.model import ParseError
from workers.runtime.poll import RestPoller, get_json, get_parsed
from workers.runtime.sharding import shard

if TYPE_CHECKING:
    from workers.runtime.poll import RestSession

REQUESTS_PER_S_PER_FEED = 8   # half of the per-IP 16/s: the two feeds never exceed it together
CHANNELS_PER_SOCKET = 300     # observed to work on one socket [U]; no documented cap
# Fresh data within 10 s of the exchange answering normally again: retries at most 8 s apart.
REST_BACKOFF_MAX_S = 8.0


def _report(ctx: FeedContext, result: coindcx.PollResult) -> None:
    for err in result.errors:
        ctx.stats.error(err.kind, err.detail)


def _poll_interval(ctx: FeedContext) -> float:
    if ctx.service.poll_interval < 1 / REQUESTS_PER_S_PER_FEED:
        raise ConfigError(f"{ctx.service.path}.poll_interval", f"{ctx.service.poll_interval:g} s exceeds CoinDCX's rate budget",
                          f">= {1 / REQUESTS_PER_S_PER_FEED:g} s ({REQUESTS_PER_S_PER_FEED} requests/s per feed)")
    return ctx.service.poll_interval


def futures(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    api, public = svc.rest_url, svc.url.rstrip("/")
    interval = _poll_interval(ctx)
    prices = coindcx.FuturesPrices(svc.symbols)
    margins = sorted({p.rsplit("_", 1)[-1] for p in svc.symbols if "_" in p}) or ["USDT"]
    active: set[str] = set()
    described: set[str] = set()
    checked_at = -1e18

    def check(session: RestSession) -> None:
        """Which configured instruments are live, and each new one's funding interval (details, throttled)."""
        nonlocal active, checked_at
        listed: set[str] = set()
        for margin in margins:
            listed |= get_parsed(session, f"{api}{coindcx.ACTIVE_INSTRUMENTS_PATH}", coindcx.active_instruments_params(margin),
                                 parse=coindcx.parse_active_instruments)
        live = set(ctx.accept_listed(svc.symbols, listed, "active CoinDCX futures instrument"))
        for pair in sorted(live - described):
            time.sleep(1 / coindcx.DETAILS_SWEEP_MAX_PER_S)
            margin = pair.rsplit("_", 1)[-1]
            try:
                details = coindcx.parse_instrument_details(
                    get_json(session, f"{api}{coindcx.INSTRUMENT_DETAILS_PATH}", coindcx.instrument_details_params(pair, margin)), pair)
            except ParseError as exc:
                if exc.kind == coindcx.WRONG_PAIR:
                    ctx.stats.reject(pair, exc.detail)
                    live.discard(pair)
                    continue
                ctx.stats.error(exc.kind, f"details of {pair}: {exc.detail}")
                continue
            prices.set_funding_interval(pair, details.funding_interval_hours)
            described.add(pair)
        gone = sorted(active - live)
        if gone:
            ctx.sink.forget(gone)
        active = live
        ctx.stats.symbols = sorted(live)
        checked_at = time.monotonic()

    def poll(session: RestSession) -> None:
        if time.monotonic() - checked_at >= svc.discovery_interval:
            check(session)
        result = get_parsed(session, f"{public}{coindcx.RT_PRICES_PATH}", parse=prices.parse)
        _report(ctx, result)
        ctx.deliver([u for u in result.updates if u.symbol in active])

    return [RestPoller("futures-rt", poll, interval, ctx.stats, backoff=Backoff(1.0, REST_BACKOFF_MAX_S))]


def spot(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    api = svc.rest_url
    interval = _poll_interval(ctx)
    ticker = coindcx.SpotTicker({})
    streams: list[coindcx.SpotTradesStream] = []

    def discover(session: RestSession) -> list[str]:
        markets = get_parsed(session, f"{api}{coindcx.MARKETS_DETAILS_PATH}", parse=coindcx.parse_markets_details)
        live = {pair for pair, m in markets.items() if m.status in ("active", "")}
        pairs = ctx.accept_listed(svc.symbols, live, "active CoinDCX spot pair")
        ticker.markets = {markets[p].market: p for p in pairs}
        return pairs

    def connections(pairs: list[str]) -> list[Source]:
        streams[:] = [coindcx.SpotTradesStream(f"spot#{i}", svc.url, chunk)
                      for i, chunk in enumerate(shard(pairs, lambda p: (p,), max_topics=CHANNELS_PER_SOCKET))]
        return [ctx.connection(s) for s in streams]

    def poll_ticker(session: RestSession) -> None:
        if not ticker.markets:
            return  # discovery has not run yet
        traded = set().union(*(s.traded for s in streams)) if streams else set()
        result = get_parsed(session, f"{api}{coindcx.SPOT_TICKER_PATH}",
                            parse=lambda body: ticker.parse(body, ltp_for=set(ticker.markets.values()) - traded))
        _report(ctx, result)
        ctx.deliver(result.updates)

    return [DiscoveredWsFeed(ctx, discover, connections, svc.discovery_interval),
            RestPoller("spot-ticker", poll_ticker, interval, ctx.stats, backoff=Backoff(1.0, REST_BACKOFF_MAX_S))]
