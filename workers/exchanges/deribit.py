"""Deribit API v2 public market data (options, perpetuals, dated futures): the whole protocol in one place.

Facts (docs/exchanges/deribit.md, with their sources):
- one WebSocket endpoint, JSON-RPC 2.0: every request carries an `id`; replies carry it back
  (`result` or `error`), maybe out of order; pushes are `{"method":"subscription","params":
  {"channel","data"}}`; public clients get the `100ms` interval (`raw` needs authentication);
- `public/subscribe {"channels":[..]}` answers with the channels actually subscribed: a refused
  channel is simply left out, so the request is diffed against the result;
- heartbeat: `public/set_heartbeat {"interval": >= 10}` after connecting; the server then sends
  `{"method":"heartbeat","params":{"type":"test_request"}}`, which must be answered with a
  `public/test` request or the server closes the connection; `type: heartbeat` is liveness;
- limits: 32 connections per IP (REST included); a subscribe costs 3,000 of a 30,000-credit pool
  refilled at 10,000/s; error 10028 too_many_requests ends the session; a frame over 32 kB is
  refused (-32600);
- ticker: whole object every push; option prices in the coin, IVs in percent; open interest in
  USD for perpetuals and inverse futures, in the coin for options and linear instruments;
  `funding_8h` on perpetuals, no funding timestamp (funding accrues continuously).
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from orjson import dumps

from workers.exchanges.common import decode_object, describe, unwrap
from workers.runtime.chain import ChainRule, Contract
from workers.runtime.config import ConfigError
from workers.runtime.declare import DERIVATIVE, OPTION, SPOT, Exchange, Feed
from workers.runtime.limiter import Limiter
from workers.runtime.markets import FUTURE, PERPETUAL, Market, expiry_date, market
from workers.runtime.model import IGNORED, PONG, RECONNECT, REPLY, SUB_REJECTED, SUBSCRIBED, Control, ParseError, RestError, Update
from workers.runtime.sharding import shard
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import now_ms

if TYPE_CHECKING:
    from workers.runtime.config import ServiceConfig
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

INTERVAL = "100ms"                 # the fastest public interval (`raw` needs authentication)
MIN_HEARTBEAT_S = 10               # public/set_heartbeat refuses less
FUNDING_INTERVAL_HOURS = 8         # funding_8h: the rate per 8 hours
# No per-connection channel cap is documented: a moderate share (our choice), 2 channels per instrument.
MAX_CHANNELS_PER_CONNECTION = 500
# Channel names per subscribe call, in characters: the JSON-RPC frame stays under the 32 kB cap.
MAX_SUBSCRIBE_CHARS = 24_000
# Subscribes cost 3,000 of 30,000 credits refilled at 10,000/s (about 3.3/s, burst 10); public
# requests are limited per IP with an undocumented allowance: a feed sends 3 at once, then 2/s.
SUBSCRIBE_BURST = 3
SUBSCRIBE_INTERVAL_S = 0.5
TOO_MANY_REQUESTS = 10028          # the server ends the session: reconnect after backoff

_IGNORED = Control(IGNORED)
_PONG = Control(PONG)
_OPTION = re.compile(r"^([A-Z0-9]+)(?:_([A-Z0-9]+))?-(\d{1,2})([A-Z]{3})(\d{2})-(\d+(?:d\d+)?)-([CP])$")
_FUTURE = re.compile(r"^([A-Z0-9]+)(?:_([A-Z0-9]+))?-(?:(PERPETUAL)|(\d{1,2})([A-Z]{3})(\d{2}))$")


# -- numbers: JSON numbers as decimal strings, cheaply ---------------------------------------

def num(value: Any, name: str, *, positive: bool = False, nonneg: bool = False) -> str:
    """A JSON number as a decimal string without exponent (repr: the shortest round trip, i.e. the
    digits Deribit sent); ParseError for another type, a non-finite or an out-of-range value."""
    t = type(value)
    if t is float:
        if not math.isfinite(value) or abs(value) > 1e300:
            raise ParseError("bad_value", f"{name} out of range: {value!r:.40}")
        text = repr(value)
        if "e" in text:
            text = format(Decimal(text), "f")  # 2.11e-05 -> 0.0000211 (rare: tiny or huge values)
    elif t is int:
        text = str(value)
    else:
        raise ParseError("bad_type", f"{name} should be a number, got {t.__name__} {value!r:.40}")
    if (positive and value <= 0) or (nonneg and value < 0):
        raise ParseError("bad_value", f"{name} out of range: {value!r:.40}")
    return text


def percent_to_fraction(text: str) -> str:
    """'159.47' (percent, a decimal string without exponent) -> '1.5947': the decimal point moved two
    places, exactly (no float noise, no Decimal)."""
    neg = text.startswith("-")
    whole, _, frac = (text[1:] if neg else text).partition(".")
    whole = whole.rjust(3, "0")
    head = whole[:-2].lstrip("0") or "0"
    tail = (whole[-2:] + frac).rstrip("0")
    out = f"{head}.{tail}" if tail else head
    return f"-{out}" if neg and out != "0" else out


def usd(coin_price: float, index: float) -> str:
    """A coin-quoted price in USD (× the index), to 1/10,000 of a dollar."""
    value = coin_price * index
    if not math.isfinite(value):
        raise ParseError("bad_value", f"price × index out of range: {coin_price!r:.40} × {index!r:.40}")
    return f"{value:.4f}".rstrip("0").rstrip(".")


# -- instruments: what a name says -------------------------------------------------------------

class Instrument(NamedTuple):
    kind: str                # "option", "perpetual" or "future"
    linear: bool             # BTC_USDC-...: quoted and settled in USDC, amounts in the coin
    static: dict[str, str]   # written with the first update of each connection


def option_fields(symbol: str) -> dict[str, str] | None:
    """'BTC-27DEC26-100000-C' -> option_type, underlying, strike_price, expiry_date (DDMMYY), expiry,
    settle_coin; None if the name is not an option (or its date does not exist)."""
    m = _OPTION.match(symbol)
    if m is None:
        return None
    base, quote, day, month, year, strike, kind = m.groups()
    expiry = expiry_date(day, month, year)
    if expiry is None:
        return None
    return {
        "option_type": "CALL" if kind == "C" else "PUT",
        "underlying": base,
        "strike_price": strike.replace("d", "."),  # linear strikes write the decimal point as `d` (0d625)
        "expiry_date": f"{expiry[8:10]}{expiry[5:7]}{expiry[2:4]}",
        "expiry": expiry,
        "settle_coin": quote or base,
    }


def instrument(symbol: str) -> Instrument:
    """What the feed needs of a name, computed once per symbol (not per frame)."""
    static = {"original_symbol": symbol}
    opt = option_fields(symbol)
    base = symbol.partition("-")[0]
    linear = "_" in base
    if opt is not None:
        return Instrument("option", linear, static | opt)
    if symbol.endswith("-PERPETUAL"):
        return Instrument("perpetual", linear, static | {"funding_interval_hours": str(FUNDING_INTERVAL_HOURS)})
    return Instrument("future", linear, static)


def channels_of(symbol: str) -> list[str]:
    return [f"ticker.{symbol}.{INTERVAL}", f"trades.{symbol}.{INTERVAL}"]


def batches(channels: Sequence[str], max_chars: int = MAX_SUBSCRIBE_CHARS) -> list[list[str]]:
    """Channels per subscribe call: each call's names within `max_chars` (quotes and comma: +3 each)."""
    out: list[list[str]] = []
    chars = max_chars + 1
    for ch in channels:
        if chars + len(ch) + 3 > max_chars:
            out.append([])
            chars = 0
        out[-1].append(ch)
        chars += len(ch) + 3
    return out


