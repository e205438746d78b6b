"""A local limit order book built from a snapshot and deltas.

Levels are kept in a dict (price string -> size string) plus a sorted list of
float prices, so a delta costs a bisect and the top N is a slice. Prices keep
the exchange's own string form so nothing is re-formatted on the way to Redis.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence

Level = Sequence[str]  # [price, size] as the exchange sends them


class BookError(ValueError):
    """A level that can't be applied (non-numeric, negative, NaN)."""


def _num(text: str) -> float:
    if type(text) is not str:
        raise BookError(f"expected a decimal string, got {text!r:.40}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BookError(f"not a number: {text!r}") from None
    if value != value or value < 0 or value == float("inf"):
        raise BookError(f"bad value: {text!r}")
    return value


class _Side:
    __slots__ = ("levels", "prices", "descending")

    def __init__(self, descending: bool) -> None:
        self.levels: dict[float, tuple[str, str]] = {}
        self.prices: list[float] = []  # ascending; bids read from the end
        self.descending = descending

    def clear(self) -> None:
        self.levels.clear()
        self.prices.clear()

    def apply(self, price_s: str, size_s: str) -> None:
        price = _num(price_s)
        size = _num(size_s)
        if size == 0:
            if self.levels.pop(price, None) is not None:
                i = bisect_left(self.prices, price)
                del self.prices[i]
        else:
            if price not in self.levels:
                insort(self.prices, price)
            self.levels[price] = (price_s, size_s)

    def top(self, n: int) -> list[tuple[str, str]]:
        if self.descending:
            return [self.levels[p] for p in reversed(self.prices[-n:])]
        return [self.levels[p] for p in self.prices[:n]]

    def best(self) -> float | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.descending else self.prices[0]


class OrderBook:
    def __init__(self) -> None:
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)
        self.update_id: int | None = None  # None until a snapshot has been applied

    @property
    def ready(self) -> bool:
        return self.update_id is not None

    def reset(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.update_id = None

    def apply_snapshot(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        self.reset()
        self._apply(bids, asks)
        self.update_id = update_id

    def apply_delta(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int) -> None:
        self._apply(bids, asks)
        self.update_id = update_id

    def _apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        try:
            for price, size in bids:
                self.bids.apply(price, size)
            for price, size in asks:
                self.asks.apply(price, size)
        except (TypeError, ValueError) as exc:
            # A half-applied frame leaves the book unknown: the caller must resync.
            self.reset()
            raise BookError(f"bad level: {exc}") from None

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return self.bids.top(n), self.asks.top(n)
