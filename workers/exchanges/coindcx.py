"""CoinDCX public market data: endpoints, limits, socket.io framing and pure parsers (no I/O).

Facts (/work/shared/exchanges/coindcx.md; [C] = official docs, [U] = third-party probes):
- Futures: one REST call, `current_prices/futures/rt` on the public host, returns every pair
  `{ts, vs, prices: {"B-BTC_USDT": {ls, mp, fr, efr, h, l, v, pc, btST, bmST, ...}}}`, all JSON
  numbers, any key optional [C shape]. `ls` last price, `mp` mark [C]; `fr` the last settled
  funding rate, `efr` the estimated rate of the next settlement [U]; rates are fractions per
  funding interval [U], the interval (`funding_frequency`, hours) only in per-pair details [C].
  Inactive pairs stay in the reply with frozen marks [U]: filter by the active list.
- Spot: `/exchange/ticker` returns every market keyed by `market` (`BTCUSDT`) [C]; sockets and
  most of the API use the pair (`B-BTC_USDT`), mapped through `/exchange/v1/markets_details`
  whose `base_currency_short_name` is the *quote* and `target_currency_short_name` the base [C].
- Socket.io over a plain WebSocket, Engine.IO v4 [U]: server `0{..pingInterval,pingTimeout}`,
  client `40`, server `40{sid}`, then `42["join",{"channelName":"<pair>@trades"}]` (no ack; unknown
  names silently ignored). The server pings (`2`), the client answers `3`; a client must never
  ping first [U]. Events are `42["<event>",{"event":..,"data":"<JSON string>"}]` [U].
- Money values come as decimal strings or JSON numbers, exponents included (`5e-5`) [C/U].
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NamedTuple

from orjson import dumps, loads

from workers.exchanges.common import decode_object, describe
from workers.runtime.config import ConfigError
from workers.runtime.declare import DERIVATIVE, SPOT, Exchange, Feed
from workers.runtime.markets import PERPETUAL, Market, market
from workers.runtime.model import IGNORED, PONG, RECONNECT, REPLY, SUBSCRIBED, Control, ParseError, Update
from workers.runtime.sharding import shard
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import iso_ms

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

# -- endpoints and limits ------------------------------------------------------------------

API_HOST = "https://api.coindcx.com"
PUBLIC_HOST = "https://public.coindcx.com"
SPOT_STREAM_HOST = "wss://stream-spot.coindcx.com"  # pingInterval 45 s, pingTimeout 60 s [U]
FUTURES_STREAM_HOST = "wss://stream.coindcx.com"    # also serves the spot channels [U]; 25 s / 20 s

RT_PRICES_PATH = "/market_data/v3/current_prices/futures/rt"  # PUBLIC_HOST
ACTIVE_INSTRUMENTS_PATH = "/exchange/v1/derivatives/futures/data/active_instruments"  # API_HOST
INSTRUMENT_DETAILS_PATH = "/exchange/v1/derivatives/futures/data/instrument"  # API_HOST
SPOT_TICKER_PATH = "/exchange/ticker"  # API_HOST
MARKETS_DETAILS_PATH = "/exchange/v1/markets_details"  # API_HOST
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"

RATE_LIMIT_PER_S = 16     # FAQ: "16/sec, 960/min" for the APIs [C]
RATE_LIMIT_PER_MIN = 960
DETAILS_SWEEP_MAX_PER_S = 4  # instrument details has no bulk variant: sweep it well under the limit
TICKER_REFRESH_S = 1.0       # "A ticker is generated once every second" [C]

# 24 h volume. Spot `volume` is in the quote currency: the capture gives BTCUSDT 1.34e9, which no
# base reading fits [U], so it is turnover. Futures RT `v` has no documented unit: its decimals match
# the price's (price x whole quantities, i.e. quote) but its size fits base units better (1000SHIB:
# 358M = $6M in base, $358M in quote). The promised schema names it volume_24h: written as sent,
# the README says the unit is undocumented.
FUTURES_VOLUME_FIELD = "volume_24h"
SPOT_VOLUME_FIELD = "turnover_24h"

WRONG_PAIR = "wrong_pair"  # instrument details answered for another pair: the asked one is unknown [U]


def socketio_url(base: str) -> str:
    """'wss://stream.coindcx.com' -> 'wss://stream.coindcx.com/socket.io/?EIO=4&transport=websocket'."""
    if "/socket.io/" in base:
        return base
    return base.rstrip("/") + SOCKETIO_PATH


def active_instruments_params(margin: str = "USDT") -> dict[str, str]:
    return {"margin_currency_short_name[]": margin}


def instrument_details_params(pair: str, margin: str = "USDT") -> dict[str, str]:
    return {"pair": pair, "margin_currency_short_name": margin}


# -- values --------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PLAIN_RE = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_DIGITS = 40  # no price or rate needs more; bounds what a hostile value can make us write
ANY, NONNEG, POSITIVE = 0, 1, 2


def _is_zero(text: str) -> bool:
    return text.strip("-0.") == ""


def dec(value: Any, name: str, sign: int = ANY) -> str:
    """A JSON number or decimal string as a plain decimal string ('5e-05' -> '0.00005'), or ParseError.

    Strings the exchange already sends plainly are returned as sent (trailing zeros kept)."""
    if type(value) is int:
        text = str(value) if abs(value) < 10**_MAX_DIGITS else ""
    elif type(value) is float:
        # 15 significant digits drop float noise (0.1 + 0.2 -> 0.3); "f" avoids exponents.
        ok = math.isfinite(value) and (value == 0 or 1e-30 < abs(value) < 1e30)
        text = format(Decimal(format(value, ".15g")), "f") if ok else ""
    elif type(value) is str:
        text = value if len(value) <= _MAX_DIGITS and _NUMBER_RE.fullmatch(value) else ""
        if text and not _PLAIN_RE.fullmatch(text):
            try:
                d = Decimal(text)
            except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
                text = ""
            else:
                text = format(d, "f") if -_MAX_DIGITS < d.adjusted() < _MAX_DIGITS else ""
                if len(text) > 2 * _MAX_DIGITS:
                    text = ""
    else:
        raise ParseError("bad_type", f"{name} should be a number, got {type(value).__name__} {value!r:.40}")
    if not text:
        raise ParseError("bad_value", f"{name} is not a usable number: {value!r:.40}")
    zero = _is_zero(text)
    negative = text.startswith("-") and not zero
    if (sign >= NONNEG and negative) or (sign == POSITIVE and (zero or negative)):
        raise ParseError("bad_value", f"{name} out of range: {value!r:.40}")
    return text


def epoch_ms(value: Any, name: str) -> int:
    """Epoch milliseconds given as an int or a float (CoinDCX sends fractional ms at times)."""
    if type(value) is float and math.isfinite(value):
        value = int(value)
    if type(value) is not int or not 10**11 < value < 10**14:  # 1973 .. 5138
        raise ParseError("bad_value", f"{name} should be epoch milliseconds, got {value!r:.40}")
    return value


def ticker_ms(value: Any, name: str) -> int:
    """The spot ticker's time: documented in ms, sent in seconds [U]; both are read."""
    if type(value) is float and math.isfinite(value):
        value = int(value)
    if type(value) is int and 10**8 < value < 10**11:
        return value * 1000
    return epoch_ms(value, name)


