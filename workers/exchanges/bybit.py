"""Bybit V5 public market data: the whole protocol in one place.

Facts (see NOTES in the issue tracker and bybit-exchange/docs):
- one socket per category: /v5/public/{spot,linear,option};
- subscribe: {"req_id":..,"op":"subscribe","args":[topics]}; spot takes at most
  10 args per request, option at most 2000 args per connection, and every
  connection at most 21,000 characters of args;
- heartbeat: send {"op":"ping"} every 20 s; spot/linear answer
  {"op":"ping","ret_msg":"pong",..}, option answers {"op":"pong",..};
- acks: spot/linear {"op":"subscribe","success":..,"ret_msg":..}; option
  {"type":"COMMAND_RESP","success":..,"data":{"successTopics","failTopics"}};
  a refused topic is reported as "error:handler not found,topic:<topic>";
- data frames carry "topic", "type" (snapshot|delta), "ts" (ms; a number in the
  parameter tables, a digit string in the orderbook page's reminder: both read) and
  "data"; every other number is a string.
- order book (docs/v5/websocket/public/orderbook.mdx): `u` is an update id, not a
  gapless sequence (the words "Is a sequence" were dropped on 2024-10-22): ids only
  increase, so `u` <= the book's is a stale frame, a jump is normal. `u` == 1 is the
  service's restart snapshot, whatever `type` says: overwrite the book. Level 1 is
  snapshots only, re-pushed with the same `u` after 3 s without change. `seq` only
  orders frames of different depths (one depth is followed here: unused).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orjson import dumps, loads

from workers.exchanges.common import changed_decimal_fields, decimal_fields, decimal_str, decode_object, describe, unwrap
from workers.runtime.book import BookError, OrderBook
from workers.runtime.chain import ChainRule, Contract
from workers.runtime.config import ConfigError
from workers.runtime.declare import DERIVATIVE, OPTION, SPOT, Exchange, Feed
from workers.runtime.limiter import Limiter
from workers.runtime.markets import FUTURE, PERPETUAL, Market, expiry_date, market, split_quote
from workers.runtime.model import (
    IGNORED,
    PONG,
    SEND,
    SUB_REJECTED,
    SUBSCRIBED,
    Control,
    ParseError,
    Update,
)
from workers.runtime.sharding import shard
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import iso_ms, now_ms

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

MAX_ARGS_PER_REQUEST = {"spot": 10, "linear": 200, "option": 200}
# Only options cap the args count per connection; every category caps their length (21,000 chars).
MAX_ARGS_PER_CONNECTION: dict[str, int | None] = {"spot": None, "linear": None, "option": 2000}
MAX_ARGS_CHARS_PER_CONNECTION = 21_000
PING_FRAME = '{"op":"ping"}'
# Re-subscriptions (the rest of a refused request, an unattributed refusal) per connection:
# 3 at once, then one per 2 s; held-back topics leave together with the next one.
RESUBSCRIBE_BURST = 3
RESUBSCRIBE_INTERVAL_S = 2.0
RESUBSCRIBE_KEY = "resubscribe"

_NAN = float("nan")
_INF = float("inf")
_new_update = tuple.__new__  # Update(...) without namedtuple's Python-level __new__: one per ticker frame
_IGNORED = Control(IGNORED)
_PONG = Control(PONG)


def percent_from_fraction(value: str) -> str:
    """Bybit's price24hPcnt is a fraction ("-0.0049"); the contract stores percent ("-0.49")."""
    return f"{float(value) * 100:.6g}"


def shard_symbols(symbols: list[str], topics_of: Any, category: str) -> list[list[str]]:
    """Symbols over connections within Bybit's per-connection limits (args count and serialized length)."""
    return shard(symbols, topics_of, max_topics=MAX_ARGS_PER_CONNECTION[category], max_chars=MAX_ARGS_CHARS_PER_CONNECTION)


def batches(topics: list[str], category: str) -> list[list[str]]:
    per = MAX_ARGS_PER_REQUEST[category]
    return [topics[i:i + per] for i in range(0, len(topics), per)]


def subscribe_frame(req_id: str, topics: list[str], op: str = "subscribe") -> str:
    return json.dumps({"req_id": req_id, "op": op, "args": topics})


def rejected_topic(ret_msg: str) -> str:
    """'error:handler not found,topic:orderbook.500.BTCUSDT' -> 'orderbook.500.BTCUSDT'."""
    _, sep, topic = ret_msg.rpartition("topic:")
    return topic.strip() if sep else ""


