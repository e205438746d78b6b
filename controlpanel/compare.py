"""Cross-exchange comparison: every spot, perpetual and dated-future market of an underlying, side by side.

Cost per request, whatever the number of feeds: two pipelined Redis round trips
(SMEMBERS of every spot and derivative feed's symbol index, then one HMGET per
market plus the USDT/INR source), never KEYS or SCAN. Option feeds are not read.

Rules a reader of the numbers needs:
- Prices of USD, USDT and USDC markets are compared as equal units. INR markets
  are divided by a USDT/INR rate (default: `I-USDT_INR` on `coindcx_spot`, when
  that feed has it); without one they are listed apart, never mixed in.
- `ltp_usd` / `price_usd` are per coin: divided by the market's multiplier
  (1000PEPEUSDT) and, for INR, by the rate. `price` is the LTP, else the
  book's mid, else the mark, else the index (delta_spot's index pairs).
- Funding: `funding_rate` as the feed writes it (a fraction per interval); the
  interval is the hash's `funding_interval_hours`, else the exchange's usual
  one as it declares it (`Exchange.funding_interval_hours`; none for CoinDCX).
  8 h equivalent = rate x 8 / interval; annualised = rate x 8760 / interval.
- Basis (perpetuals and dated futures) = price over a reference spot's price,
  in bps. The reference: the configured spot feed if it lists the underlying,
  else the first spot feed in exchanges.yaml's order (testnets skipped, fresh
  before stale, the same quote first) in the same quote family.
- A row is stale when its hash carries the `stale` marker or its last update
  is older than its feed's `stale_after`. Highlights skip stale and testnet
  rows, and dated futures (they trade at a term premium): the widest LTP
  spread is (high - low) / low in bps, the widest funding differential is the
  highest annualised rate minus the lowest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from workers import registry
from workers.runtime.config import SERVICE_KEYS, Config, ServiceConfig
from workers.runtime.sink import SYMBOL_INDEX

from .markets import DERIVATIVE, FUTURE, INR, PERPETUAL, SPOT, Market, classify, family, feed_kind
from .values import num

HOURS_PER_YEAR = 24 * 365
DEFAULT_USDTINR = ("coindcx_spot", "I-USDT_INR")
USDTINR_ENV = "LTP_COMPARE_USDTINR"      # "<feed>:<SYMBOL>", or "none" to show INR markets apart
REFERENCE_ENV = "LTP_COMPARE_REFERENCE"  # a spot feed id to take basis against first
KIND_ORDER = {SPOT: 0, PERPETUAL: 1, FUTURE: 2}
# exchanges.yaml's default: the staleness of a USDT/INR source that is not a configured feed.
DEFAULT_STALE_AFTER_S: float = SERVICE_KEYS["stale_after"][1]

# HMGET order; every one is a field-contract name.
FIELDS = ("ltp", "mark_price", "index_price", "best_bid", "best_ask", "mid_price", "recv_ts", "stale",
          "funding_rate", "funding_interval_hours", "next_funding_time", "current_funding_rate", "source")
_FIELD_LIST = list(FIELDS)  # redis-py's stubs take a list
_CONVERTED = ("ltp", "mark_price", "index_price", "best_bid", "best_ask", "price")


class CompareError(ValueError):
    """A bad setting or parameter: HTTP `status`, an error code and the allowed values."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(frozen=True)