def _decode_body(body: Any) -> Any:
    """REST callers pass decoded JSON; raw bytes/str are decoded here for convenience."""
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            return loads(body)
        except (ValueError, RecursionError) as exc:
            raise ParseError("bad_json", str(exc)[:120]) from None
    return body


def _tagged(pair: str, exc: ParseError) -> ParseError:
    return ParseError(exc.kind, f"{pair}: {exc.detail}")


class PollResult(NamedTuple):
    """What one REST reply yields: updates to write, per-instrument errors, configured ones absent."""

    updates: list[Update]
    errors: list[ParseError]
    missing: list[str]


class _ChangeFilter:
    """Per key: the fields last emitted and their event time. A poll's reply mostly repeats the last one
    (the RT reply is edge-cached [U], the ticker regenerated once per second), so only changes go out."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[dict[str, str | None], int]] = {}

    def changed(self, key: str, fields: Mapping[str, str | None], ts: int) -> bool:
        """True (and remembered) if any of `fields` differs from what was last emitted, or `ts` is newer."""
        prev = self._last.get(key)
        if prev is None:
            self._last[key] = (dict(fields), ts)
            return True
        prev_fields, prev_ts = prev
        if ts <= prev_ts and all(prev_fields.get(k) == v for k, v in fields.items()):
            return False
        self._last[key] = ({**prev_fields, **fields}, max(ts, prev_ts))
        return True

    def forget(self, key: str) -> None:
        self._last.pop(key, None)


# -- futures REST ----------------------------------------------------------------------------

# (key, field, sign); for prices, 0 means "none yet" (a pair that never traded) and is skipped.
_RT_FIELDS = (
    ("ls", "ltp", POSITIVE), ("mp", "mark_price", POSITIVE),
    ("fr", "current_funding_rate", ANY), ("efr", "estimated_funding_rate", ANY),
    ("h", "high_24h", POSITIVE), ("l", "low_24h", POSITIVE), ("v", FUTURES_VOLUME_FIELD, NONNEG),
    ("pc", "price_change_percent", ANY),  # percent already (4.834 = +4.834 %) [C]
)


class FuturesPrices:
    """Turns RT replies into updates for the configured instruments (ids such as 'B-BTC_USDT').

    Stateful but pure: it remembers what it emitted so an unchanged instrument yields nothing. An
    instrument without a last price yet (never traded) has its other fields written, no `ltp`.
    """

    def __init__(self, instruments: Iterable[str]) -> None:
        self.instruments = tuple(dict.fromkeys(instruments))
        self._filter = _ChangeFilter()
        self._interval: dict[str, str] = {}
        self.version: int | None = None  # `vs` of the last reply

    def set_funding_interval(self, pair: str, hours: Any) -> None:
        """Hours between fundings (instrument details' `funding_frequency`); sent with the pair's next update."""
        value = dec(hours, "funding_frequency", POSITIVE)
        if self._interval.get(pair) != value:
            self._interval[pair] = value
            self._filter.forget(pair)  # the next reply emits the pair even if its prices stood still

    def parse(self, body: Any) -> PollResult:
        """A decoded RT reply -> PollResult. ParseError only when the reply as a whole is unusable."""
        msg = _decode_body(body)
        if type(msg) is not dict:
            raise ParseError("bad_frame", f"RT reply should be an object, got {type(msg).__name__}")
        prices = msg.get("prices")
        if type(prices) is not dict:
            raise ParseError("bad_frame", f"RT reply without a prices object ({describe(msg)})")
        reply_ts = epoch_ms(msg.get("ts"), "ts")
        vs = msg.get("vs")
        self.version = vs if type(vs) is int else None
        updates: list[Update] = []
        errors: list[ParseError] = []
        missing: list[str] = []
        funding_ts = iso_ms(reply_ts)
        for pair in self.instruments:
            entry = prices.get(pair)
            if entry is None:
                missing.append(pair)
                continue
            try:
                upd = self._entry(pair, entry, reply_ts, funding_ts)
            except ParseError as exc:
                errors.append(_tagged(pair, exc))
                continue
            if upd is not None:
                updates.append(upd)
        return PollResult(updates, errors, missing)

    def _entry(self, pair: str, entry: Any, reply_ts: int, funding_ts: str) -> Update | None:
        if type(entry) is not dict:
            raise ParseError("bad_frame", f"entry should be an object, got {type(entry).__name__}")
        fields: dict[str, str] = {}
        for src, dst, sign in _RT_FIELDS:
            v = entry.get(src)
            if v is not None:
                value = dec(v, src, NONNEG if sign == POSITIVE else sign)
                if sign != POSITIVE or not _is_zero(value):
                    fields[dst] = value
        if "estimated_funding_rate" in fields:
            fields["funding_rate"] = fields["estimated_funding_rate"]  # the next settlement's rate
        # Event time: the tick's and the mark's send times (btST, bmST) [C]; the reply's time otherwise.
        times = [epoch_ms(entry[k], k) for k in ("btST", "bmST") if entry.get(k) is not None]
        ts = max(times) if times else reply_ts
        if not fields:
            return None
        interval = self._interval.get(pair)
        if interval is not None:
            fields["funding_interval_hours"] = interval
        if not self._filter.changed(pair, fields, ts):
            return None
        if "current_funding_rate" in fields or "estimated_funding_rate" in fields:
            fields["funding_timestamp"] = funding_ts
        fields["original_symbol"] = pair
        return Update(pair, fields, ts)


def parse_active_instruments(body: Any) -> set[str]:
    """The active-instruments reply (a JSON array of ids) -> set of ids. An empty or odd list is a
    ParseError: keep the previous set rather than reject every configured instrument."""
    ids = _decode_body(body)
    if type(ids) is not list:
        raise ParseError("bad_frame", f"active instruments should be an array, got {type(ids).__name__}")
    out = set()
    for item in ids:
        if type(item) is not str or not 0 < len(item) <= 64 or not item.isprintable() or " " in item:
            raise ParseError("bad_value", f"active instrument id {item!r:.60}")
        out.add(item)
    if not out:
        raise ParseError("bad_frame", "empty active instruments list")
    return out


class InstrumentDetails(NamedTuple):
    pair: str
    status: str                  # 'active', ...; '' when absent
    funding_interval_hours: str  # `funding_frequency` as a decimal string


def parse_instrument_details(body: Any, pair: str) -> InstrumentDetails:
    """`{"instrument": {...}}` for `pair`. An answer about another pair (what CoinDCX returns for an
    unknown one [U]) is ParseError(WRONG_PAIR)."""
    msg = _decode_body(body)
    inst = msg.get("instrument") if type(msg) is dict else None
    if type(inst) is not dict:
        raise ParseError("bad_frame", "instrument details without an instrument object")
    got = inst.get("pair")
    if got != pair:
        raise ParseError(WRONG_PAIR, f"asked for {pair!r:.40}, got details of {got!r:.40}: unknown instrument")
    status = inst.get("status")
    return InstrumentDetails(pair, status if type(status) is str else "",
                             dec(inst.get("funding_frequency"), "funding_frequency", POSITIVE))


# -- spot REST ------------------------------------------------------------------------------

class SpotMarket(NamedTuple):
    pair: str    # 'B-BTC_USDT': sockets, trade history, order book
    market: str  # 'BTCUSDT' (coindcx_name): the ticker's key
    base: str    # from target_currency_short_name (the docs' naming is swapped)
    quote: str   # from base_currency_short_name
    status: str  # 'active' / 'inactive'


def parse_markets_details(body: Any) -> dict[str, SpotMarket]:
    """`/exchange/v1/markets_details` -> {pair: SpotMarket}. Rows without a pair and a name are skipped."""
    rows = _decode_body(body)
    if type(rows) is not list:
        raise ParseError("bad_frame", f"markets_details should be an array, got {type(rows).__name__}")
    out: dict[str, SpotMarket] = {}
    for row in rows:
        if type(row) is not dict:
            continue
        pair, market = row.get("pair"), row.get("coindcx_name", row.get("symbol"))
        if type(pair) is not str or type(market) is not str or not pair or not market:
            continue
        base, quote, status = row.get("target_currency_short_name"), row.get("base_currency_short_name"), row.get("status")
        out[pair] = SpotMarket(pair, market, base if type(base) is str else "", quote if type(quote) is str else "",
                               status if type(status) is str else "")
    if not out:
        raise ParseError("bad_frame", "markets_details lists no market")
    return out


_TICKER_FIELDS = (
    ("bid", "best_bid"), ("ask", "best_ask"), ("high", "high_24h"), ("low", "low_24h"),
)


class SpotTicker:
    """Turns `/exchange/ticker` replies into updates for the configured pairs.

    `markets` maps the ticker's market name to the pair written as the Redis key ('BTCUSDT' ->
    'B-BTC_USDT'), for the configured pairs only. The ticker's `last_price` becomes `ltp` only for the
    pairs in `ltp_for` (those without a socket trade yet): it is the market's last traded price, but
    a second old, and must not overwrite a fresher trade.
    """

    def __init__(self, markets: Mapping[str, str]) -> None:
        self.markets = dict(markets)
        self._filter = _ChangeFilter()

    def parse(self, body: Any, ltp_for: Collection[str] = ()) -> PollResult:
        rows = _decode_body(body)
        if type(rows) is not list:
            raise ParseError("bad_frame", f"ticker reply should be an array, got {type(rows).__name__}")
        seen: set[str] = set()
        updates: list[Update] = []
        errors: list[ParseError] = []
        for row in rows:
            market = row.get("market") if type(row) is dict else None
            pair = self.markets.get(market) if type(market) is str else None
            if pair is None:
                continue
            seen.add(pair)
            try:
                upd = self._row(pair, row, pair in ltp_for)
            except ParseError as exc:
                errors.append(_tagged(pair, exc))
                continue
            if upd is not None:
                updates.append(upd)
        missing = [p for p in self.markets.values() if p not in seen]
        return PollResult(updates, errors, missing)

    def _row(self, pair: str, row: dict, want_ltp: bool) -> Update | None:
        ts = ticker_ms(row.get("timestamp"), "timestamp")
        fields: dict[str, str | None] = {}
        for src, dst in _TICKER_FIELDS:
            v = row.get(src)
            if v is not None and v != "":
                value = dec(v, src, NONNEG)
                if not _is_zero(value):
                    fields[dst] = value
                elif dst in ("best_bid", "best_ask"):
                    fields[dst] = None  # "0.00000000": an empty book side, its old price is deleted
        v = row.get("volume")
        if v is not None and v != "":
            fields[SPOT_VOLUME_FIELD] = dec(v, "volume", NONNEG)
        v = row.get("change_24_hour")
        if v is not None and v != "":
            fields["price_change_percent"] = dec(v, "change_24_hour")  # percent [C example: -1.621]
        if want_ltp:
            last = row.get("last_price")
            value = dec(last, "last_price", NONNEG) if last is not None and last != "" else "0"
            if not _is_zero(value):  # no trade yet: no ltp, the quotes and stats are written all the same
                fields["ltp"] = value
        if not self._filter.changed(pair, fields, ts):
            return None
        fields["original_symbol"] = pair
        return Update(pair, fields, ts)


# -- socket.io framing (Engine.IO v4) ----------------------------------------------------------

EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = "0123456"
SIO_CONNECT, SIO_DISCONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR, SIO_BINARY_EVENT, SIO_BINARY_ACK = "0123456"
CONNECT_FRAME = EIO_MESSAGE + SIO_CONNECT  # "40": join the default namespace
PONG_FRAME = EIO_PONG                      # "3"

_SIO_HEAD = re.compile(r"(\d+-)?(/[^,]*,)?(\d+)?")


class Packet(NamedTuple):
    """One decoded text frame: Engine.IO type, Socket.IO type ('' unless a message), namespace, JSON data."""

    eio: str
    sio: str = ""
    nsp: str = "/"
    data: Any = None
    text: str = ""  # the raw payload after the type character(s) (a ping's probe text)


def decode_packet(raw: str | bytes) -> Packet:
    """Parse an Engine.IO v4 text frame carrying Socket.IO v5; ParseError('bad_packet') if malformed."""
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("bad_packet", "not UTF-8") from None
    if not text or text[0] not in "0123456":
        raise ParseError("bad_packet", f"unknown Engine.IO packet {text[:40]!r}")
    eio, rest = text[0], text[1:]
    if eio == EIO_OPEN:
        return Packet(eio, data=_json(rest, "open"), text=rest)
    if eio != EIO_MESSAGE:
        return Packet(eio, text=rest)
    if not rest or rest[0] not in "0123456":
        raise ParseError("bad_packet", f"unknown Socket.IO packet {text[:40]!r}")
    sio = rest[0]
    head = _SIO_HEAD.match(rest, 1)
    assert head is not None  # every group is optional: it always matches
    nsp = head.group(2)[:-1] if head.group(2) else "/"
    body = rest[head.end():]
    data = _json(body, "payload") if body else None
    if sio in (SIO_EVENT, SIO_BINARY_EVENT) and not (type(data) is list and data and type(data[0]) is str):
        raise ParseError("bad_packet", f"event without a name: {text[:60]!r}")
    return Packet(eio, sio, nsp, data, body)


def _json(text: str, what: str) -> Any:
    try:
        return loads(text)
    except (ValueError, RecursionError):
        raise ParseError("bad_packet", f"{what} is not JSON: {text[:60]!r}") from None


def encode_event(name: str, payload: Any) -> str:
    """'42["join",{"channelName":"B-BTC_USDT@trades"}]'."""
    return EIO_MESSAGE + SIO_EVENT + dumps([name, payload]).decode()


def trades_channel(pair: str) -> str:
    return f"{pair}@trades"


def join_frame(channel: str) -> str:
    return encode_event("join", {"channelName": channel})


def leave_frame(channel: str) -> str:
    return encode_event("leave", {"channelName": channel})


class OpenInfo(NamedTuple):
    sid: str
    ping_interval_s: float
    ping_timeout_s: float


def parse_open(data: Any) -> OpenInfo:
    """The open packet's `{"sid","pingInterval","pingTimeout",...}` (ms) -> OpenInfo in seconds."""
    if type(data) is not dict:
        raise ParseError("bad_packet", "open packet is not an object")
    sid = data.get("sid")
    return OpenInfo(sid if type(sid) is str else "", _open_ms(data, "pingInterval") / 1000, _open_ms(data, "pingTimeout") / 1000)