def _ts_of(ts: Any, topic: str) -> int:
    """A frame's `ts` that is not a plain int: a digit string (the orderbook page's reminder shows
    "ts": "1772694601512"; its table says number) as epoch ms, anything else ParseError."""
    if type(ts) is str and ts.isascii() and ts.isdigit() and len(ts) <= 15:
        ts = int(ts)
    if type(ts) is not int or ts <= 0:
        raise ParseError("bad_type", f"ts should be epoch ms, got {ts!r:.40} in {topic}")
    return ts


def fraction_to_percent(value: Any, name: str) -> str:
    """decimal_str's check and percent_from_fraction's conversion of one value, with one float()."""
    if type(value) is str:
        try:
            x = float(value)
        except ValueError:
            x = _NAN
        if x - x == 0.0:  # finite
            return f"{x * 100:.6g}"
    return percent_from_fraction(decimal_str(value, name))  # raises, with decimal_str's words


class BybitStream(WsStream):
    """One Bybit public connection: a category, its topics, and the frame dispatch."""

    can_resubscribe = True

    def __init__(self, name: str, url: str, category: str, topics: list[str], ping_interval: float = 20.0) -> None:
        self.name = name
        self.url = url
        self.category = category
        self.topics = topics
        self.ping_interval: float | None = ping_interval
        self.clock: Callable[[], float] = time.monotonic
        self._retry_lock = threading.Lock()
        # topic -> (handler, symbol) for a subclass's hot topics, called handler(self, symbol, kind, data, ts):
        # one dict lookup per frame instead of splitting the topic and branching on its channel (`on_data`).
        # A plain function, not a functools.partial: called from Python code, the call stays in the
        # interpreter's fast path (measured: a partial costs more than the branches it saves).
        self._handlers: dict[str, tuple[Callable[..., list[Update]], str]] = {}
        self._new_connection_state()

    def _new_connection_state(self) -> None:
        self._requests: dict[str, list[str]] = {}
        # Re-sent subscriptions on this connection: `RESUBSCRIBE_BURST` at once, then one per
        # `RESUBSCRIBE_INTERVAL_S`; what the limiter holds back waits in `_pending` and leaves
        # with the next due one (`due_frames`, from the keepalive thread), all topics together.
        self.resubscribes = Limiter(RESUBSCRIBE_INTERVAL_S, RESUBSCRIBE_BURST, clock=lambda: self.clock())
        self._pending: dict[str, None] = {}  # topics waiting for a re-subscribe, in order

    def on_connect(self) -> list[str]:
        self.reset()
        with self._retry_lock:
            self._new_connection_state()
        return [self._subscribe(batch) for batch in batches(self.topics, self.category)]

    def resubscribe_frames(self) -> list[str]:
        """Every topic again on this connection (no data came for too long, pongs did): unsubscribe
        first (Bybit refuses a topic already subscribed), fresh parser state for the new snapshots."""
        self.reset()
        groups = batches(self.topics, self.category)
        unsubs = [subscribe_frame(f"unsub-{i}", g, "unsubscribe") for i, g in enumerate(groups)]
        return unsubs + [self._subscribe(g) for g in groups]

    def _retry(self, topics: list[str]) -> tuple[str, ...]:
        """Subscribe `topics` again, within this connection's re-subscribe limit: the frames to send now
        (none when the limiter holds them back: `due_frames` sends them when a token is due)."""
        with self._retry_lock:
            for t in topics:
                if t in self.topics:
                    self._pending[t] = None
            return self._drain()

    def _drain(self) -> tuple[str, ...]:
        if not self._pending or not self.resubscribes.allow(RESUBSCRIBE_KEY):
            return ()
        todo, self._pending = list(self._pending), {}
        return tuple(self._subscribe(batch) for batch in batches(todo, self.category))

    def due_frames(self) -> tuple[str, ...]:
        """Re-subscribes the limiter held back and now allows (called by the keepalive thread)."""
        if not self._pending or not self.resubscribes.ready(RESUBSCRIBE_KEY):
            return ()
        with self._retry_lock:
            return self._drain()

    def retry_wait(self) -> float:
        """Seconds until held-back re-subscribes may go (0 if none wait)."""
        return self.resubscribes.wait(RESUBSCRIBE_KEY) if self._pending else 0.0

    def _subscribe(self, topics: list[str]) -> str:
        req_id = f"sub-{len(self._requests)}"
        self._requests[req_id] = topics
        return subscribe_frame(req_id, topics)

    def _refused(self, reason: str, topics: list[str], req_id: Any) -> Control:
        """Drop refused topics for good; re-send the rest of a request the refusal sank."""
        for t in topics:
            if t in self.topics:
                self.topics.remove(t)
        batch = self._requests.get(req_id) if isinstance(req_id, str) else None
        rest = [t for t in batch or () if t not in topics]
        # Through the limiter: an ack naming a topic this request did not ask for would otherwise
        # re-send the whole batch at once on every such ack (a resubscribe storm).
        frames = self._retry(rest) if rest and batch is not None else ()
        return Control(SUB_REJECTED, reason, tuple(topics), frames)

    def _refused_unattributed(self, reason: str, req_id: Any, failed: list[str]) -> Control:
        """A refusal that names no topic ("Internal error, please retry"): transient. The topics stay
        followed (the next connection subscribes them all) and are retried here, with backoff."""
        batch = self._requests.get(req_id) if isinstance(req_id, str) else None
        topics = list(batch or failed)
        frames = self._retry(topics)
        when = "now" if frames else f"in {self.retry_wait():.1f}s"
        return Control(SEND, f"subscribe refused without naming a topic ({reason[:120]}); "
                             f"{len(topics)} topic(s) kept, retrying {when}", (), frames)

    def reset(self) -> None:
        """Forget per-connection state; subclasses with books or merged tickers extend it."""

    def ping_frame(self) -> str:
        return PING_FRAME

    def parse(self, raw: str | bytes) -> list[Update] | Control:
        try:
            msg = loads(raw)
        except (ValueError, RecursionError):
            msg = decode_object(raw)  # raises bad_json, with the decoder's words
        if type(msg) is not dict:
            msg = decode_object(raw)  # raises bad_frame
        topic = msg.get("topic")
        if type(topic) is not str:
            if topic is None:
                return self.control(msg)
            raise ParseError("bad_type", f"topic is {type(topic).__name__}")
        ts = msg.get("ts")
        if type(ts) is not int:
            ts = _ts_of(ts, topic)
        elif ts <= 0:
            raise ParseError("bad_type", f"ts should be epoch ms, got {ts!r:.40} in {topic}")
        route = self._handlers.get(topic)
        if route is not None:
            return route[0](self, route[1], msg.get("type"), msg.get("data"), ts)
        channel, _, symbol = topic.partition(".")
        return self.on_data(channel, symbol, msg.get("type"), msg.get("data"), ts, topic)

    def on_data(self, channel: str, rest: str, kind: Any, data: Any, ts: int, topic: str) -> list[Update] | Control:
        raise ParseError("unknown_topic", topic)

    def control(self, msg: dict) -> Control:
        op = msg.get("op")
        if op == "pong" or (op == "ping" and msg.get("ret_msg") == "pong"):
            return _PONG
        if op == "subscribe" or msg.get("type") == "COMMAND_RESP":
            raw_data = msg.get("data")
            data: dict = raw_data if isinstance(raw_data, dict) else {}
            fail_topics = data.get("failTopics")
            failed = [t for t in fail_topics if isinstance(t, str)] if isinstance(fail_topics, list) else []
            req_id = msg.get("req_id")
            if msg.get("success") is False:
                reason = str(msg.get("ret_msg") or "subscription refused")
                topic = rejected_topic(reason)
                if topic:
                    return self._refused(reason, [topic], req_id)
                # No topic named: nothing to blame, keep every topic and retry.
                return self._refused_unattributed(reason, req_id, failed)
            if failed:
                return self._refused("listed in failTopics", failed, None)
            ok = data.get("successTopics")
            return Control(SUBSCRIBED, f"{len(ok)} topic(s)" if isinstance(ok, list) else self.name)
        if op in ("unsubscribe", "auth"):
            return _IGNORED
        raise ParseError("unknown_frame", describe(msg))


