"""Field and reply checks shared by the exchange protocol modules (pure functions, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

# orjson decodes a ticker frame ~3x faster than the stdlib, and decoding is the largest
# single cost per frame in every feed. Its errors subclass ValueError, like json's.
from orjson import loads

from workers.runtime.model import ParseError

_NAN = float("nan")


def unwrap(body: Any, what: str, ok: Callable[[dict], bool], key: str = "result") -> Any:
    """body[key] of a JSON object reply that `ok` accepts (an exchange's "success" envelope), else
    ParseError naming `what` (the endpoint) and the reply."""
    if not isinstance(body, dict) or not ok(body) or key not in body:
        raise ParseError("bad_reply", f"{what}: unexpected answer {str(body)[:100]}")
    return body[key]


def percent_to_fraction(value: str) -> str:
    """'0.01' (percent, as Delta sends funding) -> '0.0001': every feed stores rates as fractions."""
    return format(Decimal(value) / 100, "f")


def decode_object(raw: str | bytes) -> dict:
    """A frame as a JSON object, or ParseError (bad_json / bad_frame)."""
    try:
        msg = loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the decoder allows
        raise ParseError("bad_json", f"{exc} in {raw[:120]!r}") from None
    if type(msg) is not dict:
        raise ParseError("bad_frame", f"expected a JSON object, got {type(msg).__name__}")
    return msg


def describe(msg: dict) -> str:
    """A short, always-safe description of an unexpected frame (its keys; values may nest deeply)."""
    return "object with keys " + ", ".join(sorted(str(k)[:40] for k in msg)[:12])


def decimal_str(value: Any, name: str, *, positive: bool = False, allow_empty: bool = False) -> str:
    """Check that a field is a finite decimal string and return it unchanged."""
    if type(value) is not str:
        raise ParseError("bad_type", f"{name} should be a decimal string, got {type(value).__name__} {value!r:.40}")
    if not value:
        if allow_empty:
            return value
        raise ParseError("bad_value", f"{name} is empty")
    try:
        number = float(value)
    except ValueError:
        raise ParseError("bad_value", f"{name} is not a number: {value!r:.40}") from None
    if not math.isfinite(number) or number < 0 and positive or (positive and number == 0):
        raise ParseError("bad_value", f"{name} out of range: {value!r:.40}")
    return value


def decimal_fields(d: dict, names: Sequence[tuple[str, str]], positive: Collection[str] = ()) -> dict[str, str]:
    """{dst: d[src]} for each (src, dst) of `names` present and non-empty in `d`, each checked by
    decimal_str (and > 0 where dst is in `positive`). `names` is a tuple of pairs: walking one costs
    fewer instructions than a dict's items (measured, bench.instructions).

    Runs for every field of every ticker frame: a value that passes is checked inline (one float(),
    one compare; `x - x == 0` holds for finite x only), and only one that fails goes through
    decimal_str, for its error."""
    fields = {}
    get = d.get
    for src, dst in names:
        v = get(src)
        if v is None or v == "":
            continue
        if type(v) is str:
            try:
                x = float(v)
            except ValueError:
                x = _NAN
            if x - x == 0.0 and (x > 0.0 or dst not in positive):
                fields[dst] = v
                continue
        fields[dst] = decimal_str(v, src, positive=dst in positive)
    return fields


def changed_decimal_fields(d: dict, names: Mapping[str, str], positive: Collection[str] = ()) -> dict[str, str]:
    """decimal_fields for a delta frame, one that carries only what changed: the frame's keys are
    walked and looked up in `names` ({src: dst}), not the table's (a Bybit linear ticker delta: ~7 keys
    against 12 names; measured 5 % fewer instructions per frame for the whole read loop).

    The per-value check is decimal_fields' own, written out again on purpose: handing decimal_fields
    a table of the frame's names instead measured 12 % *more* instructions per frame for the whole
    loop (`python -m bench.instructions`). tests/unit/test_decimal_fields.py holds the two to one result."""
    fields = {}
    for src, v in d.items():
        dst = names.get(src)
        if dst is None or v is None or v == "":
            continue
        if type(v) is str:
            try:
                x = float(v)
            except ValueError:
                x = _NAN
            if x - x == 0.0 and (x > 0.0 or dst not in positive):
                fields[dst] = v
                continue
        fields[dst] = decimal_str(v, src, positive=dst in positive)
    return fields


def number_str(value: Any, name: str, *, positive: bool = False) -> str:
    """A decimal string or a JSON number (some venues mix both) as a decimal string."""
    if type(value) in (int, float):
        if abs(value) > 1e300 or not math.isfinite(value) or value < 0 and positive or (positive and value == 0):
            raise ParseError("bad_value", f"{name} out of range: {value!r:.40}")
        # 15 significant digits drop float noise (0.010000000000000002 -> 0.01); "f" avoids exponents.
        return repr(value) if type(value) is int else format(Decimal(format(value, ".15g")), "f")
    return decimal_str(value, name, positive=positive)
