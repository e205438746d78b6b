"""The panel's one finite-number parser and one age text (controlpanel/values.py), and the comparison's
mid and stale rule that the compare, USDT/INR and chain views share."""

from __future__ import annotations

import pytest

from controlpanel.compare import data_age, is_stale, mid
from controlpanel.values import age_text, num


@pytest.mark.parametrize("value", [None, "", "x", "nan", "inf", "-inf", "1e999"])
def test_num_gives_the_default_for_anything_not_a_finite_number(value):
    assert num(value) is None and num(value, 0.0) == 0.0


def test_num_reads_finite_numbers():
    assert num("1.5") == 1.5 and num("-2", 0.0) == -2.0 and num(" 3 ") == 3.0


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "0 s"), (0.4, "0 s"), (89, "89 s"), (90, "2 min"), (5399, "90 min"), (5400, "1.5 h"), (172799, "48.0 h"),
    (172800, "2 days"), (400 * 86400, "400 days"),
])
def test_age_text(seconds, text):
    assert age_text(seconds) == text


def test_mid_prefers_the_hash_then_a_two_sided_book():
    assert mid(100.0, 1.0, 3.0) == 100.0
    assert mid(None, 1.0, 3.0) == 2.0
    assert mid(None, None, 3.0) is None and mid(None, 0.0, 3.0) is None and mid(None, -1.0, 3.0) is None


def test_data_age_and_the_stale_rule():
    assert data_age(1_000_000.0, 1_005.5) == 5.5 and data_age(None, 1_005.5) is None
    assert not is_stale(None, 5.0, 60.0)
    assert is_stale(None, 61.0, 60.0) and is_stale(None, None, 60.0) and is_stale("stopped 2026", 1.0, 60.0)