def book_top_fields(bids: list, asks: list) -> dict[str, str | None]:
    """Best bid/ask and sizes; a side that emptied is deleted (None), not left at its old price."""
    bid, ask = (bids[0] if bids else (None, None)), (asks[0] if asks else (None, None))
    return {"best_bid": bid[0], "bid_size": bid[1], "best_ask": ask[0], "ask_size": ask[1]}


def symbol_of(data: dict, key: str, topic_symbol: str) -> str:
    sym = data.get(key)
    if sym != topic_symbol:
        raise ParseError("bad_frame", f"{key}={sym!r:.40} does not match topic symbol {topic_symbol!r}")
    return sym


_SPOT_TICKER_FIELDS = (  # (source field, contract field)
    ("highPrice24h", "high_24h"), ("lowPrice24h", "low_24h"), ("volume24h", "volume_24h"),
    ("turnover24h", "turnover_24h"), ("prevPrice24h", "prev_price_24h"), ("usdIndexPrice", "usd_index_price"),
)


class SpotStream(BybitStream):
    """Spot `tickers.<S>` (full snapshot each push) and optionally `orderbook.1.<S>` for bid/ask."""

    def __init__(self, name: str, url: str, symbols: list[str], *, book_top: bool = True, ping_interval: float = 20.0) -> None:
        topics = [f"tickers.{s}" for s in symbols]
        if book_top:
            topics += [f"orderbook.1.{s}" for s in symbols]
        super().__init__(name, url, "spot", topics, ping_interval)
        self._books: dict[str, OrderBook] = {}
        self._has_ticker: set[str] = set()
        self._handlers.update({f"tickers.{s}": (type(self)._ticker, s) for s in symbols})

    def reset(self) -> None:
        self._books.clear()

    def on_data(self, channel: str, rest: str, kind: Any, data: Any, ts: int, topic: str) -> list[Update] | Control:
        if type(data) is not dict:
            raise ParseError("bad_frame", f"data of {topic} is not an object")
        if channel == "tickers":  # a topic not subscribed (subscribed ones go straight to `_ticker`)
            return self._ticker(rest, None, data, ts)
        if channel == "orderbook" and rest.startswith("1."):
            return self._book_top(rest[2:], kind, data, ts)
        raise ParseError("unknown_topic", topic)

    def _ticker(self, symbol: str, kind: Any, d: Any, ts: int) -> list[Update]:
        """A full ticker snapshot (every push; `kind` is not read)."""
        if type(d) is not dict:
            raise ParseError("bad_frame", f"data of tickers.{symbol} is not an object")
        if d.get("symbol") != symbol:
            symbol_of(d, "symbol", symbol)  # raises
        ltp: Any = d.get("lastPrice")
        try:
            ok = type(ltp) is str and 0.0 < float(ltp) < _INF  # decimal_str(positive=True)'s test, inline
        except ValueError:
            ok = False
        if not ok:
            decimal_str(ltp, "lastPrice", positive=True)  # raises
        fields = decimal_fields(d, _SPOT_TICKER_FIELDS)
        fields["ltp"] = ltp
        fields["original_symbol"] = symbol
        pct = d.get("price24hPcnt")
        if pct is not None:
            fields["price_change_percent"] = fraction_to_percent(pct, "price24hPcnt")
        self._has_ticker.add(symbol)
        return [_new_update(Update, (symbol, fields, ts))]

    def _book_top(self, symbol: str, kind: Any, d: dict, ts: int) -> list[Update]:
        symbol_of(d, "s", symbol)
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = OrderBook()
        u = d.get("u")
        if type(u) is not int:
            raise ParseError("bad_type", f"u should be an int, got {u!r:.40}")
        try:
            if kind == "snapshot":
                book.apply_snapshot(d.get("b") or (), d.get("a") or (), u)
            elif kind == "delta":
                if not book.ready:
                    raise ParseError("book_not_ready", f"delta before snapshot for {symbol}")
                book.apply_delta(d.get("b") or (), d.get("a") or (), u)
            else:
                raise ParseError("bad_frame", f"orderbook type {kind!r:.20}")
        except BookError as exc:
            raise ParseError("bad_book", f"{symbol}: {exc}") from None
        (bids, asks) = book.top(1)
        fields = book_top_fields(bids, asks)
        if symbol not in self._has_ticker:
            fields["original_symbol"] = symbol  # the book may come first; the hash names its symbol from the start
        return [Update(symbol, fields, ts)]


