"""Small values the panel reads from Redis and writes for people: finite numbers, ages as text.

The browser's age text is static/fmt.js (`Fmt.age`), shorter for table cells.
"""

from __future__ import annotations

import math
from typing import overload


@overload
def num(value: str | None, default: float) -> float: ...
@overload
def num(value: str | None, default: None = None) -> float | None: ...
def num(value: str | None, default: float | None = None) -> float | None:
    """A Redis text field as a float; `default` when absent, empty, not a number, NaN or infinite."""
    if not value:
        return default
    try:
        out = float(value)
    except ValueError:
        return default
    return out if math.isfinite(out) else default


def age_text(seconds: float) -> str:
    """A duration for a message: `42 s`, `17 min`, `2.5 h`, `3 days` (negative counts as 0)."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