def _open_ms(data: dict, name: str) -> int:
    v = data.get(name)
    if type(v) is not int or not 0 < v <= 3_600_000:
        raise ParseError("bad_packet", f"open packet {name} {v!r:.40}")
    return v


def event_data(payload: Any) -> dict:
    """An event's argument `{"event":..,"data":"<JSON string>"}` -> the decoded data object.
    The wire sends `data` as a string [U]; the docs print it as an object: both are read."""
    if type(payload) is not dict:
        raise ParseError("bad_frame", f"event payload should be an object, got {type(payload).__name__}")
    data = payload.get("data")
    if type(data) is str:
        return decode_object(data)
    if type(data) is dict:
        return data
    raise ParseError("bad_frame", f"event data should be a JSON string, got {type(data).__name__}")


# Public events a spot socket may carry that this stream has no use for.
KNOWN_EVENTS = frozenset({
    "price-change", "depth-snapshot", "depth-update", "candlestick", "Left Channel",
    "currentPrices@spot#update", "currentPrices@spot#snapshot", "priceStats@spot#update", "priceStats@spot#snapshot",
    "currentPrices@futures#update", "currentPrices@futures#snapshot",
})

_IGNORED = Control(IGNORED)


class SpotTradesStream(WsStream):
    """One socket.io connection following `<pair>@trades` for spot pairs ('B-BTC_USDT').

    The heartbeat is the server's: it pings, we answer; our window is its pingInterval + pingTimeout.
    `traded` keeps the pairs that have had a socket trade (across reconnects), for SpotTicker's ltp_for.
    """

    # No ping_interval, no ping_frame: the heartbeat is server-driven; a client ping kills the spot socket [U].

    def __init__(self, name: str, url: str, pairs: Iterable[str]) -> None:
        self.name = name
        self.url = socketio_url(url)
        self.pairs = tuple(dict.fromkeys(pairs))
        self._wanted = frozenset(self.pairs)
        self.traded: set[str] = set()
        self.silence_timeout: float | None = None
        self.sid = ""

    def on_connect(self) -> list[str]:
        self.silence_timeout = None  # until this connection's open packet says otherwise
        self.sid = ""
        return []  # the server speaks first

    def join_frames(self) -> tuple[str, ...]:
        return tuple(join_frame(trades_channel(p)) for p in self.pairs)

    def parse(self, raw: str | bytes) -> list[Update] | Control:
        try:
            pkt = decode_packet(raw)
        except ParseError as exc:
            # The server closes on malformed packets too [U]: framing we can't read means a broken session.
            return Control(RECONNECT, f"malformed socket.io packet: {exc.detail}")
        eio = pkt.eio
        if eio == EIO_MESSAGE:
            return self._message(pkt)
        if eio == EIO_PING:
            return Control(PONG, "server ping", frames=(PONG_FRAME + pkt.text,))
        if eio == EIO_OPEN:
            try:
                info = parse_open(pkt.data)
            except ParseError as exc:
                return Control(RECONNECT, exc.detail)
            self.sid = info.sid
            self.silence_timeout = info.ping_interval_s + info.ping_timeout_s
            return Control(REPLY, f"engine.io open, ping every {info.ping_interval_s:g}s", frames=(CONNECT_FRAME,))
        if eio == EIO_CLOSE:
            return Control(RECONNECT, "engine.io close from the server")
        return _IGNORED  # pong, upgrade, noop

    def _message(self, pkt: Packet) -> list[Update] | Control:
        sio = pkt.sio
        if pkt.nsp != "/":
            return _IGNORED  # we only ever connect the default namespace
        if sio == SIO_EVENT:
            return self._event(pkt.data)
        if sio == SIO_CONNECT:
            # Joins are never acknowledged (unknown names are silently ignored): sending them is all there is.
            return Control(SUBSCRIBED, f"namespace connected; joined {len(self.pairs)} trade channel(s), no ack by design",
                           frames=self.join_frames())
        if sio == SIO_DISCONNECT:
            return Control(RECONNECT, "socket.io disconnect from the server")
        if sio == SIO_CONNECT_ERROR:
            return Control(RECONNECT, f"namespace refused: {pkt.text[:120]}")
        return _IGNORED  # acks and binary packets: never asked for

    def _event(self, args: list) -> list[Update] | Control:
        name = args[0]
        if name == "new-trade":
            return [self._trade(event_data(args[1] if len(args) > 1 else None))]
        if name in KNOWN_EVENTS:
            return _IGNORED
        raise ParseError("unknown_event", f"{name[:60]!r}")

    def _trade(self, d: dict) -> Update:
        pair = d.get("s")
        if type(pair) is not str or pair not in self._wanted:
            raise ParseError("unexpected_pair", f"trade for {pair!r:.40}")
        product = d.get("pr")
        if product is not None and (type(product) is not str or product.lower() != "spot"):
            raise ParseError("unexpected_product", f"trade of product {product!r:.20} for {pair}")
        price = dec(d.get("p"), "p", POSITIVE)
        ts = epoch_ms(d.get("T"), "T")
        self.traded.add(pair)
        return Update(pair, {"ltp": price, "original_symbol": pair}, ts)


