"""The re-subscription limiter: a token bucket per key, driven by a hand clock."""

from __future__ import annotations

import pytest

from workers.runtime.limiter import RESYNC_INTERVAL_S, Limiter


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_one_action_per_interval_per_key_and_the_rest_counted():
    clock = Clock()
    lim = Limiter(5.0, clock=clock)
    assert lim.allow("orderbook.50.BTCUSDT")
    for _ in range(3):
        clock.now += 1
        assert not lim.allow("orderbook.50.BTCUSDT")
    assert lim.allow("orderbook.50.ETHUSDT")  # another key has its own budget
    assert lim.suppressed == {"orderbook.50.BTCUSDT": 3} and lim.suppressed_total == 3 and lim.allowed_total == 2
    assert lim.wait("orderbook.50.BTCUSDT") == pytest.approx(2.0)
    clock.now += 2
    assert lim.ready("orderbook.50.BTCUSDT") and lim.allow("orderbook.50.BTCUSDT")
    assert not lim.ready("orderbook.50.BTCUSDT")


def test_refused_calls_do_not_push_the_next_token_back():
    clock = Clock()
    lim = Limiter(5.0, clock=clock)
    lim.allow("t")
    for _ in range(49):  # a refusal every 0.1 s
        clock.now += 0.1
        assert not lim.allow("t")
    clock.now += 0.1
    assert lim.allow("t")  # exactly one interval after the first action


def test_ready_and_wait_count_nothing():
    clock = Clock()
    lim = Limiter(2.0, clock=clock)
    assert lim.ready("k") and lim.wait("k") == 0
    lim.allow("k")
    for _ in range(5):
        assert not lim.ready("k")
    assert lim.suppressed_total == 0


def test_burst_then_steady_rate():
    clock = Clock()
    lim = Limiter(1.0, burst=3, clock=clock)
    assert [lim.allow("k") for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0
    assert lim.allow("k") and not lim.allow("k")
    clock.now += 100  # tokens never pile up past the burst
    assert [lim.allow("k") for _ in range(4)] == [True, True, True, False]


def test_forget_gives_a_key_a_fresh_bucket_but_keeps_its_count():
    lim = Limiter(5.0, clock=Clock())
    lim.allow("k")
    assert not lim.allow("k")
    lim.forget("k")
    assert lim.allow("k") and lim.suppressed == {"k": 1}


def test_default_is_the_documented_figure_and_bad_arguments_refused():
    assert Limiter().interval == RESYNC_INTERVAL_S == 5.0
    for kwargs in ({"interval": 0}, {"interval": -1}, {"interval": float("nan")}, {"burst": 0}):
        with pytest.raises(ValueError):
            Limiter(**kwargs)
