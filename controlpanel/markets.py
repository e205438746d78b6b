"""Which market a feed's symbol is: underlying, quote, kind (spot / perpetual / future), expiry, multiplier.

The one place that maps every exchange's symbols to a common underlying, so the
comparison can put BTCUSDT, BTCUSD, B-BTC_USDT, I-BTC_INR and BTC side by side.
Options are never mapped (`classify` answers None): the chain view reads them.

Rules, per exchange (symbols as the feeds write them in `<prefix>:<SYMBOL>`):

- **bybit** spot and linear: `<BASE><QUOTE>` with the quote a known suffix
  (`BTCUSDT` → BTC/USDT); linear `<BASE>PERP` is the USDC perpetual (`BTCPERP`
  → BTC/USDC); a `-DMMMYY` suffix is a dated future (`BTCUSDT-26DEC25` →
  BTC/USDT, `BTC-26DEC25` → BTC/USDC, Bybit's USDC futures); option names
  (`BTC-26DEC25-100000-C`) are refused.
- **delta**: `<BASE><QUOTE>` (`BTCUSD` perpetual, or delta_spot's index of that
  pair) or `<BASE>_<QUOTE>` (`BTC_USDT` spot); a `_DDMonYY` / `_DDMMYY`
  suffix is a dated future (`BTCUSD_27Jun25`); `C-…` / `P-…` options are refused.
- **coindcx**: `<ECODE>-<BASE>_<QUOTE>` (`B-BTC_USDT`, `I-BTC_INR`): the
  venue-code prefix is dropped; every futures pair is a perpetual.
- **hyperliquid**: perpetuals are the coin (`BTC`), quoted in USDC; spot is
  `<BASE>/<QUOTE>` (`HYPE/USDC`), with Hyperliquid's bridged tokens named as
  their coin (`UBTC` → BTC, `UETH` → ETH, `USOL` → SOL); unresolved ids (`@107`) are refused.

Everywhere: a leading power of ten of at least 1000 (`1000PEPEUSDT`,
`B-1000SHIB_USDT`) or Hyperliquid's `k` (`kPEPE`) is a multiplier: the
underlying is PEPE and one unit of the market is 1000 coins, so prices are
divided by it before they are compared.

A feed's kind comes from its builder in `workers/registry.py` (`…:spot` is
spot, `…:options` options, `…:linear`/`…:futures`/`…:perpetual`
derivatives), so a feed added there is classified without an edit here.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import NamedTuple

from workers.registry import FEEDS

SPOT, PERPETUAL, FUTURE = "spot", "perpetual", "future"
DERIVATIVE, OPTION = "derivative", "option"
_BUILDER_KIND = {"spot": SPOT, "linear": DERIVATIVE, "futures": DERIVATIVE, "perpetual": DERIVATIVE, "options": OPTION}

# Quote suffixes of concatenated symbols, tried in this order: a quote that ends
# another (USD in FDUSD) comes after it.
QUOTES = ("FDUSD", "USDT", "USDC", "USDE", "USD", "DAI", "EUR", "BRL", "TRY", "PLN", "INR", "BTC", "ETH")
# USD, USDT and USDC prices are compared directly; INR only through a USDT/INR rate.
USD_FAMILY = frozenset({"USD", "USDT", "USDC"})
INR = "INR"
HYPERLIQUID_PERP_QUOTE = "USDC"  # Hyperliquid perpetuals are margined and settled in USDC
HYPERLIQUID_ALIASES = {"UBTC": "BTC", "UETH": "ETH", "USOL": "SOL"}  # Unit-bridged spot tokens

_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_MULTIPLIER = re.compile(r"^(1000+)(?=[A-Z])")
_BYBIT_DATED = re.compile(r"^([A-Z0-9]+)-(\d{1,2})([A-Z]{3})(\d{2})$")
_DELTA_DATED = re.compile(r"^([A-Z0-9]+)_(\d{2})([A-Za-z]{3}|\d{2})(\d{2})$")


class Market(NamedTuple):
    underlying: str
    quote: str
    kind: str               # spot | perpetual | future
    expiry: str | None = None  # ISO date of a dated future
    multiplier: int = 1      # coins per unit of price: 1000 for 1000PEPEUSDT


def feed_kind(feed_id: str) -> str | None:
    """spot, derivative or option, from the feed's builder in the registry; None for an unknown feed."""
    spec = FEEDS.get(feed_id)
    return _BUILDER_KIND.get(spec.builder.rsplit(":", 1)[-1]) if spec else None


