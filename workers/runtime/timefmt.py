"""Fast ISO-8601 UTC formatting of epoch milliseconds (called once per Redis write)."""

from __future__ import annotations

import time

# (second, "YYYY-MM-DDTHH:MM:SS"), swapped as one tuple so threads never see a torn pair.
_cache: tuple[int, str] = (-1, "")


def iso_ms(epoch_ms: int) -> str:
    """1673272861686 -> '2023-01-09T14:01:01.686Z'."""
    global _cache
    sec, ms = divmod(int(epoch_ms), 1000)
    cached_sec, prefix = _cache
    if sec != cached_sec:
        # Rebuilding the prefix only when the second changes keeps this cheap.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _cache = (sec, prefix)
    return f"{prefix}.{ms:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000
