"""Binance spot and USDⓈ-M perpetual public market data: the whole protocol in one place.

Facts and their sources: docs/exchanges/binance.md (samples in tests/samples/binance/).
- sockets: spot `<root>/ws`; futures split by path: `<root>/public/ws` carries `@bookTicker`,
  `<root>/market/ws` carries `@aggTrade`, `@ticker`, `@markPrice@1s` (a stream on the wrong path is
  acked and silent), so one futures feed has connections on both;
- subscribe `{"method":"SUBSCRIBE","params":[streams],"id":N}` -> `{"result":null,"id":N}`; stream names
  are lowercase, payloads carry the uppercase symbol `s`; errors `{"code":n,"msg":..,"id"?}`;
- a SUBSCRIBE naming a stream that does not exist is acked too and then silent: symbols are checked
  against exchangeInfo before they are subscribed;
- limits: spot 1024 streams and 5 incoming messages/s per connection (pongs count), futures 200 streams
  (the stricter copy of the docs) and 10/s; every connection is cut at 24 h (spot may send a
  `serverShutdown` event first);
- heartbeat: the server sends RFC 6455 pings (spot every 20 s, pong within 1 min; futures every 3 min,
  within 10 min): the runtime answers each with a pong echoing its payload; no application ping;
- prices and quantities are decimal strings, times epoch ms; spot `@bookTicker` has no `e` and no time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from workers.exchanges.common import decimal_str, decode_object, describe
from workers.runtime.declare import DERIVATIVE, SPOT, Exchange, Feed
from workers.runtime.limiter import Limiter
from workers.runtime.markets import PERPETUAL, Market, market, split_quote
from workers.runtime.model import IGNORED, PLANNED_RECONNECT, SUB_REJECTED, SUBSCRIBED, Control, ParseError, RestError, Update
from workers.runtime.sharding import shard
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import iso_ms, now_ms

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

SPOT_WS_PATH = "/ws"
FUTURES_PUBLIC_PATH = "/public/ws"   # book data
FUTURES_MARKET_PATH = "/market/ws"   # trades, tickers, mark price
SPOT_EXCHANGE_INFO_PATH = "/api/v3/exchangeInfo"
FUTURES_EXCHANGE_INFO_PATH = "/fapi/v1/exchangeInfo"
FUNDING_INFO_PATH = "/fapi/v1/fundingInfo"
OPEN_INTEREST_PATH = "/fapi/v1/openInterest"

MAX_STREAMS_PER_CONNECTION = {"spot": 1024, "futures": 200}
PARAMS_PER_SUBSCRIBE = 100        # the docs give no number (an error "too many parameters" exists): keep frames small
# Incoming messages are capped per connection (spot 5/s, futures 10/s; pongs count): subscribe frames
# leave SUBSCRIBE_BURST at once, then one per SUBSCRIBE_INTERVAL_S.
SUBSCRIBE_BURST = 2
SUBSCRIBE_INTERVAL_S = 0.5
CONNECTION_LIFETIME_S = 24 * 3600
MAX_CONNECTION_AGE_S = 23.5 * 3600   # replaced before the exchange's cut: a planned reconnect
DEFAULT_FUNDING_INTERVAL_HOURS = 8   # perpetuals not listed by fundingInfo (UNCONFIRMED default)
FUTURES_WEIGHT_PER_MIN = 2400        # REQUEST_WEIGHT in the futures exchangeInfo's rateLimits
OPEN_INTEREST_WEIGHT = 1             # per symbol and call
OPEN_INTEREST_SHARE = 0.1            # open-interest polls use at most this share of the weight budget

_IGNORED = Control(IGNORED)


def spot_streams_of(symbol: str, book_top: bool = True) -> list[str]:
    s = symbol.lower()
    return [f"{s}@trade", f"{s}@ticker"] + ([f"{s}@bookTicker"] if book_top else [])


def market_streams_of(symbol: str) -> list[str]:
    s = symbol.lower()
    return [f"{s}@aggTrade", f"{s}@ticker", f"{s}@markPrice@1s"]


def public_streams_of(symbol: str) -> list[str]:
    return [f"{symbol.lower()}@bookTicker"]


def subscribe_frame(req_id: int, streams: list[str], method: str = "SUBSCRIBE") -> str:
    return json.dumps({"method": method, "params": streams, "id": req_id}, separators=(",", ":"))


def _ms(value: Any, name: str) -> int:
    if type(value) is not int or value <= 0 or value > 10**14:
        raise ParseError("bad_type", f"{name} should be epoch ms, got {value!r:.40}")
    return value


def _price(d: dict, src: str) -> str:
    return decimal_str(d.get(src), src, positive=True)


def _num(d: dict, src: str) -> str:
    return decimal_str(d.get(src), src)


def _side(fields: dict[str, str | None], d: dict, price_src: str, size_src: str, price_dst: str, size_dst: str) -> None:
    """One side of the book top; a price of 0 is no quote: the side's fields are deleted."""
    price = _num(d, price_src)
    if float(price) > 0:
        fields[price_dst] = price
        fields[size_dst] = _num(d, size_src)
    elif float(price) == 0:
        fields[price_dst] = fields[size_dst] = None
    else:
        raise ParseError("bad_value", f"{price_src} out of range: {price!r:.40}")