def spot_streams(url: str, symbols: list[str], *, book_top: bool = True, ping_interval: float = 20.0) -> list[SpotStream]:
    """As many spot connections as Bybit's per-connection limits require."""
    chunks = shard_symbols(symbols, lambda s: [f"tickers.{s}"] + ([f"orderbook.1.{s}"] if book_top else []), "spot")
    return [
        SpotStream(f"spot#{i}", url, chunk, book_top=book_top, ping_interval=ping_interval)
        for i, chunk in enumerate(chunks)
    ]


# -- linear (USDT perpetuals): merged tickers + local order book -------------------

LINEAR_BOOK_DEPTHS = (1, 50, 200, 1000)
_LINEAR_TICKER_FIELDS = (  # (source field, contract field)
    ("lastPrice", "ltp"), ("markPrice", "mark_price"), ("indexPrice", "index_price"),
    ("fundingRate", "funding_rate"), ("openInterest", "open_interest"), ("openInterestValue", "open_interest_value"),
    ("volume24h", "volume_24h"), ("turnover24h", "turnover_24h"), ("highPrice24h", "high_24h"),
    ("lowPrice24h", "low_24h"), ("prevPrice24h", "prev_price_24h"),
    ("fundingIntervalHour", "funding_interval_hours"),
)
_LINEAR_TICKER_MAP = dict(_LINEAR_TICKER_FIELDS)


