"""Option chains from the option feeds' hashes: calls | strike | puts for one underlying and expiry.

At most three pipelined Redis round trips per request: SMEMBERS of the feed's
symbol index, five fields of each contract not seen before (enough to list
underlyings and expiries and choose the chain; they never change for a symbol,
so the panel keeps them), then every field of the chosen chain's contracts only. Underlyings and expiries come from the
hashes' `underlying` and `expiry` (ISO date) fields, never from parsing
symbols. The at-the-money strike is the one nearest the underlying's price:
`underlying_price` (Bybit) else `index_price` (Delta), from the most recently
updated contract of the chain. Bybit lists some strikes once per settle coin;
one settle coin is shown at a time (`settle_coin`, default the most common).

Prices: as the hash has them, except for coin-quoted options (Deribit), whose hashes also carry
`mark_price_usd`, `best_bid_usd`, `best_ask_usd`: the chain then shows those, says so with
`price_unit: "USD"` (None: the feed's own quote, as before) and keeps the coin mark in `mark_coin`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from workers.runtime.config import Config
from workers.runtime.sink import SYMBOL_INDEX

from .compare import CompareError, data_age, is_stale
from .markets import OPTION, feed_kind
from .values import num

FIELDS = ("option_type", "strike_price", "underlying", "expiry", "settle_coin", "best_bid", "best_ask", "bid_size",
          "ask_size", "mark_price", "ltp", "implied_volatility", "bid_iv", "ask_iv", "delta", "gamma", "vega", "theta",
          "open_interest", "underlying_price", "index_price", "recv_ts", "stale", "mark_price_usd", "best_bid_usd",
          "best_ask_usd")
_FIELD_LIST = list(FIELDS)  # redis-py's stubs take a list
_LIST_FIELDS = ["option_type", "strike_price", "underlying", "expiry", "settle_coin"]  # enough to choose a chain
_SIDE_NUMBERS = {"bid": "best_bid", "ask": "best_ask", "bid_size": "bid_size", "ask_size": "ask_size", "mark": "mark_price",
                 "ltp": "ltp", "iv": "implied_volatility", "bid_iv": "bid_iv", "ask_iv": "ask_iv", "delta": "delta",
                 "gamma": "gamma", "vega": "vega", "theta": "theta", "oi": "open_interest"}
_USD_PRICES = {"bid": "best_bid_usd", "ask": "best_ask_usd", "mark": "mark_price_usd"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def chain_feeds(config: Config) -> list[str]:
    """Configured option feeds (bybit_options, delta_options), in exchanges.yaml's order."""
    return [sid for sid in config.services if feed_kind(sid) == OPTION]


def _listed(symbol: str, raw: Mapping[str, str | None]) -> dict[str, Any] | None:
    """What the chain choice needs of a contract, or None when its hash is not a usable option."""
    kind = (raw.get("option_type") or "").upper()
    strike = num(raw.get("strike_price"))
    if kind not in ("CALL", "PUT") or strike is None or not raw.get("underlying") or not raw.get("expiry"):
        return None
    return {"symbol": symbol, "type": kind, "strike": strike, "underlying": raw["underlying"], "expiry": raw["expiry"],
            "settle_coin": raw.get("settle_coin") or None}


def _contract(symbol: str, raw: Mapping[str, str | None], now: float, stale_after: float) -> dict[str, Any] | None:
    listed = _listed(symbol, raw)
    if listed is None:
        return None
    recv_ts = num(raw.get("recv_ts"))
    age = data_age(recv_ts, now)
    marker = raw.get("stale")
    side: dict[str, Any] = {"symbol": symbol, **{k: num(raw.get(f)) for k, f in _SIDE_NUMBERS.items()}, "age_s": age,
                            "stale": is_stale(marker, age, stale_after), "stale_reason": marker}
    usd = raw.get("mark_price_usd") is not None
    if usd:  # a coin-quoted option: USD prices in the table, the coin mark kept for a tooltip
        side["mark_coin"] = side["mark"]
        side.update({k: num(raw.get(f)) for k, f in _USD_PRICES.items()})
    return {**listed, "side": side, "recv_ts": recv_ts or 0.0, "spot": num(raw.get("underlying_price")),
            "index": num(raw.get("index_price")), "usd": usd}


def _hmget(client: redis.Redis, prefix: str, symbols: Sequence[str], fields: list[str]) -> list[dict[str, str | None]]:
    pipe = client.pipeline(transaction=False)
    for sym in symbols:
        pipe.hmget(f"{prefix}:{sym}", fields)
    return [dict(zip(fields, values, strict=True)) for values in pipe.execute()] if symbols else []


def _underlying_price(contracts: Sequence[dict[str, Any]]) -> tuple[float | None, str | None]:
    for c in sorted(contracts, key=lambda c: -c["recv_ts"]):
        if c["spot"]:
            return c["spot"], "underlying_price"
        if c["index"]:
            return c["index"], "index_price"
    return None, None