def family(quote: str) -> str:
    """The group a quote compares in: USD for USD/USDT/USDC, else the quote itself."""
    return "USD" if quote in USD_FAMILY else quote


def _date(day: str, month: str, year: str) -> str | None:
    month_no = int(month) if month.isdigit() else _MONTHS.get(month.upper())
    try:
        return dt.date(2000 + int(year), month_no or 0, int(day)).isoformat()
    except ValueError:
        return None


def _split_quote(pair: str) -> tuple[str, str] | None:
    for quote in QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    return None


def _base(base: str) -> tuple[str, int]:
    """(underlying, multiplier) of a base that may carry a 1000-style prefix."""
    m = _MULTIPLIER.match(base)
    if m and len(base) > len(m.group(1)):
        return base[len(m.group(1)):], int(m.group(1))
    return base, 1


def _market(base: str, quote: str, kind: str, expiry: str | None = None) -> Market | None:
    if not base:
        return None
    underlying, mult = _base(base)
    return Market(underlying, quote, kind, expiry, mult)


def _bybit(symbol: str, kind: str) -> Market | None:
    if kind == DERIVATIVE:
        dated = _BYBIT_DATED.match(symbol)
        if dated:
            pre, expiry = dated.group(1), _date(*dated.group(2, 3, 4))
            if expiry is None:
                return None
            split = _split_quote(pre)
            return _market(*(split or (pre, "USDC")), FUTURE, expiry)
        if "-" in symbol:
            return None  # an option name or something unknown
        if symbol.endswith("PERP"):
            return _market(symbol[:-4], "USDC", PERPETUAL)
    elif "-" in symbol:
        return None
    split = _split_quote(symbol)
    return _market(*split, PERPETUAL if kind == DERIVATIVE else SPOT) if split else None


def _delta(symbol: str, kind: str) -> Market | None:
    if symbol[:2] in ("C-", "P-") or symbol.startswith("."):
        return None
    expiry = None
    dated = _DELTA_DATED.match(symbol)
    if dated:
        expiry = _date(*dated.group(2, 3, 4))
        if expiry is None:
            return None
        symbol = dated.group(1)
    if "_" in symbol:
        base, _, quote = symbol.partition("_")
        split: tuple[str, str] | None = (base, quote) if quote else None
    else:
        split = _split_quote(symbol)
    if split is None:
        return None
    if kind == SPOT:
        return None if expiry else _market(*split, SPOT)
    return _market(*split, FUTURE if expiry else PERPETUAL, expiry)


def _coindcx(symbol: str, kind: str) -> Market | None:
    _ecode, dash, pair = symbol.partition("-")
    base, underscore, quote = pair.partition("_")
    if not dash or not underscore or not quote:
        return None
    return _market(base, quote, SPOT if kind == SPOT else PERPETUAL)


def _hyperliquid(symbol: str, kind: str) -> Market | None:
    if symbol.startswith("@"):
        return None
    if kind == SPOT:
        base, slash, quote = symbol.partition("/")
        if not slash or not quote:
            return None
        return _market(HYPERLIQUID_ALIASES.get(base, base), quote, SPOT)
    if "/" in symbol or "-" in symbol:
        return None
    if symbol.startswith("k") and symbol[1:2].isupper():  # kPEPE: 1000 PEPE
        return Market(symbol[1:], HYPERLIQUID_PERP_QUOTE, PERPETUAL, None, 1000)
    return _market(symbol, HYPERLIQUID_PERP_QUOTE, PERPETUAL)


_BY_EXCHANGE = {"bybit": _bybit, "delta": _delta, "coindcx": _coindcx, "hyperliquid": _hyperliquid}


@lru_cache(maxsize=65536)
def classify(feed_id: str, symbol: str) -> Market | None:
    """The market `symbol` is on feed `feed_id`; None for options, unknown feeds and names no rule reads."""
    kind = feed_kind(feed_id)
    parse = _BY_EXCHANGE.get(FEEDS[feed_id].exchange) if kind in (SPOT, DERIVATIVE) else None
    return parse(symbol, kind) if parse and kind else None
