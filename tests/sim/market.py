"""Plausible moving prices for the simulator: a seeded random walk per symbol."""

from __future__ import annotations

import random
import time

BASE_PRICES = {"BTC": 65000.0, "ETH": 3200.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15, "BNB": 580.0}


def base_coin(symbol: str) -> str:
    for coin in BASE_PRICES:
        if symbol.startswith(coin):
            return coin
    return symbol[:3]


class Instrument:
    """Random-walk price with a 24 h envelope, a book around it and an update id."""

    __slots__ = ("symbol", "price", "open_24h", "high", "low", "volume", "update_id", "rng", "tick")

    def __init__(self, symbol: str, seed: int = 0) -> None:
        self.symbol = symbol
        self.rng = random.Random(f"{symbol}:{seed}")
        start = BASE_PRICES.get(base_coin(symbol), 10.0 + self.rng.random() * 90)
        self.price = start
        self.open_24h = start * (1 + self.rng.uniform(-0.03, 0.03))
        self.high = max(self.price, self.open_24h) * 1.01
        self.low = min(self.price, self.open_24h) * 0.99
        self.volume = self.rng.uniform(1_000, 50_000)
        self.update_id = 1
        self.tick = 10 ** (len(str(int(start))) - 6) if start >= 1 else 0.0001

    def step(self) -> float:
        self.price = max(self.tick, self.price * (1 + self.rng.gauss(0, 0.0004)))
        self.high = max(self.high, self.price)
        self.low = min(self.low, self.price)
        self.volume += self.rng.uniform(0, 2)
        self.update_id += 1
        return self.price

    def fmt(self, value: float) -> str:
        return f"{round(value / self.tick) * self.tick:.{max(0, -int(f'{self.tick:e}'.split('e')[1]))}f}"

    def book(self, depth: int, offset_ticks: int = 0) -> tuple[list[list[str]], list[list[str]]]:
        mid = self.price + offset_ticks * self.tick
        bids = [[self.fmt(mid - self.tick * (i + 1)), f"{self.rng.uniform(0.01, 5):.3f}"] for i in range(depth)]
        asks = [[self.fmt(mid + self.tick * (i + 1)), f"{self.rng.uniform(0.01, 5):.3f}"] for i in range(depth)]
        return bids, asks


def now_ms() -> int:
    return time.time_ns() // 1_000_000
