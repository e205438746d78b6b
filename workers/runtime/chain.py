"""The option-chain rule, one meaning on every exchange.

`selection` in exchanges.yaml:
    underlyings:      [BTC, ETH]   coins whose chains to follow ([] = none: only explicit symbols)
    expiries:         2            the nearest N expiry times per underlying (0 = all)
    strike_range_pct: 10           strikes within ±10 % of the underlying's price (0 = all strikes)
    settle_coins:     [USDC]       only contracts settled in these coins ([] = any)
Explicit `symbols` of the service are *added* to what the rule picks (after a check that
each is a live contract), on every exchange.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .config import ConfigError

KEYS = ("underlyings", "expiries", "strike_range_pct", "settle_coins")
MAX_EXPIRIES = 50


class Contract(NamedTuple):
    """What the rule needs of one listed option, as each exchange module reads it from REST."""

    symbol: str
    underlying: str
    expiry_ms: int        # expiry (settlement) time, epoch ms: ordering and "not yet expired"
    strike: float
    settle: str | None = None


def _coin_list(path: str, value: Any, example: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) and c.isalnum() for c in value):
        raise ConfigError(path, f"expected a list of coins, got {value!r:.60}", example)
    return tuple(c.upper() for c in value)


@dataclass(frozen=True)
class ChainRule:
    underlyings: tuple[str, ...] = ()
    expiries: int = 2
    strike_range_pct: float = 10.0
    settle_coins: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, selection: Mapping[str, Any], path: str) -> ChainRule:
        """Validate a service's `selection` mapping; errors name the key and what is allowed."""
        for key in selection:
            if key not in KEYS:
                raise ConfigError(f"{path}.{key}", "unknown key", ", ".join(KEYS))
        unds = _coin_list(f"{path}.underlyings", selection.get("underlyings", []), "e.g. [BTC, ETH]")
        n = selection.get("expiries", 2)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_EXPIRIES:
            raise ConfigError(f"{path}.expiries", f"expected an integer in 0..{MAX_EXPIRIES}, got {n!r:.40}",
                              f"0 = all expiries, 1..{MAX_EXPIRIES} = the nearest N")
        pct = selection.get("strike_range_pct", 10)
        if not isinstance(pct, (int, float)) or isinstance(pct, bool) or not 0 <= pct <= 1000:
            raise ConfigError(f"{path}.strike_range_pct", f"expected a number in 0..1000, got {pct!r:.40}",
                              "0 = all strikes, 10 = within ±10 % of the underlying's price")
        settles = _coin_list(f"{path}.settle_coins", selection.get("settle_coins", []), "e.g. [USDC, USDT]; [] = any")
        return cls(unds, n, float(pct), settles)

    def select(self, contracts: Iterable[Contract], prices: Mapping[str, float], now_ms: int) -> tuple[list[str], list[str]]:
        """(symbols the rule picks, underlyings skipped for want of a price).

        A strike window needs the underlying's price; without one that underlying's chain
        is skipped this round rather than subscribed whole."""
        by_underlying: dict[str, list[Contract]] = {}
        for c in contracts:
            if c.underlying not in self.underlyings or c.expiry_ms <= now_ms:
                continue
            if self.settle_coins and c.settle is not None and c.settle not in self.settle_coins:
                continue
            by_underlying.setdefault(c.underlying, []).append(c)
        chosen: list[str] = []
        no_price: list[str] = []
        for underlying, items in sorted(by_underlying.items()):
            price = prices.get(underlying)
            if self.strike_range_pct and not price:
                no_price.append(underlying)
                continue
            expiries = sorted({c.expiry_ms for c in items})
            keep = set(expiries[: self.expiries] if self.expiries else expiries)
            width = (price or 0.0) * self.strike_range_pct / 100
            chosen.extend(c.symbol for c in items
                          if c.expiry_ms in keep and (not self.strike_range_pct or abs(c.strike - (price or 0.0)) <= width))
        return sorted(chosen), no_price
