"""Which market a symbol is: underlying, quote, kind (spot / perpetual / future), expiry, multiplier.

The pieces every exchange's market rule (its `Exchange.market`) is built from, so the panel's
comparison can put BTCUSDT, BTCUSD, B-BTC_USDT, I-BTC_INR and BTC side by side. Options are
never mapped: the chain view reads them.

Everywhere: a leading power of ten of at least 1000 (`1000PEPEUSDT`, `B-1000SHIB_USDT`) is a
multiplier: the underlying is PEPE and one unit of the market is 1000 coins, so prices are
divided by it before they are compared.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from .declare import SPOT  # a spot feed's markets are spot markets: one name for both

PERPETUAL, FUTURE = "perpetual", "future"
MARKET_KINDS = (SPOT, PERPETUAL, FUTURE)

# Quote suffixes of concatenated symbols, tried in this order: a quote that ends
# another (USD in FDUSD) comes after it.
QUOTES = ("FDUSD", "USDT", "USDC", "USDE", "USD", "DAI", "EUR", "BRL", "TRY", "PLN", "INR", "BTC", "ETH")

_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_MULTIPLIER = re.compile(r"^(1000+)(?=[A-Z])")


class Market(NamedTuple):
    underlying: str
    quote: str
    kind: str               # spot | perpetual | future
    expiry: str | None = None  # ISO date of a dated future
    multiplier: int = 1      # coins per unit of price: 1000 for 1000PEPEUSDT


def expiry_date(day: str, month: str, year: str) -> str | None:
    """ISO date from a symbol's day, month (number or JAN..DEC, any case) and two-digit year; None if no such date."""
    month_no = int(month) if month.isdigit() else _MONTHS.get(month.upper())
    try:
        return dt.date(2000 + int(year), month_no or 0, int(day)).isoformat()
    except ValueError:
        return None


def split_quote(pair: str) -> tuple[str, str] | None:
    """('BTC', 'USDT') from 'BTCUSDT': the longest known quote suffix; None when none fits."""
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


def market(base: str, quote: str, kind: str, expiry: str | None = None) -> Market | None:
    """The market of a base (a 1000-prefix read as a multiplier) and quote; None for an empty base."""
    if not base:
        return None
    underlying, mult = _base(base)
    return Market(underlying, quote, kind, expiry, mult)
