"""Freed heap goes back to the OS: the trim a feed's main loop runs after start-up and every 5 min."""

from __future__ import annotations

import subprocess
import sys

from workers.runtime.heap import HeapTrimmer

PROBE = """
import threading
from workers.runtime.heap import release_free_heap

def rss_kb():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])

kept = []

def burst():  # a start-up burst on another thread (its own glibc arena): 60 MB of 1 KB strings (malloc'd,
    # not pymalloc's), freed but for every 200th, which pins the arena's pages: glibc can't trim it itself
    data = ["x" * 1200 + str(i) for i in range(50_000)]
    kept.extend(data[::200])
    del data

t = threading.Thread(target=burst); t.start(); t.join()
before = rss_kb()
trimmed = release_free_heap()
print(trimmed, before, rss_kb())
"""


def test_freed_heap_is_returned_to_the_os():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60).stdout
    trimmed, before, after = out.split()
    assert trimmed == "True"  # glibc (Debian)
    assert int(before) - int(after) > 20_000, (before, after)  # tens of MB of freed objects: gone from RSS


def test_trim_schedule():
    trimmer = HeapTrimmer(100.0, first=15.0, every=300.0)
    assert not trimmer.tick(114.9)
    assert trimmer.tick(115.0)       # after start-up
    assert not trimmer.tick(300.0)
    assert trimmer.tick(415.0)       # then every 5 min