def ms_to_iso(value: str, name: str) -> str:
    decimal_str(value, name)
    if not (value.isascii() and value.isdigit() and len(value) <= 15):
        raise ParseError("bad_value", f"{name} should be epoch milliseconds, got {value!r:.40}")
    return iso_ms(int(value))


class LinearStream(BybitStream):
    """`tickers.<S>` (snapshot, then deltas of changed fields) and `orderbook.<depth>.<S>`.

    A book that can't be trusted (a level that can't be read, crossed after a delta) is
    dropped and its topic re-subscribed for a fresh snapshot, at most once per
    `limiter.interval` seconds per topic; until then its frames are skipped and Redis
    keeps the last good top. A crossed *snapshot* is the exchange's own state:
    re-subscribing would fetch the same, so it is kept but not written until uncrossed.
    """

    def __init__(self, name: str, url: str, symbols: list[str], *, depth: int = 50, levels: int = 10,
                 ping_interval: float = 20.0, limiter: Limiter | None = None) -> None:
        if depth not in LINEAR_BOOK_DEPTHS:
            raise ValueError(f"depth {depth} is not a Bybit linear order-book depth; allowed: {LINEAR_BOOK_DEPTHS}")
        self.depth = depth
        self.levels = min(levels, depth)
        topics = [f"tickers.{s}" for s in symbols] + [f"orderbook.{depth}.{s}" for s in symbols]
        super().__init__(name, url, "linear", topics, ping_interval)
        self.limiter = limiter or Limiter()
        self._books: dict[str, OrderBook] = {}
        self._awaiting: dict[str, str] = {}  # symbol -> why its book was dropped (a resync is due)
        self._crossed_at_source: set[str] = set()  # books crossed as the exchange's snapshot gave them
        self._has_ticker: set[str] = set()
        self._handlers.update({f"tickers.{s}": (type(self)._ticker, s) for s in symbols})

    def reset(self) -> None:
        self._books.clear()
        self._awaiting.clear()  # a new connection subscribes afresh: its first frame is a snapshot
        self._crossed_at_source.clear()
        self._has_ticker.clear()

    def on_data(self, channel: str, rest: str, kind: Any, data: Any, ts: int, topic: str) -> list[Update] | Control:
        if type(data) is not dict:
            raise ParseError("bad_frame", f"data of {topic} is not an object")
        if channel == "tickers":  # a topic not subscribed (subscribed ones go straight to `_ticker`)
            return self._ticker(rest, kind, data, ts)
        if channel == "orderbook":
            depth, _, symbol = rest.partition(".")
            if depth == str(self.depth):
                return self._book(symbol, kind, data, ts, topic)
        raise ParseError("unknown_topic", topic)

    def _ticker(self, symbol: str, kind: Any, d: Any, ts: int) -> list[Update]:
        if type(d) is not dict:
            raise ParseError("bad_frame", f"data of tickers.{symbol} is not an object")
        if d.get("symbol") != symbol:
            symbol_of(d, "symbol", symbol)  # raises
        if kind == "delta":
            if symbol not in self._has_ticker:
                raise ParseError("delta_before_snapshot", f"ticker delta for {symbol} before its snapshot")
        elif kind == "snapshot":
            decimal_str(d.get("lastPrice"), "lastPrice", positive=True)
        else:
            raise ParseError("bad_frame", f"ticker type {kind!r:.20}")
        # Absent = unchanged; "" = not applicable (dated futures' funding): both skipped.
        if kind == "delta":  # only what changed: the frame's own keys are walked
            fields = changed_decimal_fields(d, _LINEAR_TICKER_MAP, positive=("ltp",))
        else:
            fields = decimal_fields(d, _LINEAR_TICKER_FIELDS, positive=("ltp",))
        nft = d.get("nextFundingTime")
        if nft is not None and nft != "" and nft != "0":
            fields["next_funding_time"] = ms_to_iso(nft, "nextFundingTime")
        pct = d.get("price24hPcnt")
        if pct is not None and pct != "":
            fields["price_change_percent"] = fraction_to_percent(pct, "price24hPcnt")
        if kind == "snapshot":
            fields["original_symbol"] = symbol
            self._has_ticker.add(symbol)
        return [_new_update(Update, (symbol, fields, ts))] if fields else []

    def _resync(self, symbol: str, topic: str, why: str) -> Control:
        """Drop the local book and ask for a fresh snapshot of this one topic, if the limiter allows."""
        self._books.pop(symbol, None)
        self._awaiting[symbol] = why
        if not self.limiter.allow(topic):
            n = self.limiter.suppressed.get(topic, 0)
            raise ParseError("resync_suppressed", f"{topic}: {why}; re-subscribing in {self.limiter.wait(topic):.1f}s "
                                                  f"(at most one per {self.limiter.interval:g}s; {n} suppressed)")
        frames = (subscribe_frame(f"unsub-{symbol}", [topic], "unsubscribe"), self._subscribe([topic]))
        return Control(SEND, f"{topic}: {why}; re-subscribing for a new snapshot", (), frames)

    def _book(self, symbol: str, kind: Any, d: dict, ts: int, topic: str) -> list[Update] | Control:
        symbol_of(d, "s", symbol)
        u = d.get("u")
        if type(u) is not int:
            raise ParseError("bad_type", f"u should be an int, got {u!r:.40}")
        if u <= 0:
            raise ParseError("bad_value", f"u should be a positive update id, got {u}")
        if kind not in ("snapshot", "delta"):
            raise ParseError("bad_frame", f"orderbook type {kind!r:.20}")
        book = self._books.get(symbol)
        snapshot = kind == "snapshot" or u == 1  # u=1: the service restarted; its frame replaces the book
        try:
            if snapshot:
                if book is None:
                    book = self._books[symbol] = OrderBook()
                book.apply_snapshot(d.get("b") or (), d.get("a") or (), u)
                self._awaiting.pop(symbol, None)
                self._crossed_at_source.discard(symbol)
            else:
                if book is None or not book.ready:
                    why = self._awaiting.get(symbol)
                    if why is not None and self.limiter.ready(topic):
                        return self._resync(symbol, topic, f"{why}; no snapshot since")  # the last ask went unanswered
                    return []  # waiting for the snapshot a subscription brings
                if book.update_id is not None and u <= book.update_id:
                    raise ParseError("stale_book_update", f"{topic}: u={u} after {book.update_id}")
                book.apply_delta(d.get("b") or (), d.get("a") or (), u)
        except BookError as exc:
            return self._resync(symbol, topic, f"bad level ({exc})")
        if book.crossed():
            if snapshot or symbol in self._crossed_at_source:
                # The exchange sent it crossed: a new subscription would bring the same book.
                self._crossed_at_source.add(symbol)
                raise ParseError("crossed_book", f"{topic}: crossed since snapshot (u={u}); kept, not written until uncrossed")
            return self._resync(symbol, topic, f"crossed book after u={u}")
        self._crossed_at_source.discard(symbol)
        bids, asks = book.top(self.levels)
        fields: dict[str, str | None] = {"bids": dumps(bids).decode(), "asks": dumps(asks).decode(), "update_id": str(u)}
        if symbol not in self._has_ticker:
            fields["original_symbol"] = symbol  # the book may come before the ticker snapshot
        fields.update(book_top_fields(bids, asks))
        fields["spread"] = f"{float(asks[0][0]) - float(bids[0][0]):.10g}" if bids and asks else None
        return [Update(symbol, fields, ts)]


