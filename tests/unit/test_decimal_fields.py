"""decimal_fields (walks the table) and changed_decimal_fields (walks the frame, for deltas) are one rule:
the same fields from any frame, or the same error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.exchanges.common import changed_decimal_fields, decimal_fields
from workers.runtime.model import ParseError

NAMES = {"lastPrice": "ltp", "markPrice": "mark_price", "volume24h": "volume_24h", "fundingRate": "funding_rate"}
PAIRS = tuple(NAMES.items())  # decimal_fields' table: pairs
VALUES = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.sampled_from(["", "0", "-1.5", "NaN", "inf", "-inf", "1e5", "abc", " 1", "1_000"]),
    st.none(), st.integers(), st.floats(), st.lists(st.integers(), max_size=1),
)
KEYS = st.sampled_from([*NAMES, "symbol", "bid1Price", "other"])


def outcome(fn, d: dict) -> object:
    try:
        return fn(d, PAIRS if fn is decimal_fields else NAMES, positive=("ltp",))
    except ParseError as exc:
        return exc.kind


@settings(max_examples=400)
@given(st.dictionaries(KEYS, VALUES, max_size=7))
def test_walking_the_frame_gives_what_walking_the_table_gives(d):
    by_table, by_frame = outcome(decimal_fields, d), outcome(changed_decimal_fields, d)
    if isinstance(by_table, dict) and isinstance(by_frame, dict):
        assert by_frame == by_table
    else:  # an error: the same kind (with two bad values each walk may meet a different one first)
        assert isinstance(by_table, str) and isinstance(by_frame, str)
        bad = [k for k in d if k in NAMES and not isinstance(outcome(decimal_fields, {k: d[k]}), dict)]
        assert bad and by_frame in {outcome(decimal_fields, {k: d[k]}) for k in bad}


def test_values_and_errors():
    d = {"symbol": "BTCUSDT", "lastPrice": "100.5", "markPrice": "", "volume24h": None, "fundingRate": "-0.0001"}
    assert changed_decimal_fields(d, NAMES, positive=("ltp",)) == {"ltp": "100.5", "funding_rate": "-0.0001"}
    for bad, kind in (({"lastPrice": "0"}, "bad_value"), ({"markPrice": "NaN"}, "bad_value"), ({"volume24h": 5}, "bad_type")):
        assert outcome(changed_decimal_fields, bad) == kind