class BinanceStream(WsStream):
    """One Binance connection: its streams, the paced SUBSCRIBE frames and the event dispatch."""

    binary_ok = False
    silence_timeout: float | None = None  # the configured window
    ping_interval: float | None = None    # the server pings; the runtime answers with pongs

    def __init__(self, name: str, url: str, market_kind: str, symbols: Iterable[str], streams: list[str], *,
                 max_connection_age_s: float | None = MAX_CONNECTION_AGE_S) -> None:
        self.name = name
        self.url = url
        self.market_kind = market_kind           # "spot" or "futures"
        self.streams = streams
        self.symbols = frozenset(symbols)        # uppercase, as payloads name them
        self.max_connection_age_s = max_connection_age_s
        self.clock: Callable[[], float] = time.monotonic
        self._new_connection_state()

    def _new_connection_state(self) -> None:
        self._requests: dict[int, list[str]] = {}   # SUBSCRIBE id -> its streams
        self._unsubscribes: set[int] = set()
        self._queue: list[str] = []                 # subscribe frames waiting for their turn
        self._pace = Limiter(SUBSCRIBE_INTERVAL_S, SUBSCRIBE_BURST, clock=lambda: self.clock())
        self._named: set[str] = set()               # symbols whose original_symbol went out on this connection

    # -- subscribing --------------------------------------------------------------------

    def _frames(self) -> list[str]:
        frames = []
        for i in range(0, len(self.streams), PARAMS_PER_SUBSCRIBE):
            req_id = len(self._requests) + 1
            batch = self.streams[i:i + PARAMS_PER_SUBSCRIBE]
            self._requests[req_id] = batch
            frames.append(subscribe_frame(req_id, batch))
        return frames

    def _paced(self, frames: list[str]) -> list[str]:
        """The frames that may leave now; the rest wait for `due_frames`."""
        self._queue.extend(frames)
        return self._drain()

    def _drain(self) -> list[str]:
        out = []
        while self._queue and self._pace.allow("subscribe"):
            out.append(self._queue.pop(0))
        return out

    def on_connect(self) -> list[str]:
        self._new_connection_state()
        return self._paced(self._frames())

    def resubscribe_frames(self) -> list[str]:
        """Every stream again on this connection (no data came for too long); Binance acks a repeat."""
        self._named.clear()
        return self._paced(self._frames())

    def due_frames(self) -> list[str]:
        """Subscribe frames whose turn has come (called by the keepalive thread)."""
        if not self._queue or not self._pace.ready("subscribe"):
            return []
        return self._drain()

    def ping_frame(self) -> str | None:
        return None

    # -- frames ---------------------------------------------------------------------------

    def parse(self, raw: str | bytes) -> list[Update] | Control:
        msg = decode_object(raw)
        event = msg.get("e")
        if event is None:
            if "stream" in msg:  # combined-stream wrapper
                data = msg.get("data")
                if type(data) is not dict:
                    raise ParseError("bad_frame", "combined-stream frame without an object in data")
                msg, event = data, data.get("e")
            if event is None:
                if "u" in msg and "s" in msg:
                    return self._book_top(msg, now_ms())  # spot @bookTicker: no `e`, no time
                return self._control(msg)
        if event == "trade" or event == "aggTrade":
            return self._trade(msg)
        if event == "bookTicker":
            return self._book_top(msg, _ms(msg.get("E"), "E"))
        if event == "24hrTicker":
            return self._ticker(msg)
        if event == "markPriceUpdate":
            return self._mark(msg)
        if event == "serverShutdown":
            return Control(PLANNED_RECONNECT, "serverShutdown event: the server is about to close")
        raise ParseError("unknown_event", f"e={event!r:.40}")

    def _symbol(self, d: dict) -> str:
        sym = d.get("s")
        if type(sym) is not str or sym not in self.symbols:
            raise ParseError("unknown_symbol", f"s={sym!r:.40} is not followed on {self.name}")
        return sym

    def _update(self, sym: str, fields: dict[str, str | None], ts: int) -> list[Update]:
        if sym not in self._named:
            fields["original_symbol"] = sym
            self._named.add(sym)
        return [Update(sym, fields, ts)]

    def _trade(self, d: dict) -> list[Update]:
        sym = self._symbol(d)
        return self._update(sym, {"ltp": _price(d, "p")}, _ms(d.get("E"), "E"))

    def _book_top(self, d: dict, ts: int) -> list[Update]:
        sym = self._symbol(d)
        fields: dict[str, str | None] = {}
        _side(fields, d, "b", "B", "best_bid", "bid_size")
        _side(fields, d, "a", "A", "best_ask", "ask_size")
        return self._update(sym, fields, ts)

    def _ticker(self, d: dict) -> list[Update]:
        sym = self._symbol(d)
        fields: dict[str, str | None] = {
            "volume_24h": _num(d, "v"), "turnover_24h": _num(d, "q"), "high_24h": _num(d, "h"),
            "low_24h": _num(d, "l"), "prev_price_24h": _num(d, "o"), "price_change_percent": _num(d, "P"),
        }
        return self._update(sym, fields, _ms(d.get("E"), "E"))

    def _mark(self, d: dict) -> list[Update]:
        sym = self._symbol(d)
        fields: dict[str, str | None] = {"mark_price": _price(d, "p"), "index_price": _num(d, "i")}
        rate = d.get("r")
        if rate != "":  # "" on delivery contracts: no funding
            fields["funding_rate"] = decimal_str(rate, "r")
        nft = d.get("T")
        if nft != 0:
            fields["next_funding_time"] = iso_ms(_ms(nft, "T"))
        return self._update(sym, fields, _ms(d.get("E"), "E"))

    def _control(self, msg: dict) -> Control:
        req_id = msg.get("id")
        if "result" in msg:
            if type(req_id) is int and req_id in self._requests:
                return Control(SUBSCRIBED, f"{len(self._requests[req_id])} stream(s) (request {req_id})")
            return _IGNORED  # an unsubscribe, LIST_SUBSCRIPTIONS or property reply
        code = msg.get("code")
        if code is not None:
            text = str(msg.get("msg"))[:200]
            streams = self._requests.get(req_id) if type(req_id) is int else None
            if streams:
                return Control(SUB_REJECTED, f"Binance error {code}: {text}", tuple(streams))
            raise ParseError("error_reply", f"Binance error {code!r:.20}: {text}")
        raise ParseError("unknown_frame", describe(msg))


