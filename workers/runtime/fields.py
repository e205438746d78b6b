"""The field contract: every field a feed writes into `<prefix>:<SYMBOL>`, named once.

One name, one unit and one format per concept on every exchange. Parsers write
only these names (a test runs every parser over its samples and checks), the
README's field table is written from this list, and the panel reads these names.
All values are strings; numbers are decimal strings without exponent.
"""

from __future__ import annotations

from collections.abc import Iterable

# name -> what it holds (unit, format). Order: as the README lists them.
FIELDS: dict[str, str] = {
    # every hash
    "ltp": "last traded price; absent until the exchange reports a trade (never a mark or a mid)",
    "timestamp": "exchange event time, ISO-8601 UTC with milliseconds; never goes backwards for a key",
    "recv_ts": "when ltp received the frame, epoch milliseconds",
    "original_symbol": "the exchange's own symbol or id",
    "stale": "reserved: liveness marker (see the README)",
    # book top
    "best_bid": "best bid price",
    "best_ask": "best ask price",
    "bid_size": "size at the best bid (base units or contracts, as the exchange quotes)",
    "ask_size": "size at the best ask",
    "spread": "best_ask - best_bid",
    "mid_price": "the exchange's mid price (not a trade)",
    "bids": "JSON [[price, size], ...], best first, top `levels` of the local book",
    "asks": "JSON [[price, size], ...], best first",
    "update_id": "the book's last update id",
    # reference prices
    "mark_price": "mark price",
    "mark_price_usd": "mark price in USD: a coin-quoted option's mark_price × the index price (Deribit)",
    "best_bid_usd": "best_bid in USD, as mark_price_usd (Deribit options)",
    "best_ask_usd": "best_ask in USD, as mark_price_usd (Deribit options)",
    "index_price": "the exchange's index or oracle price of the underlying",
    "usd_index_price": "USD index price of the base coin (Bybit spot)",
    "underlying_price": "price of the option's underlying (Bybit options)",
    "source": "delta_spot: `spot` (a spot market) or `index` (the pair's spot index)",
    # funding
    "funding_rate": "the rate for the next settlement, as a fraction (0.0001 = 0.01 %) per funding interval",
    "funding_interval_hours": "hours between funding settlements",
    "next_funding_time": "next funding settlement, ISO-8601 UTC",
    "current_funding_rate": "last settled funding rate, fraction (CoinDCX)",
    "estimated_funding_rate": "estimated rate for the next settlement, fraction (CoinDCX)",
    "funding_timestamp": "when the funding values were last refreshed from the exchange, ISO-8601 UTC",
    "premium": "premium of mark over oracle, fraction (Hyperliquid)",
    # activity
    "open_interest": "open interest (unit per feed: see the README table)",
    "open_interest_value": "open interest in quote currency (Deribit and OKX swaps: USD)",
    "volume_24h": "24 h volume in base units",
    "turnover_24h": "24 h turnover in quote currency",
    "high_24h": "24 h high",
    "low_24h": "24 h low",
    "prev_price_24h": "price 24 h ago",
    "price_change_percent": "24 h price change in percent (2.5 = +2.5 %)",
    "circulating_supply": "circulating supply of the base token (Hyperliquid spot)",
    # options
    "option_type": "CALL or PUT",
    "underlying": "underlying asset (BTC)",
    "strike_price": "strike",
    "expiry_date": "expiry as DDMMYY (211025 = 21 Oct 2025)",
    "expiry": "expiry as an ISO date (2025-10-21)",
    "settle_coin": "settlement coin",
    "delta": "option delta",
    "gamma": "option gamma",
    "vega": "option vega",
    "theta": "option theta",
    "rho": "option rho",
    "implied_volatility": "mark implied volatility, fraction (0.65 = 65 %)",
    "bid_iv": "implied volatility of the best bid, fraction",
    "ask_iv": "implied volatility of the best ask, fraction",
}

# Written by the sink on every write, not by parsers.
SINK_FIELDS = frozenset({"timestamp", "recv_ts"})
# Reserved for the runtime (liveness); a parser never writes it.
STALE = "stale"  # absent = live; else "<cause> <ISO time>" (see runtime/stale.py)
RESERVED = frozenset({STALE})

# The other keys of a prefix, beside its hashes `<prefix>:<SYMBOL>`:
SYMBOL_INDEX = "ltp:symbols:{prefix}"  # set of the symbols under a prefix: SCARD is the data count
HISTORY = "ltp:history:{prefix}:{symbol}"  # capped list of recent LTPs (newest first), for sparklines
PARSER_FIELDS = frozenset(FIELDS) - SINK_FIELDS - RESERVED


def unknown_fields(names: Iterable[str]) -> list[str]:
    """The names a parser must not write (not in the contract, or reserved for the runtime)."""
    return sorted(n for n in names if n not in PARSER_FIELDS)
