"""Give the heap that Python freed back to the OS (glibc's malloc_trim).

A feed's start-up is its biggest allocation burst: the config, the instrument lists discovery
reads over REST (thousands of instruments), the first snapshots. Python frees those objects, but
glibc keeps the freed pages in its arenas (one per thread), so they stay counted against the
process for good. Measured with all eleven feeds on the simulator (`python -m bench.system_memory`):
one trim after start-up took the whole system's PSS from ~300 MB to ~290 MB. Repeated now and
then, so memory freed after a discovery round or an outage's replay goes back too.
"""

from __future__ import annotations

import ctypes
import os
import sys

TRIM_FIRST_S = 15.0   # after start-up: connections made, discovery done, first snapshots written
TRIM_EVERY_S = 300.0  # then: cheap (well under a millisecond for a feed's heap), and rarely useful


def _load() -> ctypes._NamedFuncPointer | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl has none (AttributeError)
    except (OSError, AttributeError):
        return None


# LTP_HEAP_TRIM=0 turns it off (for A/B memory measurements: bench/system_memory.py --env).
_malloc_trim = _load() if os.environ.get("LTP_HEAP_TRIM", "1") != "0" else None


def release_free_heap() -> bool:
    """Return freed heap pages to the OS; False where the C library can't (not glibc)."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class HeapTrimmer:
    """Calls release_free_heap TRIM_FIRST_S after start, then every TRIM_EVERY_S, from a loop that
    already wakes up regularly (a feed's main loop): no thread of its own."""

    def __init__(self, now: float, first: float = TRIM_FIRST_S, every: float = TRIM_EVERY_S) -> None:
        self.every = every
        self.next_at = now + first

    def tick(self, now: float) -> bool:
        if now < self.next_at:
            return False
        self.next_at = now + self.every
        return release_free_heap()