class SubscribePacer:
    """One feed's subscribe rate, shared by its connections (they draw on one per-IP allowance)."""

    def __init__(self, interval: float = SUBSCRIBE_INTERVAL_S, burst: int = SUBSCRIBE_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limiter = Limiter(interval, burst, clock=clock)
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            return self._limiter.ready("subscribe") and self._limiter.allow("subscribe")


# -- the stream ---------------------------------------------------------------------------------

_OPTION_BOOK = (("bid", "best_bid", "bid_size", "bid_iv", "best_bid_usd"), ("ask", "best_ask", "ask_size", "ask_iv", "best_ask_usd"))
_GREEKS = ("delta", "gamma", "vega", "theta", "rho")


def _event_ms(symbol: str, obj: Any, what: str) -> int:
    """The epoch-ms `timestamp` of a ticker or trade object pushed on `symbol`'s channel, checked: an object,
    of that instrument, with an int time."""
    if type(obj) is not dict:
        raise ParseError("bad_frame", f"{what} of {symbol[:60]} is not an object")
    if obj.get("instrument_name") != symbol:
        raise ParseError("bad_frame", f"{what} of {obj.get('instrument_name')!r:.60} on channel of {symbol[:60]}")
    ts = obj.get("timestamp")
    if type(ts) is not int or ts <= 0:
        raise ParseError("bad_type", f"{what} timestamp should be epoch ms, got {ts!r:.40}")
    return ts


class DeribitStream(WsStream):
    """One Deribit connection: its instruments' ticker and trades channels, and the frame dispatch."""

    binary_ok = False
    ping_interval: float | None = None  # the server's heartbeat (set_heartbeat) replaces client pings

    def __init__(self, name: str, url: str, symbols: Iterable[str], *, heartbeat: int = 30,
                 silence_timeout: float | None = None, pacer: SubscribePacer | None = None) -> None:
        if heartbeat < MIN_HEARTBEAT_S:
            raise ValueError(f"heartbeat {heartbeat} s: Deribit's minimum is {MIN_HEARTBEAT_S} s")
        self.name = name
        self.url = url
        self.heartbeat = heartbeat
        self.silence_timeout = silence_timeout  # None: the configured window
        self.pacer = pacer or SubscribePacer()
        self.info = {s: instrument(s) for s in symbols}
        self.channels = [c for s in self.info for c in channels_of(s)]
        self.refused: set[str] = set()  # channels Deribit left out: not asked again by this stream
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._requests: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._queued: deque[str] = deque()
        self._named: set[str] = set()
        self._prev: dict[str, dict] = {}  # symbol -> its last ticker object on this connection

    # -- frames out -------------------------------------------------------------------------

    def _request(self, method: str, params: dict[str, Any], channels: Sequence[str] = ()) -> str:
        rid = next(self._ids)
        self._requests[rid] = (method, tuple(channels))
        return dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).decode()

    def on_connect(self) -> list[str]:
        """set_heartbeat, then the subscribes the pacer allows now; the rest leave from `due_frames`."""
        with self._lock:
            self._requests = {}
            self._named = set()
            self._prev = {}
            frames = [self._request("public/set_heartbeat", {"interval": self.heartbeat})]
            wanted = [c for c in self.channels if c not in self.refused]
            self._queued = deque(self._request("public/subscribe", {"channels": b}, b) for b in batches(wanted))
            frames += self._due()
        return frames

    def _due(self) -> list[str]:
        out = []
        while self._queued and self.pacer.take():
            out.append(self._queued.popleft())
        return out

    def due_frames(self) -> tuple[str, ...]:
        """Subscribes the pacer held back and now allows (called by the keepalive thread)."""
        if not self._queued:
            return ()
        with self._lock:
            return tuple(self._due())

    def ping_frame(self) -> str | None:
        return None

    # -- frames in ----------------------------------------------------------------------------

    def parse(self, raw: str | bytes) -> list[Update] | Control:
        msg = decode_object(raw)
        method = msg.get("method")
        if method == "subscription":
            params = msg.get("params")
            if type(params) is not dict:
                raise ParseError("bad_frame", "subscription without params")
            channel = params.get("channel")
            if type(channel) is not str:
                raise ParseError("bad_type", f"channel is {channel!r:.40}")
            head, _, rest = channel.partition(".")
            symbol = rest.rpartition(".")[0]
            data = params.get("data")
            if head == "ticker":
                return self._ticker(symbol, data)
            if head == "trades":
                return self._trades(symbol, data)
            raise ParseError("unknown_channel", channel[:80])
        if method == "heartbeat":
            params = msg.get("params")
            kind = params.get("type") if type(params) is dict else None
            if kind == "test_request":  # answer at once, or the server closes the connection
                with self._lock:
                    frame = self._request("public/test", {})
                return Control(REPLY, "heartbeat test_request", frames=(frame,))
            if kind == "heartbeat":
                return _PONG
            raise ParseError("bad_frame", f"heartbeat of type {kind!r:.40}")
        if "id" in msg:
            return self._reply(msg)
        raise ParseError("unknown_frame", describe(msg))

    def _reply(self, msg: dict) -> Control:
        rid = msg.get("id")
        with self._lock:
            request = self._requests.pop(rid, None) if type(rid) is int else None
        if request is None:
            return Control(IGNORED, f"reply to an id this connection did not send: {rid!r:.40}")
        method, channels = request
        error = msg.get("error")
        if error is not None:
            err = error if type(error) is dict else {}
            code, text = err.get("code"), str(err.get("message"))[:120]
            if code == TOO_MANY_REQUESTS:
                return Control(RECONNECT, f"{method}: {code} {text} (Deribit ends the session when credits run out)")
            if method == "public/subscribe":
                self.refused.update(channels)
                return Control(SUB_REJECTED, f"public/subscribe error {code} {text}", channels)
            raise ParseError("rpc_error", f"{method}: error {code} {text}")
        result = msg.get("result")
        if method == "public/subscribe":
            if type(result) is not list:
                raise ParseError("bad_frame", f"public/subscribe result is not a list: {result!r:.60}")
            got = {c for c in result if type(c) is str}
            missing = tuple(c for c in channels if c not in got)
            if missing:
                self.refused.update(missing)
                return Control(SUB_REJECTED, "left out of public/subscribe's result (Deribit omits what it refuses)", missing)
            return Control(SUBSCRIBED, f"{len(channels)} channel(s)")
        if method == "public/set_heartbeat":
            if result != "ok":
                raise ParseError("rpc_error", f"public/set_heartbeat answered {result!r:.60}")
            return Control(IGNORED, f"heartbeat every {self.heartbeat} s")
        return _IGNORED  # public/test's answer

    def _update(self, symbol: str, info: Instrument, fields: dict[str, str | None], ts: int) -> list[Update]:
        if symbol not in self._named:  # static fields once per connection; Redis keeps them
            fields.update(info.static)
            self._named.add(symbol)
        return [Update(symbol, fields, ts)]

    def _trades(self, symbol: str, data: Any) -> list[Update]:
        """`trades.<instrument>.100ms`: a list of trades; the last one's price is the `ltp`."""
        if type(data) is not list or not data:
            raise ParseError("bad_frame", f"trades of {symbol[:60]} is not a list of trades")
        info = self.info.get(symbol)
        last = data[-1]
        ts = _event_ms(symbol, last, "trade")
        price = num(last.get("price"), "price", positive=True)
        if info is None:
            return []  # a channel this stream did not ask for
        return self._update(symbol, info, {"ltp": price}, ts)

    def _ticker(self, symbol: str, d: Any) -> list[Update]:
        """A whole ticker object (every push); only the values that changed since this connection's last
        push of the symbol are converted and written (Redis keeps the rest): most fields move rarely."""
        ts = _event_ms(symbol, d, "ticker")
        info = self.info.get(symbol)
        if info is None:
            return []
        prev = self._prev.get(symbol) or _NOTHING
        f: dict[str, str | None] = {}
        option = info.kind == "option"
        fields = _OPTION_FIELDS if option else _PERPETUAL_FIELDS if info.kind == "perpetual" else _FUTURE_FIELDS
        get, pget = d.get, prev.get
        for src, dst, positive, nonneg in fields:
            v = get(src)
            if v is not None and v != pget(src):
                f[dst] = num(v, src, positive=positive, nonneg=nonneg)
        oi = get("open_interest")
        if oi is not None and oi != pget("open_interest"):
            # Perpetuals and inverse futures count it in USD, options and linear instruments in the coin.
            name = "open_interest_value" if not option and not info.linear else "open_interest"
            f[name] = num(oi, "open_interest", nonneg=True)
        stats = get("stats")
        if type(stats) is dict and stats != pget("stats"):
            for src, dst, nonneg in _STATS if not option else _OPTION_STATS:
                v = stats.get(src)
                if v is not None:
                    f[dst] = num(v, f"stats.{src}", nonneg=nonneg)
        if option:
            self._option(d, prev, f, info.linear)
        else:
            for side, price_key, size_key in (("bid", "best_bid", "bid_size"), ("ask", "best_ask", "ask_size")):
                pk, ak = f"best_{side}_price", f"best_{side}_amount"
                price, amount = get(pk, 0), get(ak)
                if price == pget(pk, 0) and amount == pget(ak):
                    continue
                if price is None:  # that side of the book is empty
                    f[price_key] = f[size_key] = None
                elif price != 0:
                    f[price_key] = num(price, pk, positive=True)
                    if amount is not None:
                        f[size_key] = num(amount, ak, nonneg=True)
        self._prev[symbol] = d
        return self._update(symbol, info, f, ts)

    @staticmethod
    def _option(d: dict, prev: dict, f: dict[str, str | None], linear: bool) -> None:
        """Option fields: IVs percent -> fractions, Greeks as sent, and every price also in USD
        (inverse options are quoted in the coin: × the frame's index price)."""
        get, pget = d.get, prev.get
        index = get("index_price")
        rate: float | None = None
        if linear:
            rate = 1.0
        elif (type(index) is float or type(index) is int) and index > 0:
            rate = index
        moved = linear or index != pget("index_price")  # the USD prices move with the index
        v = get("mark_iv")
        if v is not None and v != pget("mark_iv"):
            f["implied_volatility"] = percent_to_fraction(num(v, "mark_iv", nonneg=True))
        mark = get("mark_price")
        if rate is not None and (type(mark) is float or type(mark) is int) and (moved or mark != pget("mark_price")):
            f["mark_price_usd"] = usd(mark, rate)
        greeks = get("greeks")
        if type(greeks) is dict and greeks != pget("greeks"):
            for g in _GREEKS:
                v = greeks.get(g)
                if v is not None:
                    f[g] = num(v, f"greeks.{g}")
        for side, price_key, size_key, iv_key, usd_key in _OPTION_BOOK:
            pk, ak, ik = f"best_{side}_price", f"best_{side}_amount", f"{side}_iv"
            price = get(pk, -1)
            if price == -1:
                continue  # not in this frame: unchanged
            amount, iv = get(ak), get(ik)
            if price == pget(pk) and amount == pget(ak) and iv == pget(ik):
                if moved and rate is not None and price:  # the same quote, a new index: only its USD price
                    f[usd_key] = usd(price, rate)
                continue
            if price is None or price == 0:  # no quote on that side: its old values are deleted
                f[price_key] = f[size_key] = f[iv_key] = f[usd_key] = None
                continue
            f[price_key] = num(price, pk, positive=True)
            if rate is not None:
                f[usd_key] = usd(price, rate)
            if amount is not None:
                f[size_key] = num(amount, ak, nonneg=True)
            if iv is not None:  # 0: no volatility fits that price (a quote under intrinsic value)
                f[iv_key] = percent_to_fraction(num(iv, ik, nonneg=True)) if iv != 0 else None