class CompareSettings:
    """Where the USDT/INR rate comes from and which spot feed basis is taken against.

    `usdtinr`: None = the default source when present; ("", "") = off (INR shown apart).
    """

    usdtinr: tuple[str, str] | None = None
    reference: str | None = None
    origin: str = "default"  # where the values came from: default, env, query

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CompareSettings:
        env = os.environ if env is None else env
        usdtinr, reference = env.get(USDTINR_ENV, "").strip(), env.get(REFERENCE_ENV, "").strip()
        if not usdtinr and not reference:
            return cls()
        return cls(parse_usdtinr(usdtinr) if usdtinr else None, reference or None, "env")

    def with_query(self, args: Mapping[str, str]) -> CompareSettings:
        usdtinr, reference = args.get("usdtinr"), args.get("reference")
        if usdtinr is None and reference is None:
            return self
        return CompareSettings(parse_usdtinr(usdtinr) if usdtinr is not None else self.usdtinr,
                               reference if reference is not None else self.reference, "query")

    def check(self, config: Config) -> None:
        """Raise CompareError (400) for a source or reference that names no configured feed of the right kind."""
        spot_feeds = [s for s, svc in config.services.items() if feed_kind(s) == SPOT]
        if self.reference is not None and self.reference not in spot_feeds:
            raise CompareError(400, "bad_reference", f"reference {self.reference[:64]!r} is not a configured spot feed",
                               allowed=spot_feeds)
        if self.usdtinr and self.usdtinr[0] and self.usdtinr[0] not in config.services:
            raise CompareError(400, "bad_usdtinr", f"usdtinr feed {self.usdtinr[0][:64]!r} is not configured",
                               allowed=[f"{s}:<SYMBOL>" for s in config.services] + ["none"])


def parse_usdtinr(value: str) -> tuple[str, str]:
    """`<feed>:<SYMBOL>` -> (feed, symbol); `none` (or empty) -> ("", ""), meaning no conversion."""
    if value.strip().lower() in ("", "none", "off"):
        return ("", "")
    feed, sep, symbol = value.strip().partition(":")
    if not sep or not feed or not symbol:
        raise CompareError(400, "bad_usdtinr", f"usdtinr must be <feed>:<SYMBOL> or none, got {value[:64]!r}",
                           allowed=["<feed>:<SYMBOL>", "none"], example="coindcx_spot:I-USDT_INR")
    return (feed, symbol)


# -- numbers -----------------------------------------------------------------------------------


def normalise_funding(rate: float | None, interval_hours: float | None) -> tuple[float | None, float | None]:
    """(8 h equivalent, annualised) of a rate per `interval_hours`: rate x 8 / h and rate x 8760 / h."""
    if rate is None or not interval_hours or interval_hours <= 0:
        return None, None
    return rate * 8 / interval_hours, rate * HOURS_PER_YEAR / interval_hours


def funding_interval(exchange: str, field: str | None) -> tuple[float | None, str | None]:
    """(hours, where from): the hash's `funding_interval_hours`, else the exchange's usual interval."""
    hours = num(field)
    if hours is not None and hours > 0:
        return hours, "field"
    default = registry.exchange(exchange).funding_interval_hours if exchange in registry.EXCHANGES else None
    return (default, "default") if default else (None, None)


def funding(exchange: str, values: Mapping[str, str | None]) -> dict[str, Any]:
    rate = num(values.get("funding_rate"))
    hours, source = funding_interval(exchange, values.get("funding_interval_hours"))
    rate_8h, annual = normalise_funding(rate, hours)
    out: dict[str, Any] = {"rate": rate, "interval_hours": hours, "interval_source": source, "rate_8h": rate_8h,
                           "annualised": annual, "next_funding_time": values.get("next_funding_time") or None}
    current = num(values.get("current_funding_rate"))
    if current is not None:
        out["current_rate"] = current  # CoinDCX: the last settled rate, beside the estimated next one
    return out


def spread_bps(bid: float | None, ask: float | None) -> float | None:
    if bid is None or ask is None or bid <= 0 or ask <= 0:
        return None
    return (ask - bid) / ((ask + bid) / 2) * 1e4


def convert_inr(values: Mapping[str, float | None], rate: float) -> dict[str, float | None]:
    """INR prices in USDT at `rate` INR per USDT."""
    return {k: (v / rate if v is not None else None) for k, v in values.items()}


def bps(value: float, against: float) -> float:
    return (value - against) / against * 1e4


def mid(mid_price: float | None, bid: float | None, ask: float | None) -> float | None:
    """The hash's `mid_price`, else the middle of a two-sided book."""
    if mid_price:
        return mid_price
    return (bid + ask) / 2 if bid and ask and bid > 0 and ask > 0 else None


def data_age(recv_ts_ms: float | None, now: float) -> float | None:
    """Seconds since a key's `recv_ts` (to the millisecond); None without one."""
    return round(now - recv_ts_ms / 1000, 3) if recv_ts_ms is not None else None


