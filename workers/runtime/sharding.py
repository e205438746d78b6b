"""Split instruments over connections within an exchange's per-connection limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def shard(
    symbols: Sequence[str],
    topics_of: Callable[[str], Sequence[str]],
    *,
    max_topics: int | None = None,
    max_chars: int | None = None,
) -> list[list[str]]:
    """Greedy split keeping each symbol's topics on one connection (its parser joins them).

    `max_topics` caps the topics per connection, `max_chars` their serialized length as a
    JSON array of strings (quotes and comma: 3 characters per topic). Always at least one
    shard, so a feed with no symbols still gets one (idle) connection plan."""
    shards: list[list[str]] = [[]]
    topics = chars = 0
    for symbol in symbols:
        own = topics_of(symbol)
        cost = sum(len(t) + 3 for t in own)
        full = (max_topics is not None and topics + len(own) > max_topics) or (
            max_chars is not None and chars + cost > max_chars)
        if shards[-1] and full:
            shards.append([])
            topics = chars = 0
        shards[-1].append(symbol)
        topics += len(own)
        chars += cost
    return shards
