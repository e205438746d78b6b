"""Every exchange, in one place: its name -> the module that declares it (`EXCHANGE = Exchange(...)`).

Adding an exchange is one line here. A feed id is `<exchange>_<name>`; it is also its supervisord
program name, its `exchanges.yaml` service key and its status hash `service:status:<id>`.
`python -m workers <id>` runs it. Modules are imported on first use and only the ones asked for,
so a feed process loads its own exchange's code and no other.
"""

from __future__ import annotations

import importlib
from functools import cache

from workers.runtime.declare import Exchange, Feed

EXCHANGES: dict[str, str] = {
    "bybit": "workers.exchanges.bybit",
    "delta": "workers.exchanges.delta",
    "coindcx": "workers.exchanges.coindcx",
    "hyperliquid": "workers.exchanges.hyperliquid",
    "binance": "workers.exchanges.binance",
    "deribit": "workers.exchanges.deribit",
    "okx": "workers.exchanges.okx",
}


@cache
def exchange(name: str) -> Exchange:
    """The declaration of a registered exchange (KeyError for another name)."""
    declared: Exchange = importlib.import_module(EXCHANGES[name]).EXCHANGE
    if declared.name != name:
        raise ValueError(f"{EXCHANGES[name]} declares exchange {declared.name!r}, registered as {name!r}")
    return declared


def exchanges() -> list[Exchange]:
    """Every registered exchange, in registry order."""
    return [exchange(name) for name in EXCHANGES]


def exchange_of(feed_id: str) -> str | None:
    """The registered exchange a feed id names by its prefix (without importing any module)."""
    names = [name for name in EXCHANGES if feed_id.startswith(f"{name}_")]
    return max(names, key=len) if names else None


def feed(feed_id: str) -> Feed | None:
    """A feed's declaration; imports only the module of the exchange its id names."""
    name = exchange_of(feed_id)
    return exchange(name).feed_by_id.get(feed_id) if name else None


def feeds() -> dict[str, Feed]:
    """Every feed of every exchange, in registry order (imports every exchange module)."""
    return {f.id: f for ex in exchanges() for f in ex.feeds}