def is_stale(marker: str | None, age: float | None, stale_after: float) -> bool:
    """The hash carries the `stale` marker, or it has no update within its feed's `stale_after`."""
    return marker is not None or age is None or age > stale_after


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """A market found in a symbol index: the feed that writes it and what the symbol means."""

    svc: ServiceConfig
    symbol: str
    market: Market

    @property
    def testnet(self) -> bool:
        return "testnet" in self.svc.endpoint


def _price(values: Mapping[str, float | None], book_mid: float | None) -> tuple[float | None, str | None]:
    for name, value in (("ltp", values["ltp"]), ("mid", book_mid), ("mark_price", values["mark_price"]),
                        ("index_price", values["index_price"])):
        if value is not None and value > 0:
            return value, name
    return None, None


def build_row(item: Listed, raw: Mapping[str, str | None], now: float) -> dict[str, Any] | None:
    """One market's row (numbers as floats), or None when its hash holds nothing to show."""
    m = item.market
    prices: dict[str, float | None] = {k: num(raw.get(k)) for k in ("ltp", "mark_price", "index_price", "best_bid", "best_ask")}
    bid, ask = prices["best_bid"], prices["best_ask"]
    price, source = _price(prices, mid(num(raw.get("mid_price")), bid, ask))
    recv_ts = num(raw.get("recv_ts"))
    if price is None and recv_ts is None:
        return None
    age = data_age(recv_ts, now)
    marker = raw.get("stale")
    stale = is_stale(marker, age, item.svc.stale_after)
    row: dict[str, Any] = {
        "feed": item.svc.service_id, "venue": item.svc.exchange, "symbol": item.symbol, "kind": m.kind,
        "quote": m.quote, "family": family(m.quote), "expiry": m.expiry, "multiplier": m.multiplier,
        "testnet": item.testnet, **prices, "spread_bps": spread_bps(bid, ask), "price": price, "price_source": source,
        "age_s": age, "stale": stale,
        "stale_reason": marker if marker is not None else (f"no update for more than {item.svc.stale_after:g} s" if stale else None),
    }
    if raw.get("source"):
        row["source"] = raw["source"]  # delta_spot: spot market or index
    if m.kind == PERPETUAL:
        row["funding"] = funding(item.svc.exchange, raw)
    return row


def _usd(row: dict[str, Any], fx_rate: float | None) -> None:
    """Per-coin USD-family values for comparisons (`ltp_usd`, `price_usd`), converting INR at `fx_rate`."""
    div = float(row["multiplier"])
    values = {k: row[k] for k in _CONVERTED}
    if row["quote"] == INR and fx_rate:
        converted = convert_inr(values, fx_rate)
        row["converted"] = {"quote": "USDT", "rate": fx_rate, **converted}
        values = converted
    row["ltp_usd"] = values["ltp"] / div if values["ltp"] is not None else None
    row["price_usd"] = values["price"] / div if values["price"] is not None else None


def _per_coin(row: dict[str, Any]) -> float | None:
    """The price basis is taken on: USD-family per coin, else the row's own quote per coin (an INR pair against INR)."""
    if row["family"] == "USD":
        return row.get("price_usd")
    return row["price"] / row["multiplier"] if row["price"] else None


def _reference(rows: Sequence[dict[str, Any]], target: dict[str, Any], preferred: str | None,
               order: Mapping[str, int]) -> dict[str, Any] | None:
    candidates = [r for r in rows if r["kind"] == SPOT and r["family"] == target["family"] and _per_coin(r) and not r["testnet"]]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r["feed"] != preferred, r["stale"], order[r["feed"]],
                                          r["quote"] != target["quote"], r["symbol"]))


def _basis(rows: list[dict[str, Any]], preferred: str | None, order: Mapping[str, int]) -> None:
    for row in rows:
        if row["kind"] == SPOT:
            continue  # spot rows are what basis is taken against
        ref = _reference(rows, row, preferred, order)
        value = _per_coin(row)
        ref_value = _per_coin(ref) if ref is not None else None
        if ref is None or not value or not ref_value:
            row["basis"] = None
            continue
        row["basis"] = {"bps": bps(value, ref_value), "reference": {"feed": ref["feed"], "symbol": ref["symbol"],
                                                                    "price": ref_value, "stale": ref["stale"]}}