# -- markets: how the panel reads a CoinDCX symbol --------------------------------------------

def margin_of(pair: str) -> str:
    """The margin (settle) currency of a futures pair, `B-BTC_USDT` -> USDT; USDT when the name has none."""
    return pair.rsplit("_", 1)[-1] if "_" in pair else "USDT"


def market_of(symbol: str, kind: str) -> Market | None:
    """`<ECODE>-<BASE>_<QUOTE>` (B-BTC_USDT, I-BTC_INR): the venue-code prefix is dropped; every
    futures pair is a perpetual."""
    _ecode, dash, pair = symbol.partition("-")
    base, underscore, quote = pair.partition("_")
    if not dash or not underscore or not quote:
        return None
    return market(base, quote, SPOT if kind == SPOT else PERPETUAL)


# -- feeds: how each is wired -----------------------------------------------------------------
# Both feeds are separate processes sharing CoinDCX's per-IP budget (16 requests/s, 960/min); each
# keeps to REQUESTS_PER_S_PER_FEED: one price or ticker request per `poll_interval`, instrument checks
# every `discovery_interval`, detail sweeps spaced at DETAILS_SWEEP_MAX_PER_S.

REQUESTS_PER_S_PER_FEED = 8   # half of the per-IP 16/s: the two feeds never exceed it together
CHANNELS_PER_SOCKET = 300     # observed to work on one socket [U]; no documented cap
REST_BACKOFF_MAX_S = 8.0      # fresh data within 10 s of the exchange answering normally again


