"""Plausible moving prices for the simulator: a seeded random walk per symbol."""

from __future__ import annotations

import math
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


def smile_iv(spot: float, strike: float, atm_iv: float = 0.5) -> float:
    """A plausible implied-volatility smile: higher away from the money, puts' wing a little richer."""
    m = math.log(strike / spot)
    return atm_iv + 0.8 * m * m - 0.1 * m


def black_scholes(spot: float, strike: float, years: float, vol: float, call: bool) -> dict[str, float]:
    """Black-Scholes price and Greeks (r = 0): what the simulated chains quote, so marks differ across
    strikes, puts have negative deltas and the smile is a smile."""
    years = max(years, 1e-6)
    sq = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + 0.5 * vol * vol * years) / sq
    d2 = d1 - sq
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    price = spot * cdf(d1) - strike * cdf(d2) if call else strike * cdf(-d2) - spot * cdf(-d1)
    return {"price": max(price, 0.0), "delta": cdf(d1) - (0 if call else 1), "gamma": pdf / (spot * sq),
            "vega": spot * pdf * math.sqrt(years) / 100, "theta": -spot * pdf * vol / (2 * math.sqrt(years)) / 365,
            "rho": (strike * years * (cdf(d2) if call else -cdf(-d2))) / 100}
