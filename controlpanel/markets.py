"""Which market a feed's symbol is, for the comparison: each exchange's own rule, read from its declaration.

The rules live next to each exchange's protocol (`Exchange.market` in `workers/exchanges/<ex>.py`,
built from `workers/runtime/markets.py`); a feed's kind (spot, derivative, option) is declared with the
feed. Options are never mapped (`classify` answers None): the chain view reads them.
"""

from __future__ import annotations

from functools import lru_cache

from workers import registry
from workers.runtime.declare import DERIVATIVE, OPTION, SPOT
from workers.runtime.markets import FUTURE, PERPETUAL, Market

__all__ = ["DERIVATIVE", "FUTURE", "INR", "OPTION", "PERPETUAL", "SPOT", "Market", "classify", "family", "feed_kind"]

# USD, USDT and USDC prices are compared directly; INR only through a USDT/INR rate.
USD_FAMILY = frozenset({"USD", "USDT", "USDC"})
INR = "INR"


def feed_kind(feed_id: str) -> str | None:
    """spot, derivative or option, as the feed declares; None for an unknown feed."""
    spec = registry.feed(feed_id)
    return spec.kind if spec else None


def family(quote: str) -> str:
    """The group a quote compares in: USD for USD/USDT/USDC, else the quote itself."""
    return "USD" if quote in USD_FAMILY else quote


@lru_cache(maxsize=65536)
def classify(feed_id: str, symbol: str) -> Market | None:
    """The market `symbol` is on feed `feed_id`; None for options, unknown feeds and names no rule reads."""
    spec = registry.feed(feed_id)
    if spec is None or spec.kind not in (SPOT, DERIVATIVE):
        return None
    return registry.exchange(spec.exchange).market(symbol, spec.kind)
