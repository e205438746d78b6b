"""Delta feeds: spot (market or index), futures (ticker + trades + funding + REST volume), options (chain rule).

Every market followed on `ticker` (24 h stats, mark, quotes, Greeks; pushed every 5 s) is
also followed on `trades`, the only source of `ltp`; index pairs have no trades.

Each feed re-discovers over REST every `discovery_interval`: which symbols are live (a
configured one that is not is reported once, never subscribed) and, for options, the
chain the rule picks; the connections are rebuilt when the set changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from workers.exchanges import delta
from workers.runtime.chain import ChainRule
from workers.runtime.discovery import DiscoveredWsFeed
from workers.runtime.feed import FeedContext, Source
from workers.runtime.model import ParseError
from workers.runtime.paging import fetch_pages
from workers.runtime.poll import get_parsed
from workers.runtime.sharding import shard
from workers.runtime.timefmt import now_ms

if TYPE_CHECKING:
    from workers.runtime.poll import RestSession

# What one discovery round decided: channel -> exchange symbols, exchange symbol -> Redis key.
Plan = tuple[dict[str, list[str]], dict[str, str]]


def _products(session: RestSession, rest: str, contract_types: Sequence[str]) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    rows = fetch_pages(session, f"{rest}{delta.PRODUCTS_PATH}", delta.products_params(contract_types), delta.products_page, "after")
    return [p for p in rows if delta.is_live(p, now)]


def _tickers(session: RestSession, rest: str, contract_types: Sequence[str], underlying: str | None = None) -> list[dict]:
    url = f"{rest}{delta.TICKERS_PATH}"
    return get_parsed(session, url, delta.tickers_params(contract_types, underlying),
                      parse=lambda body: delta.rows_of(body, delta.TICKERS_PATH))


def _feed(ctx: FeedContext, kind: str, plan_of: Callable[[RestSession, str], Plan]) -> list[Source]:
    svc = ctx.service
    rest = svc.rest_url
    plan: Plan = ({}, {})

    def discover(session: RestSession) -> list[str]:
        nonlocal plan
        plan = plan_of(session, rest)
        return sorted(set(plan[1].values()))

    def make_connections(_symbols: list[str]) -> list[Source]:
        channels, keys = plan
        others = {k: v for k, v in channels.items() if k != "ticker"}
        streams = []
        for i, chunk in enumerate(shard(channels.get("ticker", []), lambda s: (s,), max_topics=delta.SYMBOLS_PER_CONNECTION)):
            wanted = {"ticker": chunk}
            for name, syms in others.items():  # trades and funding follow their ticker; the index rides on the first socket
                wanted[name] = [s for s in syms if s in chunk] if name in ("trades", "funding") else (syms if i == 0 else [])
            if any(wanted.values()):
                streams.append(delta.DeltaStream(f"{kind}#{i}", svc.url, kind, wanted, keys=keys))
        return [ctx.connection(s) for s in streams]

    return [DiscoveredWsFeed(ctx, discover, make_connections, svc.discovery_interval)]


def futures(ctx: FeedContext) -> list[Source]:
    """`ticker` + `trades` + `funding_rate`; REST tickers add the 24 h volume the compact ticker lacks."""
    seeded: set[str] = set()

    def plan(session: RestSession, rest: str) -> Plan:
        products = {p["symbol"]: p for p in _products(session, rest, delta.FUTURE_TYPES)}
        symbols = ctx.accept_listed(ctx.service.symbols, set(products), "live future on Delta (unknown or expired)")
        perps = [s for s in symbols if products[s].get("contract_type") == "perpetual_futures"]
        _seed_from_rest(ctx, session, rest, {s: products[s] for s in symbols}, seeded)
        return {"ticker": symbols, "trades": symbols, "funding": perps}, {s: s for s in symbols}

    return _feed(ctx, "futures", plan)


def _seed_from_rest(ctx: FeedContext, session: RestSession, rest: str, products: dict[str, dict], seeded: set[str]) -> None:
    """A new symbol's first state from REST tickers (`ltp` from the last trade's `close`, until `trades`
    brings a newer one); afterwards only the 24 h volume, which the socket lacks."""
    recv_ms = now_ms()
    for row in _tickers(session, rest, delta.FUTURE_TYPES):
        sym = row.get("symbol")
        if sym not in products:
            continue
        try:
            fields = delta.rest_ticker_fields(row, "futures")
            ts_ms = delta.epoch_ms(row.get("timestamp"), "timestamp")
        except ParseError as exc:
            ctx.stats.error(exc.kind, f"REST ticker {sym}: {exc.detail}")
            continue
        if sym in seeded:
            fields = {k: v for k, v in fields.items() if k == "volume_24h"}
        else:
            fields["original_symbol"] = sym
            if products[sym].get("contract_type") == "perpetual_futures":
                fields["funding_interval_hours"] = delta.funding_interval_hours(products[sym])
            seeded.add(sym)
        if fields:
            ctx.sink.put(sym, fields, min(ts_ms, recv_ms), recv_ms)


def options(ctx: FeedContext) -> list[Source]:
    """Explicit symbols (checked live) plus the chain the selection rule picks."""
    svc = ctx.service
    rule = ChainRule.from_config(svc.selection, f"{svc.path}.selection")

    def plan(session: RestSession, rest: str) -> Plan:
        products = _products(session, rest, delta.OPTION_TYPES)
        symbols = set(ctx.accept_listed(svc.symbols, {p["symbol"] for p in products}, "live option on Delta (unknown or expired)"))
        if rule.underlyings:
            prices = {}
            for und in rule.underlyings if rule.strike_range_pct else ():
                price = delta.index_price(_tickers(session, rest, delta.FUTURE_TYPES, und))
                if price:
                    prices[und] = price
            chosen, no_price = rule.select(delta.option_contracts(products), prices, now_ms())
            for und in no_price:
                ctx.stats.error("no_spot_price", f"no index price for {und}; its chain is skipped this round", parse=False)
            symbols.update(chosen)
        ordered = sorted(symbols)
        return {"ticker": ordered, "trades": ordered}, {s: s for s in ordered}

    return _feed(ctx, "options", plan)


def spot(ctx: FeedContext) -> list[Source]:
    """A live `spot` product of that name if Delta lists one, else the pair's spot index."""

    def plan(session: RestSession, rest: str) -> Plan:
        markets = {p["symbol"] for p in _products(session, rest, ("spot",))}
        indices = get_parsed(session, f"{rest}{delta.INDICES_PATH}", parse=delta.index_symbols)
        tickers, index, keys = [], [], {}
        for sym in ctx.service.symbols:
            if sym in markets:
                tickers.append(sym)
                keys[sym] = sym
            elif delta.index_symbol(sym) in indices:
                index.append(delta.index_symbol(sym))
                keys[delta.index_symbol(sym)] = sym
            else:
                ctx.stats.reject(sym, f"neither a live spot market nor an index {delta.index_symbol(sym)} on Delta; not subscribed")
                continue
            ctx.stats.rejected.pop(sym, None)
        return {"ticker": tickers, "trades": tickers, "index": index}, keys

    return _feed(ctx, "spot", plan)
