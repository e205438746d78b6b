"""Exponential backoff with jitter, so a fleet of feeds does not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._next = initial

    def next_delay(self) -> float:
        """The next wait: uniformly in [d/2, d], with d doubling up to the cap."""
        d = self._next
        self._next = min(d * self.factor, self.maximum)
        return random.uniform(d / 2, d)

    def reset(self) -> None:
        self._next = self.initial
