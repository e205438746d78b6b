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
- data frames carry "topic", "type" (snapshot|delta), "ts" (ms) and "data";
  every number is a string.
"""

from __future__ import annotations

import json
import math
from typing import Any

from workers.runtime.book import BookError, OrderBook
from workers.runtime.model import (
    IGNORED,
    PONG,
    SUB_REJECTED,
    SUBSCRIBED,
    Control,
    ParseError,
    Update,
)

MAX_ARGS_PER_REQUEST = {"spot": 10, "linear": 200, "option": 200}
MAX_ARGS_PER_CONNECTION = {"spot": 400, "linear": 400, "option": 2000}
MAX_ARGS_CHARS_PER_CONNECTION = 21_000
PING_FRAME = '{"op":"ping"}'

_IGNORED = Control(IGNORED)
_PONG = Control(PONG)


def decimal_str(value: Any, name: str, *, positive: bool = False, allow_empty: bool = False) -> str:
    """Check that a field is a finite decimal string and return it unchanged."""
    if type(value) is not str:
        raise ParseError("bad_type", f"{name} should be a decimal string, got {type(value).__name__} {value!r:.40}")
    if not value:
        if allow_empty:
            return value
        raise ParseError("bad_value", f"{name} is empty")
    try:
        number = float(value)
    except ValueError:
        raise ParseError("bad_value", f"{name} is not a number: {value!r:.40}") from None
    if not math.isfinite(number) or number < 0 and positive or (positive and number == 0):
        raise ParseError("bad_value", f"{name} out of range: {value!r:.40}")
    return value


def percent_from_fraction(value: str) -> str:
    """Bybit's price24hPcnt is a fraction ("-0.0049"); the contract stores percent ("-0.49")."""
    return f"{float(value) * 100:.6g}"


def shard_topics(topics: list[str], category: str) -> list[list[str]]:
    """Split topics over connections within Bybit's per-connection limits."""
    cap = MAX_ARGS_PER_CONNECTION[category]
    shards: list[list[str]] = [[]]
    chars = 0
    for topic in topics:
        cost = len(topic) + 3  # quotes and comma in the serialized args array
        if len(shards[-1]) >= cap or chars + cost > MAX_ARGS_CHARS_PER_CONNECTION:
            shards.append([])
            chars = 0
        shards[-1].append(topic)
        chars += cost
    return [s for s in shards if s]


def batches(topics: list[str], category: str) -> list[list[str]]:
    per = MAX_ARGS_PER_REQUEST[category]
    return [topics[i:i + per] for i in range(0, len(topics), per)]


def subscribe_frame(req_id: str, topics: list[str], op: str = "subscribe") -> str:
    return json.dumps({"req_id": req_id, "op": op, "args": topics})


def rejected_topic(ret_msg: str) -> str:
    """'error:handler not found,topic:orderbook.500.BTCUSDT' -> 'orderbook.500.BTCUSDT'."""
    _, sep, topic = ret_msg.rpartition("topic:")
    return topic.strip() if sep else ""


class BybitStream:
    """One Bybit public connection: a category, its topics, and the frame dispatch."""

    binary_ok = False

    def __init__(self, name: str, url: str, category: str, topics: list[str], ping_interval: float = 20.0) -> None:
        self.name = name
        self.url = url
        self.category = category
        self.topics = topics
        self.ping_interval = ping_interval

    def on_connect(self) -> list[str]:
        self.reset()
        self._requests: dict[str, list[str]] = {}
        return [self._subscribe(batch) for batch in batches(self.topics, self.category)]

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
        frames = (self._subscribe(rest),) if rest and batch is not None else ()
        return Control(SUB_REJECTED, reason, tuple(topics), frames)

    def reset(self) -> None:
        """Forget per-connection state; subclasses with books or merged tickers extend it."""

    def ping_frame(self) -> str:
        return PING_FRAME

    def parse(self, raw: str | bytes) -> list[Update] | Control:
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            raise ParseError("bad_json", f"{exc} in {raw[:120]!r}") from None
        if type(msg) is not dict:
            raise ParseError("bad_frame", f"expected a JSON object, got {type(msg).__name__}")
        topic = msg.get("topic")
        if topic is None:
            return self.control(msg)
        if type(topic) is not str:
            raise ParseError("bad_type", f"topic is {type(topic).__name__}")
        ts = msg.get("ts")
        if type(ts) is not int or ts <= 0:
            raise ParseError("bad_type", f"ts should be epoch ms, got {ts!r:.40} in {topic}")
        data = msg.get("data")
        channel, _, symbol = topic.partition(".")
        return self.on_data(channel, symbol, msg.get("type"), data, ts, topic)

    def on_data(self, channel: str, rest: str, kind: Any, data: Any, ts: int, topic: str) -> list[Update]:
        raise ParseError("unknown_topic", topic)

    def control(self, msg: dict) -> Control:
        op = msg.get("op")
        if op == "pong" or (op == "ping" and msg.get("ret_msg") == "pong"):
            return _PONG
        if op == "subscribe" or msg.get("type") == "COMMAND_RESP":
            data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
            failed = [t for t in data.get("failTopics") or () if isinstance(t, str)]
            req_id = msg.get("req_id")
            if msg.get("success") is False:
                reason = str(msg.get("ret_msg") or "subscription refused")
                topic = rejected_topic(reason)
                if topic:
                    return self._refused(reason, [topic], req_id)
                # No topic named: the whole request is refused.
                return self._refused(reason, list(self._requests.get(req_id) or failed or ["?"]), None)
            if failed:
                return self._refused("listed in failTopics", failed, None)
            ok = data.get("successTopics")
            return Control(SUBSCRIBED, f"{len(ok)} topic(s)" if isinstance(ok, list) else self.name)
        if op in ("unsubscribe", "auth"):
            return _IGNORED
        raise ParseError("unknown_frame", f"{json.dumps(msg)[:160]}")


