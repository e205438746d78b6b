"""The order book against a plain reference model, over random snapshot+delta sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.runtime.book import BookError, OrderBook

prices = st.integers(min_value=1, max_value=60).map(lambda p: f"{p / 2:.1f}")
sizes = st.sampled_from(["0", "0.5", "1", "2.25", "10"])
levels = st.lists(st.tuples(prices, sizes), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=20), st.integers(1, 10))
def test_book_matches_reference(deltas, depth):
    book = OrderBook()
    ref = {"b": {}, "a": {}}
    book.apply_snapshot([], [], 1)
    for u, (bids, asks) in enumerate(deltas, start=2):
        book.apply_delta(bids, asks, u)
        for side, lv in (("b", bids), ("a", asks)):
            for p, s in lv:
                if float(s) == 0:
                    ref[side].pop(float(p), None)
                else:
                    ref[side][float(p)] = (p, s)
        want_b = [ref["b"][p] for p in sorted(ref["b"], reverse=True)[:depth]]
        want_a = [ref["a"][p] for p in sorted(ref["a"])[:depth]]
        assert book.top(depth) == (want_b, want_a)
        assert book.update_id == u


def test_snapshot_replaces_everything():
    book = OrderBook()
    book.apply_snapshot([["10", "1"], ["9", "1"]], [["11", "1"]], 5)
    book.apply_snapshot([["8", "2"]], [["12", "3"]], 1)
    assert book.top(5) == ([("8", "2")], [("12", "3")])
    assert book.update_id == 1 and not book.crossed()


def test_crossed_detection():
    book = OrderBook()
    book.apply_snapshot([["10", "1"]], [["10", "1"]], 1)
    assert book.crossed()


@pytest.mark.parametrize("level", [["abc", "1"], ["1", "-2"], ["nan", "1"], ["1", "inf"], [1.0, "1"], ["1"]])
def test_bad_level_resets_the_book(level):
    book = OrderBook()
    book.apply_snapshot([["10", "1"]], [["11", "1"]], 1)
    with pytest.raises(BookError):
        book.apply_delta([level], [], 2)
    assert not book.ready and book.top(5) == ([], [])