def _report(ctx: FeedContext, result: PollResult) -> None:
    for err in result.errors:
        ctx.stats.error(err.kind, err.detail)


def _poll_interval(ctx: FeedContext) -> float:
    if ctx.service.poll_interval < 1 / REQUESTS_PER_S_PER_FEED:
        raise ConfigError(f"{ctx.service.path}.poll_interval", f"{ctx.service.poll_interval:g} s exceeds CoinDCX's rate budget",
                          f">= {1 / REQUESTS_PER_S_PER_FEED:g} s ({REQUESTS_PER_S_PER_FEED} requests/s per feed)")
    return ctx.service.poll_interval


class _FuturesInstruments:
    """Which configured futures pairs are live, and each new one's funding interval (details, throttled)."""

    def __init__(self, ctx: FeedContext, prices: FuturesPrices) -> None:
        self.ctx, self.prices = ctx, prices
        self.active: set[str] = set()
        self.described: set[str] = set()
        self.checked_at = -1e18

    def check(self, rest: Rest) -> None:
        ctx, api = self.ctx, self.ctx.service.rest_url
        listed: set[str] = set()
        for margin in sorted({margin_of(p) for p in ctx.service.symbols}) or ["USDT"]:
            listed |= rest.get_parsed(f"{api}{ACTIVE_INSTRUMENTS_PATH}", active_instruments_params(margin), parse_active_instruments)
        live = set(ctx.accept_listed(ctx.service.symbols, listed, "active CoinDCX futures instrument"))
        for pair in sorted(live - self.described):
            time.sleep(1 / DETAILS_SWEEP_MAX_PER_S)
            if not self._describe(rest, pair):
                live.discard(pair)
        gone = sorted(self.active - live)
        if gone:
            ctx.sink.forget(gone)
        self.active = live
        ctx.stats.symbols = sorted(live)
        self.checked_at = time.monotonic()

    def _describe(self, rest: Rest, pair: str) -> bool:
        """Read a pair's funding interval; False when the exchange does not know the pair."""
        try:
            details = parse_instrument_details(rest.get(f"{self.ctx.service.rest_url}{INSTRUMENT_DETAILS_PATH}",
                                                        instrument_details_params(pair, margin_of(pair))), pair)
        except ParseError as exc:
            if exc.kind == WRONG_PAIR:
                self.ctx.stats.reject(pair, exc.detail)
                return False
            self.ctx.stats.error(exc.kind, f"details of {pair}: {exc.detail}")
            return True
        self.prices.set_funding_interval(pair, details.funding_interval_hours)
        self.described.add(pair)
        return True