def _ends(rows: Iterable[dict[str, Any]], value: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    ranked = sorted(rows, key=value)
    if len(ranked) < 2 or len({r["feed"] + ":" + r["symbol"] for r in ranked}) < 2:
        return None
    return ranked[-1], ranked[0]


def _who(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"feed": row["feed"], "venue": row["venue"], "symbol": row["symbol"], "kind": row["kind"], **extra}


def highlights(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Widest LTP spread (bps) and widest annualised funding differential among fresh, comparable rows."""
    live = [r for r in rows if not r["stale"] and not r["testnet"] and r["kind"] != FUTURE]
    out: dict[str, Any] = {"ltp_spread": None, "funding_diff": None}
    ends = _ends([r for r in live if r.get("ltp_usd")], lambda r: r["ltp_usd"])
    if ends:
        hi, lo = ends
        out["ltp_spread"] = {"bps": bps(hi["ltp_usd"], lo["ltp_usd"]), "high": _who(hi, ltp_usd=hi["ltp_usd"]),
                             "low": _who(lo, ltp_usd=lo["ltp_usd"])}
    funded = [r for r in live if r["kind"] == PERPETUAL and r["funding"]["annualised"] is not None]
    ends = _ends(funded, lambda r: r["funding"]["annualised"])
    if ends:
        hi, lo = ends
        out["funding_diff"] = {"annualised": hi["funding"]["annualised"] - lo["funding"]["annualised"],
                               "high": _who(hi, annualised=hi["funding"]["annualised"]),
                               "low": _who(lo, annualised=lo["funding"]["annualised"])}
    return out


def build_underlying(name: str, rows: list[dict[str, Any]], fx: dict[str, Any], reference: str | None,
                     order: Mapping[str, int]) -> dict[str, Any]:
    """One underlying: comparable rows (USD family and converted INR), rows shown apart, basis, highlights."""
    comparable, apart = [], []
    rate = fx["rate"] if fx["available"] else None
    for row in sorted(rows, key=lambda r: (KIND_ORDER[r["kind"]], order[r["feed"]], r["expiry"] or "", r["symbol"])):
        if row["family"] == "USD" or (row["quote"] == INR and rate):
            _usd(row, rate)
            comparable.append(row)
        else:
            row["reason"] = (f"no USDT/INR rate: {fx['reason']}" if row["quote"] == INR
                             else f"quote {row['quote']} is not compared with USD, USDT or USDC")
            apart.append(row)
    _basis(comparable, reference, order)
    _basis(apart, reference, order)  # an INR perpetual still has a basis against an INR spot
    return {"underlying": name, "rows": comparable, "apart": apart, "highlights": highlights(comparable)}


def fx_status(settings: CompareSettings, listed: Mapping[str, set[str]], raw: Mapping[str, str | None] | None,
              config: Config, now: float) -> dict[str, Any]:
    """The USDT/INR rate in use (INR per USDT), where it comes from, or why there is none."""
    configured = settings.usdtinr is not None
    feed, symbol = settings.usdtinr if settings.usdtinr is not None else DEFAULT_USDTINR
    out: dict[str, Any] = {"pair": "USDT/INR", "feed": feed or None, "symbol": symbol or None,
                           "origin": settings.origin if configured else "default", "rate": None, "rate_source": None,
                           "age_s": None, "stale": None, "available": False, "reason": None}
    if not feed:
        out["reason"] = "conversion switched off"
        return out
    if not configured and symbol not in listed.get(feed, set()):
        out["reason"] = f"{feed} has no {symbol}" if feed in config.services else f"{feed} is not configured"
        return out
    values = {k: num((raw or {}).get(k)) for k in ("ltp", "best_bid", "best_ask", "mid_price", "recv_ts")}
    for name, value in (("ltp", values["ltp"]), ("mid", mid(values["mid_price"], values["best_bid"], values["best_ask"]))):
        if value is not None and value > 0:
            out["rate"], out["rate_source"] = value, name
            break
    if out["rate"] is None:
        out["reason"] = f"no price in {feed}:{symbol} yet"
        return out
    stale_after = config.services[feed].stale_after if feed in config.services else DEFAULT_STALE_AFTER_S
    out["age_s"] = data_age(values["recv_ts"], now)
    out["stale"] = is_stale((raw or {}).get("stale"), out["age_s"], stale_after)
    out["available"] = True
    return out


# -- Redis -------------------------------------------------------------------------------------


def compared_feeds(config: Config) -> list[ServiceConfig]:
    """Configured spot and derivative feeds (options excluded), in exchanges.yaml's order."""
    return [svc for sid, svc in config.services.items() if feed_kind(sid) in (SPOT, DERIVATIVE)]


def read_indexes(client: redis.Redis, feeds: Sequence[ServiceConfig]) -> dict[str, set[str]]:
    """Round trip 1: every compared feed's symbol index."""
    pipe = client.pipeline(transaction=False)
    for svc in feeds:
        pipe.smembers(SYMBOL_INDEX.format(prefix=svc.redis_prefix))
    return {svc.service_id: set(members) for svc, members in zip(feeds, pipe.execute(), strict=True)}


def list_markets(feeds: Sequence[ServiceConfig], indexes: Mapping[str, set[str]]) -> list[Listed]:
    out = []
    for svc in feeds:
        for symbol in sorted(indexes.get(svc.service_id, ())):
            market = classify(svc.service_id, symbol)
            if market is not None:
                out.append(Listed(svc, symbol, market))
    return out


def compare(client: redis.Redis, config: Config, settings: CompareSettings, only: str | None = None) -> dict[str, Any]:
    """The comparison of every underlying (or of `only`); CompareError 404 for an underlying no feed lists."""
    settings.check(config)
    feeds = compared_feeds(config)
    indexes = read_indexes(client, feeds)
    markets = list_markets(feeds, indexes)
    if only is not None:
        names = {m.market.underlying for m in markets}
        # Exact first (Hyperliquid names may be mixed case), then case-insensitive: /api/compare/btc works.
        wanted = only if only in names else next((n for n in sorted(names) if n.upper() == only.upper()), only)
        chosen = [m for m in markets if m.market.underlying == wanted]
        if not chosen:
            known = sorted({m.market.underlying for m in markets})
            raise CompareError(404, "unknown_underlying", f"no compared feed lists underlying {only[:32]!r}",
                               valid_underlyings=known)
        markets = chosen
    fx_feed, fx_symbol = settings.usdtinr if settings.usdtinr is not None else DEFAULT_USDTINR
    fx_svc = config.services.get(fx_feed) if fx_feed else None
    pipe = client.pipeline(transaction=False)  # round trip 2: every market's fields and the rate's
    for m in markets:
        pipe.hmget(f"{m.svc.redis_prefix}:{m.symbol}", _FIELD_LIST)
    if fx_svc is not None:
        pipe.hmget(f"{fx_svc.redis_prefix}:{fx_symbol}", _FIELD_LIST)
    replies = pipe.execute()
    now = time.time()
    fx_raw = dict(zip(FIELDS, replies[-1], strict=True)) if fx_svc is not None else None
    fx = fx_status(settings, indexes, fx_raw, config, now)
    order = {svc.service_id: i for i, svc in enumerate(feeds)}
    by_underlying: dict[str, list[dict[str, Any]]] = {}
    for m, values in zip(markets, replies, strict=False):  # not strict: the rate's reply comes last
        row = build_row(m, dict(zip(FIELDS, values, strict=True)), now)
        if row is not None:
            by_underlying.setdefault(m.market.underlying, []).append(row)
    underlyings = [build_underlying(name, rows, fx, settings.reference, order) for name, rows in by_underlying.items()]
    underlyings.sort(key=lambda u: (-len({r["feed"] for r in u["rows"] + u["apart"]}), u["underlying"]))
    head = {"time": now, "fx": fx,
            "reference": {"feed": settings.reference, "origin": settings.origin if settings.reference else "default"}}
    if only is not None:
        found = underlyings[0] if underlyings else {"underlying": markets[0].market.underlying, "rows": [], "apart": [],
                                                    "highlights": highlights([])}
        return {**head, **found}
    return {**head, "underlyings": underlyings}