_NOTHING: dict[str, Any] = {}
# (ticker field, hash field, > 0, >= 0): plain numbers, converted only when they changed.
_COMMON_FIELDS = (("mark_price", "mark_price", False, True), ("index_price", "index_price", True, False))
_OPTION_FIELDS = (*_COMMON_FIELDS, ("underlying_price", "underlying_price", True, False))
_FUTURE_FIELDS = _COMMON_FIELDS
_PERPETUAL_FIELDS = (*_COMMON_FIELDS, ("funding_8h", "funding_rate", False, False))
_STATS = (("volume", "volume_24h", True), ("high", "high_24h", True), ("low", "low_24h", True),
          ("price_change", "price_change_percent", False),  # already percent
          ("volume_usd", "turnover_24h", True))  # USD: these markets' quote
_OPTION_STATS = _STATS[:4]  # an option's quote is the coin: volume_usd is no turnover in it


def streams(url: str, symbols: Sequence[str], *, heartbeat: int, silence_timeout: float | None,
            pacer: SubscribePacer, kind: str) -> list[DeribitStream]:
    """The feed's connections: instruments sharded within MAX_CHANNELS_PER_CONNECTION, one pacer for all."""
    if not symbols:
        return []
    shards = shard(symbols, channels_of, max_topics=MAX_CHANNELS_PER_CONNECTION)
    return [DeribitStream(f"{kind}#{i}", url, chunk, heartbeat=heartbeat, silence_timeout=silence_timeout, pacer=pacer)
            for i, chunk in enumerate(shards)]