def futures(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    public = svc.url.rstrip("/")
    prices = FuturesPrices(svc.symbols)
    instruments = _FuturesInstruments(ctx, prices)

    def poll(rest: Rest) -> None:
        if time.monotonic() - instruments.checked_at >= svc.discovery_interval:
            instruments.check(rest)
        result = rest.get_parsed(f"{public}{RT_PRICES_PATH}", None, prices.parse)
        _report(ctx, result)
        ctx.deliver([u for u in result.updates if u.symbol in instruments.active])

    return [ctx.poller("futures-rt", poll, _poll_interval(ctx), backoff_max=REST_BACKOFF_MAX_S)]


def spot(ctx: FeedContext) -> list[Source]:
    svc = ctx.service
    api = svc.rest_url
    interval = _poll_interval(ctx)
    ticker = SpotTicker({})
    streams: list[SpotTradesStream] = []

    def discover(rest: Rest) -> list[str]:
        markets = rest.get_parsed(f"{api}{MARKETS_DETAILS_PATH}", None, parse_markets_details)
        live = {pair for pair, m in markets.items() if m.status in ("active", "")}
        pairs = ctx.accept_listed(svc.symbols, live, "active CoinDCX spot pair")
        ticker.markets = {markets[p].market: p for p in pairs}
        return pairs

    def connections(pairs: list[str]) -> list[Source]:
        streams[:] = [SpotTradesStream(f"spot#{i}", svc.url, chunk)
                      for i, chunk in enumerate(shard(pairs, lambda p: (p,), max_topics=CHANNELS_PER_SOCKET))]
        return [ctx.connection(s) for s in streams]

    def poll_ticker(rest: Rest) -> None:
        if not ticker.markets:
            return  # discovery has not run yet
        traded = set().union(*(s.traded for s in streams)) if streams else set()
        result = rest.get_parsed(f"{api}{SPOT_TICKER_PATH}", None,
                                 lambda body: ticker.parse(body, ltp_for=set(ticker.markets.values()) - traded))
        _report(ctx, result)
        ctx.deliver(result.updates)

    return [ctx.discovered(discover, connections),
            ctx.poller("spot-ticker", poll_ticker, interval, backoff_max=REST_BACKOFF_MAX_S)]


EXCHANGE = Exchange(
    name="coindcx",
    display="CoinDCX",
    feeds=(
        Feed("coindcx_spot", SPOT, spot, "CoinDCX spot: trades over socket.io, quotes and 24 h stats from the REST ticker",
             uses_rest=True),
        Feed("coindcx_futures_rest", DERIVATIVE, futures, "CoinDCX futures over REST: LTP, mark, current and estimated funding",
             uses_rest=True),
    ),
    market=market_of,
    funding_interval_hours=None,  # intervals differ per pair (1, 4, 8 h): only from the instrument details
    simulator="tests.sim.coindcx:CoinDCXSim",
)