def select(feed: str, listed: Sequence[Mapping[str, Any]], underlying: str | None, expiry: str | None,
           settle_coin: str | None) -> dict[str, Any]:
    """Which chain to show (defaults: the first underlying, the nearest expiry, the most common settle coin).

    `symbols`: the contracts of that chain. CompareError 400 for a malformed expiry, 404 for an
    underlying, expiry or settle coin the feed does not list (`allowed` names those it does).
    """
    listing: dict[str, set[str]] = {}
    for c in listed:
        listing.setdefault(c["underlying"], set()).add(c["expiry"])
    underlyings = {u: sorted(e) for u, e in sorted(listing.items())}
    if underlying is None:
        underlying = next(iter(underlyings), None)
    elif underlying not in underlyings:
        underlying = next((u for u in underlyings if u.upper() == underlying.upper()), underlying)
        if underlying not in underlyings:
            raise CompareError(404, "unknown_underlying", f"{feed} lists no underlying {underlying[:32]!r}",
                               allowed=list(underlyings))
    expiries = underlyings.get(underlying or "", [])
    if expiry is not None:
        if not _ISO_DATE.match(expiry) or not _valid_date(expiry):
            raise CompareError(400, "bad_expiry", f"expiry must be an ISO date (YYYY-MM-DD), got {expiry[:32]!r}",
                               allowed=expiries)
        if expiry not in expiries:
            raise CompareError(404, "unknown_expiry", f"{feed} lists no {underlying} expiry {expiry}", allowed=expiries)
    else:
        expiry = expiries[0] if expiries else None
    of_expiry = [c for c in listed if c["underlying"] == underlying and c["expiry"] == expiry]
    coins = Counter(c["settle_coin"] for c in of_expiry if c["settle_coin"])
    if settle_coin is not None:
        if settle_coin not in coins:
            raise CompareError(404, "unknown_settle_coin", f"no {underlying} {expiry} contracts settle in {settle_coin[:16]!r}",
                               allowed=sorted(coins))
    elif coins:
        settle_coin = min(coins, key=lambda k: (-coins[k], k))
    if settle_coin is not None:
        of_expiry = [c for c in of_expiry if c["settle_coin"] == settle_coin]
    return {"feed": feed, "underlying": underlying, "expiry": expiry, "settle_coin": settle_coin,
            "settle_coins": sorted(coins), "underlyings": underlyings, "expiries": expiries,
            "symbols": [c["symbol"] for c in of_expiry]}


def assemble(selection: Mapping[str, Any], contracts: Sequence[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The chosen chain's rows: calls | strike | puts, the ATM strike marked from the underlying's price."""
    now = now or time.time()
    spot, spot_field = _underlying_price(contracts)
    strikes: dict[float, dict[str, Any]] = {}
    for c in contracts:
        row = strikes.setdefault(c["strike"], {"strike": c["strike"], "call": None, "put": None})
        row["call" if c["type"] == "CALL" else "put"] = c["side"]
    rows = [strikes[k] for k in sorted(strikes)]
    atm = min(strikes, key=lambda k: (abs(k - spot), k)) if spot is not None and strikes else None
    for row in rows:
        row["atm"] = row["strike"] == atm
        row["stale"] = any(s is not None and s["stale"] for s in (row["call"], row["put"]))
    expiry = selection["expiry"]
    days = (dt.date.fromisoformat(expiry) - dt.datetime.fromtimestamp(now, dt.UTC).date()).days if expiry else None
    head = {k: v for k, v in selection.items() if k != "symbols"}
    price_unit = "USD" if any(c.get("usd") for c in contracts) else None
    return {**head, "days_to_expiry": days, "underlying_price": spot, "underlying_price_field": spot_field,
            "atm_strike": atm, "price_unit": price_unit, "time": now, "rows": rows}


def build_chain(feed: str, contracts: Sequence[dict[str, Any]], underlying: str | None, expiry: str | None,
                settle_coin: str | None, now: float | None = None) -> dict[str, Any]:
    """select + assemble over contracts already read in full (tests, small feeds)."""
    selection = select(feed, contracts, underlying, expiry, settle_coin)
    chosen = set(selection["symbols"])
    return assemble(selection, [c for c in contracts if c["symbol"] in chosen], now)


def _valid_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


class ListingCache:
    """Each contract's listing fields, per prefix, read once.

    Type, strike, underlying, expiry and settle coin never change for an option symbol, and
    listing a feed's contracts is most of a request's cost (about 15 ms for 640 contracts
    through redis-py, one HMGET each): a request reads them only for symbols it has not seen.
    Symbols that leave the index leave the cache; a hash not yet usable is asked again next time.
    """

    def __init__(self) -> None:
        self._by_prefix: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def listed(self, client: redis.Redis, prefix: str, symbols: Sequence[str]) -> list[dict[str, Any]]:
        with self._lock:
            known = dict(self._by_prefix.get(prefix, {}))
        missing = [s for s in symbols if s not in known]
        for sym, raw in zip(missing, _hmget(client, prefix, missing, _LIST_FIELDS), strict=True):
            if (c := _listed(sym, raw)) is not None:
                known[sym] = c
        current = set(symbols)
        known = {s: c for s, c in known.items() if s in current}
        with self._lock:
            self._by_prefix[prefix] = known
        return [known[s] for s in symbols if s in known]


def chain(client: redis.Redis, config: Config, feed: str, args: Mapping[str, str],
          cache: ListingCache | None = None) -> dict[str, Any]:
    """At most three pipelined round trips: the symbol index, the listing fields of contracts not yet
    in `cache` (all of them without one), every field of the chosen chain's contracts."""
    allowed = chain_feeds(config)
    if feed not in allowed:
        raise CompareError(404, "unknown_feed", f"{feed[:64]!r} is not a configured option feed", allowed=allowed)
    svc = config.services[feed]
    symbols = sorted(client.smembers(SYMBOL_INDEX.format(prefix=svc.redis_prefix)))  # type: ignore[arg-type]
    listed = (cache or ListingCache()).listed(client, svc.redis_prefix, symbols)
    selection = select(feed, listed, args.get("underlying") or None, args.get("expiry") or None, args.get("settle_coin") or None)
    now = time.time()
    chosen = selection["symbols"]
    contracts = [c for sym, raw in zip(chosen, _hmget(client, svc.redis_prefix, chosen, _FIELD_LIST), strict=True)
                 if (c := _contract(sym, raw, now, svc.stale_after)) is not None]
    return assemble(selection, contracts, now)