# -- REST: paths and pure readers of the replies (the calls are made by the wiring) -------------

INSTRUMENTS_PATH = "/public/get_instruments"
INDEX_PRICE_PATH = "/public/get_index_price"


def _result(body: Any, path: str) -> Any:
    """The `result` of a JSON-RPC reply; RestError for an `error` reply."""
    return unwrap(body, path, lambda b: "error" not in b)


def instruments_params(currency: str, kind: str) -> dict[str, str]:
    return {"currency": currency, "kind": kind, "expired": "false"}


def instrument_rows(body: Any) -> list[dict]:
    """get_instruments' rows (objects with an instrument_name); ParseError if `result` is no list."""
    rows = _result(body, INSTRUMENTS_PATH)
    if type(rows) is not list:
        raise ParseError("bad_frame", f"get_instruments result is not a list: {rows!r:.60}")
    return [r for r in rows if type(r) is dict and type(r.get("instrument_name")) is str]


def active_names(rows: Iterable[dict], now: int) -> set[str]:
    """Instruments that trade now (active, not expired)."""
    out = set()
    for r in rows:
        exp = r.get("expiration_timestamp")
        if r.get("is_active") is True and (type(exp) is not int or exp > now):
            out.add(r["instrument_name"])
    return out


def option_contracts(rows: Iterable[dict]) -> list[Contract]:
    """Active options for the chain rule; rows that can't be read are skipped."""
    out = []
    for r in rows:
        exp, strike = r.get("expiration_timestamp"), r.get("strike")
        if r.get("kind") != "option" or r.get("is_active") is not True or type(exp) is not int \
                or not isinstance(strike, (int, float)) or type(strike) is bool:
            continue
        opt = option_fields(r["instrument_name"])
        if opt is None:
            continue
        und, settle = r.get("base_currency"), r.get("settlement_currency")
        und = und if isinstance(und, str) else opt["underlying"]
        settle = settle if isinstance(settle, str) else opt["settle_coin"]
        out.append(Contract(r["instrument_name"], und, exp, float(strike), settle))
    return out


