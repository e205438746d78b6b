"""What an exchange module declares about itself: its feeds, how each is wired, and the facts the
rest of the system reads (display name, market rule, default funding interval, simulator).

An exchange module ends with one `EXCHANGE = Exchange(...)`; `workers/registry.py` names the
module. Nothing else in the system keeps a table per exchange: supervisord's feed blocks, the
config check, the simulator, the panel's venues, markets and funding defaults all read this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .feed import FeedContext, Source
    from .markets import Market

# What a feed carries, for the panel: spot markets, derivatives (perpetuals, dated futures), options.
SPOT, DERIVATIVE, OPTION = "spot", "derivative", "option"
FEED_KINDS = (SPOT, DERIVATIVE, OPTION)

Builder = Callable[["FeedContext"], Sequence["Source"]]
MarketRule = Callable[[str, str], "Market | None"]  # (symbol, feed kind) -> its market, None if unreadable


@dataclass(frozen=True)
class Feed:
    """One feed: its id (= supervisord program = exchanges.yaml service = status hash name) and its wiring."""

    id: str
    kind: str            # SPOT, DERIVATIVE or OPTION
    build: Builder       # FeedContext -> the feed's sources (connections, pollers, discovery)
    summary: str         # one line for people: `python -m workers`, supervisord.conf, /api/venues
    uses_rest: bool = False  # needs `rest_endpoint` (discovery or polling over REST)
    exchange: str = ""   # filled in by Exchange


@dataclass(frozen=True)
class Exchange:
    name: str            # exchanges.yaml key; every feed id starts with `<name>_`
    display: str         # how people write it: "CoinDCX"
    feeds: tuple[Feed, ...]
    market: MarketRule   # symbol -> underlying/quote/kind/expiry/multiplier, for Compare
    funding_interval_hours: float | None  # when a hash has no funding_interval_hours; None: only from the hash
    simulator: str       # "module:Class" of its local protocol simulator (tests/sim)
    feed_by_id: dict[str, Feed] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        feeds = tuple(Feed(f.id, f.kind, f.build, f.summary, f.uses_rest, self.name) for f in self.feeds)
        for f in feeds:
            if not f.id.startswith(f"{self.name}_"):
                raise ValueError(f"feed id {f.id!r} of exchange {self.name!r} must start with {self.name + '_'!r}")
            if f.kind not in FEED_KINDS:
                raise ValueError(f"feed {f.id!r}: kind {f.kind!r} is not one of {', '.join(FEED_KINDS)}")
        object.__setattr__(self, "feeds", feeds)
        object.__setattr__(self, "feed_by_id", {f.id: f for f in feeds})
