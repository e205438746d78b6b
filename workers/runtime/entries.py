"""The sink's per-key entries, and the one rule that merges new data into them.

An entry is `[fields, event_ts_ms, recv_ts_ms]` for one symbol: the fields to write to
`<prefix>:<symbol>` (a None value deletes the field), the exchange's event time and the receive
time. The rule: the fields are overlaid (the newest value of each wins), the newest event time is
kept (a key's `timestamp` never goes back) and the receive time is the new one. The sink merges by
it wherever two states of a key meet: a frame's updates into what is pending (`merge`); newer
updates into a batch that failed, a batch over the kept full state for a replay, a written batch
into that state (`merge_entries`).

The rule is stated twice, once per input shape, because both run on the hot path (every update a
feed receives, every key it writes): a call per update or per key around one shared statement of
it costs ~100 ns each (measured), so each loop is here, whole. tests/unit/test_entries.py holds
them to the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Entry = list[Any]  # [fields: dict[str, Any], event_ts_ms: int, recv_ts_ms: int]
Entries = dict[str, Entry]


def merge(into: Entries, updates: Iterable[tuple[str, Mapping[str, Any], int]], recv_ts_ms: int) -> None:
    """Each update (symbol, fields, event time), received at `recv_ts_ms`, merged into its symbol's
    entry; a symbol new to `into` gets an entry with a copy of the fields."""
    for symbol, fields, event_ts in updates:
        entry = into.get(symbol)
        if entry is None:
            into[symbol] = [dict(fields), event_ts, recv_ts_ms]
        else:
            entry[0].update(fields)
            if event_ts > entry[1]:
                entry[1] = event_ts
            entry[2] = recv_ts_ms


def merge_entries(into: Entries, entries: Entries, *, copy: bool) -> None:
    """Every entry of `entries` merged into its symbol's entry in `into`, by `merge`'s rule. A symbol
    new to `into` gets a copy of the entry (`copy`), or the entry itself (handed over)."""
    for symbol, entry in entries.items():
        fields, event_ts, recv_ts = entry
        old = into.get(symbol)
        if old is None:
            into[symbol] = [dict(fields), event_ts, recv_ts] if copy else entry
        else:
            old[0].update(fields)
            if event_ts > old[1]:
                old[1] = event_ts
            old[2] = recv_ts