def index_price(body: Any) -> float | None:
    """get_index_price's `index_price` (centres the strike window), None if absent."""
    result = _result(body, INDEX_PRICE_PATH)
    price = result.get("index_price") if type(result) is dict else None
    if not isinstance(price, (int, float)) or type(price) is bool or not 0 < price < math.inf:
        return None
    return float(price)


# get_instruments' `currency` values (the docs' enum); asking for another is an error reply.
CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "EURR")


def currency_of(symbol: str) -> str | None:
    """get_instruments' `currency` that lists a name: BTC for BTC-..., USDC for BTC_USDC-...; None
    when no currency Deribit has could list it."""
    base = symbol.partition("-")[0]
    currency = base.partition("_")[2] or base
    return currency if currency in CURRENCIES else None


def chain_currency(coin: str) -> str:
    """Where an underlying's options are listed: BTC and ETH under their own currency (inverse
    options), other coins' linear options under USDC."""
    return coin if coin in CURRENCIES else "USDC"


def _rows(rest: Rest, base: str, currencies: Iterable[str | None], kind: str) -> list[dict]:
    return [r for cur in sorted({c for c in currencies if c is not None})
            for r in rest.get_parsed(f"{base}{INSTRUMENTS_PATH}", instruments_params(cur, kind), instrument_rows)]