def spot_streams(url: str, symbols: list[str], *, book_top: bool = True,
                 max_connection_age_s: float | None = MAX_CONNECTION_AGE_S) -> list[BinanceStream]:
    """Spot connections for `symbols` (url: the socket root), within 1024 streams each."""
    plan = shard(symbols, lambda s: spot_streams_of(s, book_top), max_topics=MAX_STREAMS_PER_CONNECTION["spot"])
    return [BinanceStream(f"spot#{i}", url.rstrip("/") + SPOT_WS_PATH, "spot", group,
                          [t for s in group for t in spot_streams_of(s, book_top)], max_connection_age_s=max_connection_age_s)
            for i, group in enumerate(plan) if group]


def futures_streams(url: str, symbols: list[str], *,
                    max_connection_age_s: float | None = MAX_CONNECTION_AGE_S) -> list[BinanceStream]:
    """Futures connections: `/market` (trades, tickers, mark) and `/public` (book top), 200 streams each."""
    root, cap = url.rstrip("/"), MAX_STREAMS_PER_CONNECTION["futures"]
    out = []
    for path, kind, streams_of in ((FUTURES_MARKET_PATH, "market", market_streams_of),
                                   (FUTURES_PUBLIC_PATH, "public", public_streams_of)):
        for i, group in enumerate(shard(symbols, streams_of, max_topics=cap)):
            if group:
                out.append(BinanceStream(f"{kind}#{i}", root + path, "futures", group,
                                         [t for s in group for t in streams_of(s)], max_connection_age_s=max_connection_age_s))
    return out