def symbol_of(data: dict, key: str, topic_symbol: str) -> str:
    sym = data.get(key)
    if sym != topic_symbol:
        raise ParseError("bad_frame", f"{key}={sym!r:.40} does not match topic symbol {topic_symbol!r}")
    return sym


class SpotStream(BybitStream):
    """Spot `tickers.<S>` (full snapshot each push) and optionally `orderbook.1.<S>` for bid/ask."""

    def __init__(self, name: str, url: str, symbols: list[str], *, book_top: bool = True, ping_interval: float = 20.0) -> None:
        topics = [f"tickers.{s}" for s in symbols]
        if book_top:
            topics += [f"orderbook.1.{s}" for s in symbols]
        super().__init__(name, url, "spot", topics, ping_interval)
        self._books: dict[str, OrderBook] = {}
        self._has_ticker: set[str] = set()

    def reset(self) -> None:
        self._books.clear()

    def on_data(self, channel: str, rest: str, kind: Any, data: Any, ts: int, topic: str) -> list[Update]:
        if type(data) is not dict:
            raise ParseError("bad_frame", f"data of {topic} is not an object")
        if channel == "tickers":
            return [self._ticker(rest, data, ts)]
        if channel == "orderbook" and rest.startswith("1."):
            return self._book_top(rest[2:], kind, data, ts)
        raise ParseError("unknown_topic", topic)

    def _ticker(self, symbol: str, d: dict, ts: int) -> Update:
        symbol_of(d, "symbol", symbol)
        fields = {
            "ltp": decimal_str(d.get("lastPrice"), "lastPrice", positive=True),
            "original_symbol": symbol,
        }
        for src, dst in (("highPrice24h", "high_24h"), ("lowPrice24h", "low_24h"), ("volume24h", "volume_24h"),
                         ("turnover24h", "turnover_24h"), ("prevPrice24h", "prev_price_24h"),
                         ("usdIndexPrice", "usd_index_price")):
            v = d.get(src)
            if v is not None and v != "":
                fields[dst] = decimal_str(v, src)
        pct = d.get("price24hPcnt")
        if pct is not None:
            fields["price_change_percent"] = percent_from_fraction(decimal_str(pct, "price24hPcnt"))
        self._has_ticker.add(symbol)
        return Update(symbol, fields, ts)

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
        if symbol not in self._has_ticker:
            return []  # `ltp` must be in the hash before anything else is written
        (bids, asks) = book.top(1)
        fields = {}
        if bids:
            fields["bid"], fields["bid_size"] = bids[0]
        if asks:
            fields["ask"], fields["ask_size"] = asks[0]
        return [Update(symbol, fields, ts)] if fields else []


def spot_streams(url: str, symbols: list[str], *, book_top: bool = True, ping_interval: float = 20.0) -> list[SpotStream]:
    """As many spot connections as Bybit's per-connection limits require."""
    per_conn = MAX_ARGS_PER_CONNECTION["spot"] // (2 if book_top else 1)
    chunks = [symbols[i:i + per_conn] for i in range(0, len(symbols), per_conn)] or [[]]
    return [
        SpotStream(f"spot#{i}", url, chunk, book_top=book_top, ping_interval=ping_interval)
        for i, chunk in enumerate(chunks)
    ]