# -- markets: how the panel reads a Deribit symbol -------------------------------------------

def market_of(symbol: str, kind: str) -> Market | None:
    """`BTC-PERPETUAL` (inverse, USD), `BTC-27DEC26` (dated, day without a leading zero),
    `BTC_USDC-PERPETUAL` / `BTC_USDC-27DEC26` (linear, USDC); spot pairs `BTC_USDC`; options are
    not markets."""
    if kind == SPOT:
        base, sep, quote = symbol.partition("_")
        return market(base, quote, SPOT) if sep and quote and "-" not in symbol else None
    m = _FUTURE.match(symbol)
    if m is None:
        return None
    base, quote, perpetual, day, month, year = m.groups()
    if perpetual:
        return market(base, quote or "USD", PERPETUAL)
    expiry = expiry_date(day, month, year)
    return market(base, quote or "USD", FUTURE, expiry) if expiry else None


# -- feeds: how each is wired -------------------------------------------------------------------

def heartbeat_of(svc: ServiceConfig) -> tuple[int, float | None]:
    """(set_heartbeat interval from `ping_interval`, the silence window if the configured one is too
    short to see two heartbeats)."""
    interval = math.ceil(svc.ping_interval)
    if interval < MIN_HEARTBEAT_S:
        raise ConfigError(f"{svc.path}.ping_interval", f"{svc.ping_interval:g} s is below Deribit's minimum heartbeat",
                          f"{MIN_HEARTBEAT_S} or more (seconds between the server's heartbeats, public/set_heartbeat)")
    return interval, (2.0 * interval if svc.silence_timeout < 2 * interval else None)