# -- REST: paths and pure readers of the replies -------------------------------------------

def _symbols_of(body: Any, what: str) -> list[dict]:
    rows = body.get("symbols") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ParseError("bad_frame", f"{what}: no symbols list")
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("symbol"), str)]


def spot_listing(body: Any) -> dict[str, str]:
    """Spot exchangeInfo -> {symbol: status}."""
    return {r["symbol"]: str(r.get("status")) for r in _symbols_of(body, "spot exchangeInfo")}


def futures_listing(body: Any) -> dict[str, str]:
    """Futures exchangeInfo -> {symbol: "<contractType> <status>"}."""
    return {r["symbol"]: f"{r.get('contractType')} {r.get('status')}" for r in _symbols_of(body, "futures exchangeInfo")}


SPOT_LIVE = "TRADING"
FUTURES_LIVE = "PERPETUAL TRADING"


def selection(wanted: Iterable[str], listing: Mapping[str, str], live: str, what: str) -> tuple[list[str], dict[str, str]]:
    """The wanted symbols that are live, and each other one with its reason."""
    ok, refused = [], {}
    for sym in wanted:
        state = listing.get(sym)
        if state == live:
            ok.append(sym)
        else:
            refused[sym] = f"not a {what} on Binance" + (f" (listed as {state})" if state else " (not listed)")
    return ok, refused


def funding_intervals(body: Any) -> dict[str, str]:
    """fundingInfo -> {symbol: hours}; only adjusted symbols are listed (others: the default)."""
    if not isinstance(body, list):
        raise ParseError("bad_frame", "fundingInfo: expected a list")
    out = {}
    for row in body:
        hours = row.get("fundingIntervalHours") if isinstance(row, dict) else None
        if isinstance(row, dict) and isinstance(row.get("symbol"), str) and type(hours) is int and 0 < hours <= 24 * 7:
            out[row["symbol"]] = str(hours)
    return out


def open_interest(body: Any, symbol: str) -> tuple[str, int]:
    """openInterest reply -> (base-asset quantity, its time in ms)."""
    if not isinstance(body, dict) or body.get("symbol") != symbol:
        raise ParseError("bad_frame", f"openInterest for {symbol}: {str(body)[:80]}")
    return decimal_str(body.get("openInterest"), "openInterest"), _ms(body.get("time"), "time")


def open_interest_period(n_symbols: int, poll_interval: float) -> float:
    """Seconds between open-interest rounds: `poll_interval`, slowed so that the rounds use at most
    OPEN_INTEREST_SHARE of the futures weight budget."""
    per_min = FUTURES_WEIGHT_PER_MIN * OPEN_INTEREST_SHARE
    return max(poll_interval, n_symbols * OPEN_INTEREST_WEIGHT * 60.0 / per_min)


# -- markets: how the panel reads a Binance symbol -------------------------------------------

def market_of(symbol: str, kind: str) -> Market | None:
    """`<BASE><QUOTE>` on both (BTCUSDT); futures are perpetuals (1000PEPEUSDT: 1000 PEPE); dated
    futures (BTCUSDT_260925) are not followed."""
    if "_" in symbol or "-" in symbol:
        return None
    split = split_quote(symbol)
    return market(*split, PERPETUAL if kind == DERIVATIVE else SPOT) if split else None