def linear_streams(url: str, symbols: list[str], *, depth: int = 50, levels: int = 10,
                   ping_interval: float = 20.0) -> list[LinearStream]:
    chunks = shard_symbols(symbols, lambda s: [f"tickers.{s}", f"orderbook.{depth}.{s}"], "linear")
    return [LinearStream(f"linear#{i}", url, c, depth=depth, levels=levels, ping_interval=ping_interval)
            for i, c in enumerate(chunks)]


# -- options: tickers with Greeks, chain discovery over REST -----------------------

_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_OPTION_TICKER_FIELDS = (  # (source field, contract field)
    ("markPrice", "mark_price"), ("bidPrice", "best_bid"), ("askPrice", "best_ask"), ("bidSize", "bid_size"),
    ("askSize", "ask_size"), ("bidIv", "bid_iv"), ("askIv", "ask_iv"), ("markPriceIv", "implied_volatility"),
    ("delta", "delta"), ("gamma", "gamma"), ("vega", "vega"), ("theta", "theta"),
    ("underlyingPrice", "underlying_price"), ("indexPrice", "index_price"), ("openInterest", "open_interest"),
    ("volume24h", "volume_24h"), ("turnover24h", "turnover_24h"), ("highPrice24h", "high_24h"),
    ("lowPrice24h", "low_24h"),
)