def _wired(ctx: FeedContext, kind: str, discover: Callable[[Rest], list[str]]) -> list[Source]:
    svc = ctx.service
    heartbeat, silence = heartbeat_of(svc)
    pacer = SubscribePacer()
    return [ctx.discovered(discover, lambda symbols: [ctx.connection(s) for s in streams(
        svc.url, symbols, heartbeat=heartbeat, silence_timeout=silence, pacer=pacer, kind=kind)])]


def options(ctx: FeedContext) -> list[Source]:
    """Explicit symbols (checked live) plus the chain the selection rule picks, re-discovered over REST."""
    svc = ctx.service
    rule = ChainRule.from_config(svc.selection, f"{svc.path}.selection")
    explicit = list(svc.symbols)

    def discover(rest: Rest) -> list[str]:
        base = svc.rest_url
        rows = _rows(rest, base, [chain_currency(c) for c in rule.underlyings] + [currency_of(s) for s in explicit], "option")
        now = now_ms()
        prices = {}
        for coin in rule.underlyings if rule.strike_range_pct else ():
            try:
                price = rest.get_parsed(f"{base}{INDEX_PRICE_PATH}", {"index_name": f"{coin.lower()}_usd"}, index_price)
            except RestError as exc:  # e.g. no <coin>_usd index: that chain is skipped, the others go on
                ctx.stats.error("rest_error", str(exc), parse=False)
                price = None
            if price:
                prices[coin] = price
        chosen, no_price = rule.select(option_contracts(rows), prices, now)
        for coin in no_price:
            ctx.stats.error("no_spot_price", f"no index price for {coin}; its chain is skipped this round", parse=False)
        live = active_names(rows, now)
        return sorted(set(chosen) | set(ctx.accept_listed(explicit, live, "live Deribit option (unknown, expired or inactive)")))

    return _wired(ctx, "options", discover)


def futures(ctx: FeedContext) -> list[Source]:
    """The configured perpetuals and dated futures that Deribit lists as active, re-checked over REST."""
    svc = ctx.service

    def discover(rest: Rest) -> list[str]:
        base = svc.rest_url
        rows = _rows(rest, base, [currency_of(s) for s in svc.symbols], "future")
        return ctx.accept_listed(svc.symbols, active_names(rows, now_ms()), "live Deribit future (unknown, expired or inactive)")

    return _wired(ctx, "futures", discover)


EXCHANGE = Exchange(
    name="deribit",
    display="Deribit",
    feeds=(
        Feed("deribit_options", OPTION, options, "Deribit option chains with Greeks, prices in the coin and in USD", uses_rest=True),
        Feed("deribit_futures", DERIVATIVE, futures, "Deribit perpetuals and dated futures: LTP, mark, 8 h funding, OI",
             uses_rest=True),
    ),
    market=market_of,
    funding_interval_hours=float(FUNDING_INTERVAL_HOURS),
    simulator="tests.sim.deribit:DeribitSim",
)