# -- feeds: how each is wired ----------------------------------------------------------------
# Both check the configured symbols against exchangeInfo before subscribing (a bad name would be acked
# and silent) and again every `discovery_interval`; the connections are rebuilt when the set changes.

def spot(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    rest_url = svc.rest_url

    def discover(rest: Rest) -> list[str]:
        listing = rest.get_parsed(f"{rest_url}{SPOT_EXCHANGE_INFO_PATH}", {"showPermissionSets": "false"}, spot_listing)
        ok, refused = selection(svc.symbols, listing, SPOT_LIVE, "trading spot symbol")
        ctx.report_selection(ok, refused)
        return ok

    return [ctx.discovered(discover, lambda symbols: [ctx.connection(s) for s in spot_streams(
        svc.url, symbols, book_top=svc.book_top)])]


def futures(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    rest_url = svc.rest_url
    followed: list[str] = []
    written: dict[str, str] = {}  # funding_interval_hours last written per symbol

    def discover(rest: Rest) -> list[str]:
        nonlocal followed
        listing = rest.get_parsed(f"{rest_url}{FUTURES_EXCHANGE_INFO_PATH}", None, futures_listing)
        ok, refused = selection(svc.symbols, listing, FUTURES_LIVE, "trading USDⓈ-M perpetual")
        ctx.report_selection(ok, refused)
        intervals = rest.get_parsed(f"{rest_url}{FUNDING_INFO_PATH}", None, funding_intervals)
        now = now_ms()
        for sym in set(written) - set(ok):  # left the set: its key is removed; written again if it returns
            del written[sym]
        for sym in ok:  # always written: the exchange's figure, else the default
            hours = intervals.get(sym, str(DEFAULT_FUNDING_INTERVAL_HOURS))
            if written.get(sym) != hours:
                ctx.sink.put(sym, {"funding_interval_hours": hours, "original_symbol": sym}, now, now)
                written[sym] = hours
        new = [sym for sym in ok if sym not in followed]
        followed = ok
        fetch_open_interest(rest, new, strict=False)  # at once, not a poll period later
        return ok

    def fetch_open_interest(rest: Rest, symbols: list[str], *, strict: bool = True) -> None:
        """Each symbol's open interest; one refused symbol is counted and skipped, a 429/418 ends the round.
        `strict`: a round where every symbol failed is an error (the poller backs off)."""
        updates, errors = [], []
        for sym in symbols:
            try:
                oi, ts = rest.get_parsed(f"{rest_url}{OPEN_INTEREST_PATH}", {"symbol": sym}, partial(open_interest, symbol=sym))
            except RestError as exc:
                if exc.retry_after is not None:
                    raise  # 429 / 418: the whole round waits as long as Binance says
                errors.append(f"{sym}: {exc}")
                continue
            updates.append(Update(sym, {"open_interest": oi}, ts))
        ctx.deliver(updates)
        if strict and errors and not updates:
            raise RestError("; ".join(errors)[:300])
        for err in errors:
            ctx.stats.error("rest_error", f"open interest {err}", parse=False)

    def poll_open_interest(rest: Rest) -> None:
        fetch_open_interest(rest, list(followed))

    period = open_interest_period(len(svc.symbols), svc.poll_interval)
    return [
        ctx.discovered(discover, lambda symbols: [ctx.connection(s) for s in futures_streams(svc.url, symbols)]),
        ctx.poller("open_interest", poll_open_interest, period),
    ]


EXCHANGE = Exchange(
    name="binance",
    display="Binance",
    feeds=(
        Feed("binance_spot", SPOT, spot, "Binance spot: trades, best bid/ask, 24 h ticker", uses_rest=True),
        Feed("binance_futures", DERIVATIVE, futures,
             "Binance USDⓈ-M perpetuals: trades, best bid/ask, mark, index, funding, OI, 24 h ticker", uses_rest=True),
    ),
    market=market_of,
    funding_interval_hours=float(DEFAULT_FUNDING_INTERVAL_HOURS),
    simulator="tests.sim.binance:BinanceSim",
)