def parse_option_symbol(symbol: str) -> dict[str, str]:
    """'BTC-6JAN23-17500-C' or 'BTC-13FEB25-89000-P-USDT' -> static contract fields."""
    parts = symbol.split("-")
    if len(parts) not in (4, 5) or parts[3] not in ("C", "P"):
        raise ParseError("bad_symbol", f"not a Bybit option symbol: {symbol!r:.60}")
    base, expiry, strike, kind = parts[:4]
    day, month, year = expiry[:-5], expiry[-5:-2], expiry[-2:]
    if not (expiry.isascii() and day.isdigit() and month in _MONTHS and year.isdigit()):
        raise ParseError("bad_symbol", f"bad expiry in {symbol!r:.60}")
    decimal_str(strike, "strike", positive=True)
    return {
        "option_type": "CALL" if kind == "C" else "PUT",
        "underlying": base,
        "strike_price": strike,
        "expiry_date": f"{int(day):02d}{_MONTHS[month]:02d}{year}",  # DDMMYY, as on every exchange
        "expiry": f"20{year}-{_MONTHS[month]:02d}-{int(day):02d}",
        "settle_coin": parts[4] if len(parts) == 5 else "USDC",
    }


class OptionStream(BybitStream):
    """`tickers.<option symbol>`: a full snapshot every push, Greeks included."""

    def __init__(self, name: str, url: str, symbols: list[str], *, ping_interval: float = 20.0) -> None:
        super().__init__(name, url, "option", [f"tickers.{s}" for s in symbols], ping_interval)
        self._described: set[str] = set()

    def reset(self) -> None:
        self._described.clear()

    def on_data(self, channel: str, rest: str, kind: Any, data: Any, ts: int, topic: str) -> list[Update]:
        if channel != "tickers":
            raise ParseError("unknown_topic", topic)
        if type(data) is not dict:
            raise ParseError("bad_frame", f"data of {topic} is not an object")
        symbol_of(data, "symbol", rest)
        last = decimal_str(data.get("lastPrice"), "lastPrice")
        if float(last) < 0:
            raise ParseError("bad_value", f"lastPrice out of range: {last!r:.40}")
        fields: dict[str, str | None] = dict(decimal_fields(data, _OPTION_TICKER_FIELDS))
        if float(last) > 0:  # "0" until the contract first trades: no trade, no `ltp` (mark_price is always there)
            fields["ltp"] = last
        for side in ("bid", "ask"):  # a price of "0" is no quote on that side: its old values are deleted
            price = fields.get(f"best_{side}")
            if price is not None and float(price) == 0:
                fields[f"best_{side}"] = fields[f"{side}_size"] = fields[f"{side}_iv"] = None
        change = data.get("change24h")
        if change not in (None, ""):
            fields["price_change_percent"] = percent_from_fraction(decimal_str(change, "change24h"))
        if rest not in self._described:  # static fields once per connection; Redis keeps them
            fields.update(parse_option_symbol(rest))
            fields["original_symbol"] = rest
            self._described.add(rest)
        return [Update(rest, fields, ts)]


def option_streams(url: str, symbols: list[str], *, ping_interval: float = 20.0) -> list[OptionStream]:
    shards = shard_symbols(symbols, lambda s: [f"tickers.{s}"], "option")
    return [OptionStream(f"option#{i}", url, shard, ping_interval=ping_interval) for i, shard in enumerate(shards)]


# -- REST: paths and pure readers of the replies (the calls are made by the wiring) --------

INSTRUMENTS_PATH = "/v5/market/instruments-info"
TICKERS_PATH = "/v5/market/tickers"
INSTRUMENTS_PAGE_LIMIT = 1000


def _v5_ok(body: dict) -> bool:
    return body.get("retCode") == 0 and isinstance(body.get("result"), dict)


def result_of(body: Any, url: str) -> dict:
    """The `result` of a V5 reply ({retCode, retMsg, result}), or ParseError."""
    result: dict = unwrap(body, url, _v5_ok)
    return result


def instruments_page(body: Any) -> tuple[list[dict], str | None]:
    """One page of instruments-info: its rows and the next page's cursor."""
    result = result_of(body, INSTRUMENTS_PATH)
    rows = [i for i in result.get("list") or () if isinstance(i, dict)]
    return rows, result.get("nextPageCursor") or None


def option_params(base_coin: str) -> dict[str, Any]:
    """instruments-info defaults to BTC: ask per base coin."""
    return {"category": "option", "baseCoin": base_coin, "limit": INSTRUMENTS_PAGE_LIMIT}


def option_contracts(instruments: list[dict]) -> list[Contract]:
    """Trading option contracts for the chain rule; entries that can't be read are skipped."""
    out = []
    for inst in instruments:
        try:
            symbol = inst["symbol"]
            contract = parse_option_symbol(symbol)
            delivery = int(inst["deliveryTime"])
        except (KeyError, TypeError, ValueError, ParseError):
            continue
        if inst.get("status") != "Trading":
            continue
        out.append(Contract(symbol, inst.get("baseCoin") or contract["underlying"], delivery,
                            float(contract["strike_price"]), inst.get("settleCoin") or contract["settle_coin"]))
    return out


