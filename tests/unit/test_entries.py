"""The sink's merge rule (workers/runtime/entries.py): stated once per input shape, for the hot path;
both shapes must give the same entries."""

from __future__ import annotations

import random

from workers.runtime.entries import merge, merge_entries


def test_the_rule_overlays_fields_keeps_the_newest_event_time_and_takes_the_new_receive_time():
    into: dict = {}
    fields = {"ltp": "1", "bid": "0.9"}
    merge(into, [("A", fields, 100)], 1000)
    assert into == {"A": [{"ltp": "1", "bid": "0.9"}, 100, 1000]} and into["A"][0] is not fields  # a copy
    merge(into, [("A", {"ltp": "2", "bid": None}, 90), ("B", {"ltp": "5"}, 95)], 1001)
    assert into["A"] == [{"ltp": "2", "bid": None}, 100, 1001]  # an older event time does not go back
    merge(into, [("A", {"ask": "3"}, 120)], 1002)
    assert into["A"] == [{"ltp": "2", "bid": None, "ask": "3"}, 120, 1002] and into["B"] == [{"ltp": "5"}, 95, 1001]


def test_entries_are_copied_or_handed_over_as_asked():
    entry = [{"ltp": "1"}, 5, 6]
    handed: dict = {}
    merge_entries(handed, {"A": entry}, copy=False)
    assert handed["A"] is entry
    copied: dict = {}
    merge_entries(copied, {"A": entry}, copy=True)
    assert copied["A"] == entry and copied["A"] is not entry and copied["A"][0] is not entry[0]


def test_both_shapes_give_the_same_entries():
    rng = random.Random(23)
    for _ in range(200):
        by_updates: dict = {}
        by_entries: dict = {}
        for _ in range(rng.randint(1, 12)):
            recv = rng.randint(0, 50)
            frame = [(rng.choice("ABC"), {rng.choice("xyz"): rng.choice(["1", "2", None])}, rng.randint(0, 50))
                     for _ in range(rng.randint(1, 3))]
            merge(by_updates, frame, recv)
            one: dict = {}
            merge(one, frame, recv)  # the frame as entries, merged by the other shape
            merge_entries(by_entries, one, copy=rng.random() < 0.5)
        assert by_entries == by_updates