def spot_ticker_params(coin: str, quote: str = "USDT") -> dict[str, str]:
    return {"category": "spot", "symbol": f"{coin}{quote}"}


def last_price(body: Any) -> float | None:
    """The spot last price in a tickers reply (centres the strike window), None if absent."""
    for item in result_of(body, TICKERS_PATH).get("list") or ():
        try:
            return float(item["lastPrice"])
        except (KeyError, TypeError, ValueError):
            return None
    return None


# -- markets: how the panel reads a Bybit symbol ----------------------------------------

_DATED = re.compile(r"^([A-Z0-9]+)-(\d{1,2})([A-Z]{3})(\d{2})$")


def market_of(symbol: str, kind: str) -> Market | None:
    """Spot and linear `<BASE><QUOTE>` (BTCUSDT); linear `<BASE>PERP` is the USDC perpetual; a
    `-DMMMYY` suffix is a dated future (BTCUSDT-26DEC25 on USDT, BTC-26DEC25 Bybit's USDC one);
    option names are not markets."""
    if kind == DERIVATIVE:
        dated = _DATED.match(symbol)
        if dated:
            pre, expiry = dated.group(1), expiry_date(*dated.group(2, 3, 4))
            if expiry is None:
                return None
            return market(*(split_quote(pre) or (pre, "USDC")), FUTURE, expiry)
        if "-" in symbol:
            return None  # an option name or something unknown
        if symbol.endswith("PERP"):
            return market(symbol[:-4], "USDC", PERPETUAL)
    elif "-" in symbol:
        return None
    split = split_quote(symbol)
    return market(*split, PERPETUAL if kind == DERIVATIVE else SPOT) if split else None


# -- feeds: how each is wired ------------------------------------------------------------------

def spot(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    return [ctx.connection(s) for s in spot_streams(svc.url, list(svc.symbols), book_top=svc.book_top,
                                                    ping_interval=svc.ping_interval)]


def linear(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    if svc.depth not in LINEAR_BOOK_DEPTHS:
        raise ConfigError(f"{svc.path}.depth", f"{svc.depth} is not offered by Bybit", ", ".join(map(str, LINEAR_BOOK_DEPTHS)))
    return [ctx.connection(s) for s in linear_streams(svc.url, list(svc.symbols), depth=svc.depth, levels=svc.levels,
                                                      ping_interval=svc.ping_interval)]


def options(ctx: FeedContext) -> list[Source]:
    """Explicit symbols (checked live) plus the chain the selection rule picks, re-discovered over REST."""
    svc = ctx.service
    rest_url = svc.rest_url
    rule = ChainRule.from_config(svc.selection, f"{svc.path}.selection")
    explicit = list(svc.symbols)

    def discover(rest: Rest) -> list[str]:
        coins = sorted(set(rule.underlyings) | {s.split("-")[0] for s in explicit})
        url = f"{rest_url}{INSTRUMENTS_PATH}"
        contracts = [c for coin in coins for c in option_contracts(rest.pages(url, option_params(coin), instruments_page, "cursor"))]
        now = now_ms()
        prices = {}
        for coin in rule.underlyings if rule.strike_range_pct else ():
            price = rest.get_parsed(f"{rest_url}{TICKERS_PATH}", spot_ticker_params(coin), last_price)
            if price:
                prices[coin] = price
        chosen, no_price = rule.select(contracts, prices, now)
        for coin in no_price:
            ctx.stats.error("no_spot_price", f"no spot price for {coin}; its chain is skipped this round", parse=False)
        live = {c.symbol for c in contracts if c.expiry_ms > now}
        return sorted(set(chosen) | set(ctx.accept_listed(explicit, live, "live Bybit option (unknown, expired or not trading)")))

    return [ctx.discovered(discover, lambda symbols: [ctx.connection(s) for s in option_streams(
        svc.url, symbols, ping_interval=svc.ping_interval)])]


EXCHANGE = Exchange(
    name="bybit",
    display="Bybit",
    feeds=(
        Feed("bybit_spot", SPOT, spot, "Bybit spot tickers and best bid/ask"),
        Feed("bybit_futures_orderbook", DERIVATIVE, linear, "Bybit USDT perpetuals: tickers, funding and a local order book"),
        Feed("bybit_options", OPTION, options, "Bybit option chains with Greeks", uses_rest=True),
        Feed("bybit_spot_testnet_spot", SPOT, spot, "the spot feed on Bybit's testnet"),
    ),
    market=market_of,
    funding_interval_hours=8.0,
    simulator="tests.sim.bybit:BybitSim",
)
