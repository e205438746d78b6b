"""OKX API v5 public market data (SPOT and perpetual SWAP): the whole protocol in one place.

Facts (docs/exchanges/okx.md, from the official v5 docs; [U] = unconfirmed there):
- one public socket, wss://ws.okx.com:8443/ws/v5/public, carries every channel used here;
- subscribe: {"op":"subscribe","args":[{"channel":..,"instId":..},..]}, each arg acked as
  {"event":"subscribe","arg":{..}}; a refused arg gets {"event":"error","code":"60018","msg":..}
  with no `arg`: the channel and instId are read from `msg` ("channel:<ch>,instId:<id>");
- pushes are {"arg":{"channel","instId"},"data":[{..}]}: every number a string, `ts` epoch ms
  as a string; `data` is a list;
- heartbeat: the text `ping`, answered by the text `pong`; the server closes a connection that
  has had no data for 30 s (close 4004), so the ping interval must stay below 30 s;
- {"event":"notice","code":"64008"}: the connection will be closed for a service upgrade
  (tens of seconds later): reconnect now, on our terms;
- limits: 3 new connections per second per IP; 480 subscribe/unsubscribe requests per hour per
  connection; the args of one request at most 64 KB; no channel count per connection is
  documented [U] (close codes 4008/4009 exist): MAX_CHANNELS_PER_CONNECTION is our cap;
- `index-tickers`' instId is an index (BTC-USDT, as a SWAP's `uly`), which can equal a SPOT
  instId: frames are routed by channel first;
- units: SPOT tickers vol24h = base, volCcy24h = quote; SWAP vol24h = contracts, volCcy24h =
  base coin (linear and inverse); open-interest oi = contracts, oiCcy = coin, oiUsd = USD;
  an inverse contract is worth ctVal USD (BTC-USD-SWAP: 100), a linear one ctVal base coin;
- funding-rate: fundingRate is the rate of the upcoming settlement at fundingTime;
  nextFundingTime is the settlement after it, so the interval is their difference (either may
  be "" in older docs: both read defensively).
- REST: GET /api/v5/public/instruments?instType=SPOT|SWAP, envelope {"code":"0","msg","data"};
  50011 = rate limited (HTTP 429 or 200).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from orjson import dumps

from workers.exchanges.common import decimal_str, decode_object, describe
from workers.runtime.config import ConfigError
from workers.runtime.declare import DERIVATIVE, SPOT, Exchange, Feed
from workers.runtime.markets import FUTURE, PERPETUAL, Market, expiry_date, market
from workers.runtime.model import IGNORED, PLANNED_RECONNECT, PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError, RestError, Update
from workers.runtime.sharding import shard
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import iso_ms

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

PING_FRAME = "ping"
SERVER_IDLE_CLOSE_S = 30  # the server closes a connection with no data for this long (close 4004)
MAX_ARGS_BYTES_PER_REQUEST = 64 * 1024 - 1024  # the documented 64 KB, less a margin for the envelope
MAX_CHANNELS_PER_CONNECTION = 300  # [U] no number documented; keeps a reconnect's resubscribe small
CONNECT_SPACING_S = 0.7  # a feed's connections start this far apart: 3 new connections/s per IP, shared
NOTICE_UPGRADE = "64008"
ERROR_NO_SUCH = "60018"
DEFAULT_FUNDING_INTERVAL_HOURS = 8.0  # "default 8 h, may be changed per contract" (the docs)

SPOT_CHANNELS = ("tickers", "trades")
SWAP_CHANNELS = ("tickers", "trades", "mark-price", "funding-rate", "open-interest")  # + index-tickers per index
INDEX = "index-tickers"

_IGNORED = Control(IGNORED)
_PONG = Control(PONG)
_REFUSED_ARG = re.compile(r"channel:\s*([A-Za-z0-9_-]+)\s*,\s*instId:\s*([A-Za-z0-9_.-]+)")


class SwapInfo(NamedTuple):
    """What a SWAP's instrument record tells the parser (`/api/v5/public/instruments`)."""

    index_id: str       # its index (`uly`): the instId of its `index-tickers`
    inverse: bool       # ctType inverse: a contract is worth ct_val USD
    ct_val: float       # contract value (inverse: USD; linear: base coin); 0 if unknown


def swap_info_of(symbol: str) -> SwapInfo:
    """The SwapInfo a symbol implies when no instrument record is at hand: BTC-USDT-SWAP -> index
    BTC-USDT, linear unless the quote is USD (coin-margined); contract value unknown."""
    index = symbol.removesuffix("-SWAP")
    return SwapInfo(index, index.endswith("-USD"), 0.0)


def subscribe_args(symbols: Sequence[str], kind: str, info: Mapping[str, SwapInfo]) -> list[dict[str, str]]:
    """The args of a connection's symbols: each symbol's channels, each index once."""
    args: list[dict[str, str]] = []
    indices: dict[str, None] = {}
    for sym in symbols:
        for ch in SPOT_CHANNELS if kind == SPOT else SWAP_CHANNELS:
            args.append({"channel": ch, "instId": sym})
        if kind != SPOT:
            indices[(info.get(sym) or swap_info_of(sym)).index_id] = None
    args += [{"channel": INDEX, "instId": idx} for idx in indices]
    return args


def subscribe_frames(args: Sequence[dict[str, str]], op: str = "subscribe") -> list[str]:
    """Requests of at most MAX_ARGS_BYTES_PER_REQUEST of args each (the shared sharding function)."""
    encoded = [dumps(a).decode() for a in args]
    batches = shard(encoded, lambda a: (a,), max_chars=MAX_ARGS_BYTES_PER_REQUEST)
    return [f'{{"op":"{op}","args":[{",".join(batch)}]}}' for batch in batches if batch]


def _ms(value: Any, name: str) -> int:
    if type(value) is not str or not value.isascii() or not value.isdigit() or len(value) > 15:
        raise ParseError("bad_type", f"{name} should be epoch ms as a digit string, got {value!r:.40}")
    return int(value)


def _num(d: dict, src: str, *, positive: bool = False) -> str | None:
    """A decimal-string field, None when absent or "" (the docs' "not applicable")."""
    v = d.get(src)
    if v is None or v == "":
        return None
    return decimal_str(v, src, positive=positive)


def percent_change(last: str, open_24h: str) -> str | None:
    """(last / open24h - 1) in percent, 4 decimals, no exponent; None when open24h is 0."""
    base = float(open_24h)
    change = (float(last) / base - 1) * 100 if base > 0 else math.inf
    if not math.isfinite(change):
        return None
    text = f"{change:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _amount(value: float) -> str | None:
    """A derived amount as a plain decimal string (2 decimals: quote-currency turnover); None if not finite."""
    return f"{value:.2f}" if math.isfinite(value) else None


class OkxStream(WsStream):
    """One OKX public connection: its symbols' channels and the frame dispatch.

    kind SPOT: `tickers` (book top, 24 h stats) and `trades` (ltp) per instrument. kind
    DERIVATIVE (SWAP): also `mark-price`, `funding-rate`, `open-interest`, and the
    `index-tickers` of each symbol's index, written to every symbol on that index.
    """

    binary_ok = False
    silence_timeout: float | None = None  # the configured window

    def __init__(self, name: str, url: str, kind: str, symbols: Sequence[str], *,
                 info: Mapping[str, SwapInfo] | None = None, ping_interval: float = 20.0) -> None:
        if kind not in (SPOT, DERIVATIVE):
            raise ValueError(f"kind {kind!r}")
        self.name = name
        self.url = url
        self.kind = kind
        self.ping_interval: float | None = ping_interval
        self.symbols = list(symbols)
        self.info = {s: (info or {}).get(s) or swap_info_of(s) for s in self.symbols} if kind != SPOT else {}
        self._by_index: dict[str, list[str]] = {}
        for sym, si in self.info.items():
            self._by_index.setdefault(si.index_id, []).append(sym)
        self._dropped: set[tuple[str, str]] = set()  # (channel, instId) refused: not asked again
        self.refused: list[str] = []  # instruments the exchange refused (a list: the discovery thread copies it)
        self._handlers: dict[str, Callable[[str, dict, int], Update | None]] = {
            "tickers": self._spot_ticker if kind == SPOT else self._swap_ticker,
            "trades": self._trade,
            "mark-price": self._mark,
            "funding-rate": self._funding,
            "open-interest": self._open_interest,
        }
        self._known = set(self.symbols)
        self._named: set[str] = set()
        self._pending: set[tuple[str, str]] = set()
        self._sent = 0

    # -- connection ------------------------------------------------------------------

    def args(self) -> list[dict[str, str]]:
        return [a for a in subscribe_args(self.symbols, self.kind, self.info)
                if (a["channel"], a["instId"]) not in self._dropped]

    def on_connect(self) -> list[str]:
        self._named = set()
        args = self.args()
        self._pending = {(a["channel"], a["instId"]) for a in args}
        self._sent = len(args)
        return subscribe_frames(args)

    def ping_frame(self) -> str:
        return PING_FRAME

    # -- dispatch --------------------------------------------------------------------

    def parse(self, raw: bytes | str) -> list[Update] | Control:
        if raw == b"pong" or raw == "pong":
            return _PONG
        msg = decode_object(raw)
        arg = msg.get("arg")
        if "event" in msg:
            return self._event(msg, arg)
        if type(arg) is not dict:
            raise ParseError("unknown_frame", describe(msg))
        channel, inst = arg.get("channel"), arg.get("instId")
        if type(inst) is not str:
            raise ParseError("bad_frame", f"arg.instId is {inst!r:.40}")
        data = msg.get("data")
        if type(data) is not list:
            raise ParseError("bad_frame", f"data of {channel!r:.30} {inst:.40} is not a list")
        if channel == INDEX:
            return self._index(inst, data)
        handler = self._handlers.get(channel) if type(channel) is str else None
        if handler is None:
            raise ParseError("unknown_channel", f"{channel!r:.40} for {inst:.40}")
        if inst not in self._known:
            raise ParseError("unknown_symbol", f"{channel} for {inst:.40}, which this connection did not subscribe")
        out = []
        for d in data:
            if type(d) is not dict:
                raise ParseError("bad_frame", f"{channel} entry is not an object: {d!r:.60}")
            upd = handler(inst, d, _ms(d.get("ts"), f"{channel}.ts"))
            if upd is not None:
                out.append(upd)
        return out

    def _update(self, sym: str, fields: dict[str, str | None], ts: int) -> Update:
        if sym not in self._named:  # once per connection; Redis keeps it
            fields["original_symbol"] = sym
            self._named.add(sym)
        return Update(sym, fields, ts)

    # -- channels ----------------------------------------------------------------------

    def _book_and_day(self, d: dict) -> tuple[dict[str, str | None], str | None]:
        """Book top and 24 h high/low/open/change of a ticker; also its `last` (a trade price,
        used only for the change: `ltp` comes from `trades`)."""
        f: dict[str, str | None] = {}
        for px, sz, px_name, sz_name in (("bidPx", "bidSz", "best_bid", "bid_size"), ("askPx", "askSz", "best_ask", "ask_size")):
            price = _num(d, px, positive=True)
            if price is None:
                if px in d:  # sent empty: no quote on that side, its old one is deleted
                    f[px_name] = f[sz_name] = None
                continue
            f[px_name] = price
            size = _num(d, sz)
            if size is not None:
                f[sz_name] = size
        for src, dst in (("high24h", "high_24h"), ("low24h", "low_24h"), ("open24h", "prev_price_24h")):
            v = _num(d, src)
            if v is not None:
                f[dst] = v
        last = _num(d, "last", positive=True)
        opened = f.get("prev_price_24h")
        if last is not None and opened is not None:
            change = percent_change(last, opened)
            if change is not None:
                f["price_change_percent"] = change
        return f, last

    def _spot_ticker(self, sym: str, d: dict, ts: int) -> Update:
        f, _ = self._book_and_day(d)
        vol, quote_vol = _num(d, "vol24h"), _num(d, "volCcy24h")
        if vol is not None:
            f["volume_24h"] = vol           # SPOT: base currency
        if quote_vol is not None:
            f["turnover_24h"] = quote_vol   # SPOT: quote currency
        return self._update(sym, f, ts)

    def _swap_ticker(self, sym: str, d: dict, ts: int) -> Update:
        f, last = self._book_and_day(d)
        coin_vol, contracts = _num(d, "volCcy24h"), _num(d, "vol24h")
        if coin_vol is not None:
            f["volume_24h"] = coin_vol      # SWAP: base coin (vol24h is contracts: never written)
        si = self.info[sym]
        # No quote turnover in the ticker: inverse contracts are worth ct_val USD each (exact);
        # linear ones are estimated as the base-coin volume at the last price (README).
        turnover = None
        if si.inverse:
            if contracts is not None and si.ct_val > 0:
                turnover = _amount(float(contracts) * si.ct_val)
        elif coin_vol is not None and last is not None:
            turnover = _amount(float(coin_vol) * float(last))
        if turnover is not None:
            f["turnover_24h"] = turnover
        return self._update(sym, f, ts)

    def _trade(self, sym: str, d: dict, ts: int) -> Update:
        return self._update(sym, {"ltp": decimal_str(d.get("px"), "px", positive=True)}, ts)

    def _mark(self, sym: str, d: dict, ts: int) -> Update:
        return self._update(sym, {"mark_price": decimal_str(d.get("markPx"), "markPx", positive=True)}, ts)

    def _funding(self, sym: str, d: dict, ts: int) -> Update | None:
        f: dict[str, str | None] = {}
        rate = _num(d, "fundingRate")
        if rate is not None:
            f["funding_rate"] = rate        # already a fraction per interval
        when, after = d.get("fundingTime"), d.get("nextFundingTime")
        if when not in (None, "", "0"):
            settle = _ms(when, "fundingTime")
            f["next_funding_time"] = iso_ms(settle)
            if after not in (None, "", "0"):
                hours = (_ms(after, "nextFundingTime") - settle) / 3_600_000
                if 0 < hours <= 24:
                    f["funding_interval_hours"] = format(hours, "g")
        return self._update(sym, f, ts) if f else None

    def _open_interest(self, sym: str, d: dict, ts: int) -> Update | None:
        f: dict[str, str | None] = {}
        coin, usd = _num(d, "oiCcy"), _num(d, "oiUsd")
        if coin is not None:
            f["open_interest"] = coin       # base coin (`oi` is contracts: never written)
        if usd is not None:
            f["open_interest_value"] = usd  # USD
        return self._update(sym, f, ts) if f else None

    def _index(self, index: str, data: list) -> list[Update]:
        symbols = self._by_index.get(index)
        if symbols is None:
            raise ParseError("unknown_symbol", f"{INDEX} for {index:.40}, which this connection did not subscribe")
        out = []
        for d in data:
            if type(d) is not dict:
                raise ParseError("bad_frame", f"{INDEX} entry is not an object: {d!r:.60}")
            ts = _ms(d.get("ts"), f"{INDEX}.ts")
            price = decimal_str(d.get("idxPx"), "idxPx", positive=True)
            out += [self._update(sym, {"index_price": price}, ts) for sym in symbols]
        return out

    # -- events ------------------------------------------------------------------------

    def _event(self, msg: dict, arg: Any) -> Control:
        event = msg.get("event")
        if event == "subscribe":
            if type(arg) is dict:
                self._pending.discard((str(arg.get("channel")), str(arg.get("instId"))))
            # One log line per connection, when the last of its args is acknowledged.
            if not self._pending and self._sent:
                self._sent = 0
                return Control(SUBSCRIBED, f"{len(self.args())} channel(s) on {len(self.symbols)} instrument(s)")
            return _IGNORED
        if event == "error":
            return self._error(msg)
        if event == "notice":
            code = str(msg.get("code"))
            if code == NOTICE_UPGRADE:
                return Control(PLANNED_RECONNECT, f"notice {code}: the exchange will close this connection for a "
                                                  "service upgrade")
            return Control(IGNORED, f"notice {code[:10]}: {str(msg.get('msg'))[:120]}")
        if event in ("unsubscribe", "channel-conn-count", "login"):
            return _IGNORED
        raise ParseError("unknown_frame", f"event {event!r:.40}")

    def _error(self, msg: dict) -> Control:
        code, text = str(msg.get("code"))[:10], str(msg.get("msg"))[:300]
        m = _REFUSED_ARG.search(text)
        if m is None:
            raise ParseError("exchange_error", f"{code}: {text}")
        channel, inst = m.groups()
        if channel == INDEX:
            affected = self._by_index.get(inst)
            if not affected:
                raise ParseError("exchange_error", f"{code} for an index not asked for: {text}")
            self._dropped.add((channel, inst))
            self._pending.discard((channel, inst))
            return Control(SUB_REJECTED, f"{code}: {text} (no index_price for {', '.join(affected)})", (f"{INDEX}:{inst}",))
        if inst not in self._known:
            raise ParseError("exchange_error", f"{code} for an instrument not asked for: {text}")
        # The instrument is unknown to the exchange: none of its channels will come.
        if inst not in self.refused:
            self.refused.append(inst)
        for ch in self._handlers:
            self._dropped.add((ch, inst))
            self._pending.discard((ch, inst))
        si = self.info.get(inst)
        if si is not None:  # its index no longer writes to it; an index nobody else uses is not asked again
            on_index = self._by_index.get(si.index_id, [])
            if inst in on_index:
                on_index.remove(inst)
            if not on_index:
                self._dropped.add((INDEX, si.index_id))
                self._pending.discard((INDEX, si.index_id))
        return Control(SUB_REJECTED, f"{code}: {text}", (inst,))


# -- REST: paths and pure readers of the replies (the calls are made by the wiring) --------

INSTRUMENTS_PATH = "/api/v5/public/instruments"
RATE_LIMITED = "50011"


def rows_of(body: Any, path: str) -> list[dict]:
    """The `data` rows of a v5 reply ({"code":"0","msg","data":[..]}); ParseError for an error reply, RestError with a
    wait for 50011 (rate limited, which OKX may send with HTTP 200)."""
    if not isinstance(body, dict):
        raise ParseError("bad_reply", f"GET {path}: unexpected answer {str(body)[:160]}")
    code = body.get("code")
    if code == RATE_LIMITED:
        raise RestError(f"GET {path}: rate limited (50011 {str(body.get('msg'))[:80]})", retry_after=2.0)
    data = body.get("data")
    if code != "0" or not isinstance(data, list):
        raise ParseError("bad_reply", f"GET {path}: code {str(code)[:10]} {str(body.get('msg'))[:120]}")
    return [r for r in data if isinstance(r, dict) and isinstance(r.get("instId"), str)]


def live_instruments(rows: Sequence[dict]) -> dict[str, dict]:
    """instId -> record of the instruments whose state is `live` (suspend, preopen, test... are not)."""
    return {r["instId"]: r for r in rows if r.get("state") == "live"}


def swap_info(record: Mapping[str, Any]) -> SwapInfo:
    """A SWAP record's index (`uly`, else `instFamily`, else from its id), type and contract value."""
    sym = str(record.get("instId"))
    fallback = swap_info_of(sym)
    index = record.get("uly") or record.get("instFamily") or fallback.index_id
    ct_type = record.get("ctType")
    try:
        ct_val = float(record.get("ctVal") or 0) * float(record.get("ctMult") or 1)
    except (TypeError, ValueError):
        ct_val = 0.0
    inverse = ct_type == "inverse" if ct_type in ("inverse", "linear") else fallback.inverse
    return SwapInfo(str(index), inverse, ct_val if ct_val > 0 else 0.0)


# -- markets: how the panel reads an OKX symbol ----------------------------------------------

_DATED = re.compile(r"^(\d{2})(\d{2})(\d{2})$")


def market_of(symbol: str, kind: str) -> Market | None:
    """SPOT `<BASE>-<QUOTE>` (BTC-USDT); SWAP `<BASE>-<QUOTE>-SWAP` (BTC-USDT-SWAP; BTC-USD-SWAP is the
    coin-margined inverse perpetual on USD; BTC-USD_UM-SWAP the USD-margined one); a `-YYMMDD` suffix
    is a dated future; options (five parts) are not markets."""
    parts = symbol.split("-")
    if kind == SPOT:
        return market(parts[0], parts[1], SPOT) if len(parts) == 2 and parts[1] else None
    if len(parts) != 3 or not parts[1]:
        return None
    base, quote = parts[0], parts[1].split("_")[0]
    if parts[2] == "SWAP":
        return market(base, quote, PERPETUAL)
    dated = _DATED.match(parts[2])
    if dated:
        yy, mm, dd = dated.groups()
        expiry = expiry_date(dd, mm, yy)
        return market(base, quote, FUTURE, expiry) if expiry else None
    return None


# -- feeds: how each is wired ------------------------------------------------------------------

def connection_plan(symbols: Sequence[str], kind: str) -> list[list[str]]:
    """Symbols over connections: each symbol's channels (and its index) on one connection, at most
    MAX_CHANNELS_PER_CONNECTION channels each."""
    per = len(SPOT_CHANNELS) if kind == SPOT else len(SWAP_CHANNELS) + 1  # + its index (at most)
    return shard(symbols, lambda s: (s,) * per, max_topics=MAX_CHANNELS_PER_CONNECTION)


def _feed(ctx: FeedContext, kind: str) -> list[Source]:
    svc = ctx.service
    if svc.ping_interval >= SERVER_IDLE_CLOSE_S:
        raise ConfigError(f"{svc.path}.ping_interval", f"{svc.ping_interval:g} s: OKX closes a connection that has had "
                          f"no data for {SERVER_IDLE_CLOSE_S} s, so its text ping must come sooner", "1 to 29 seconds")
    inst_type = "SPOT" if kind == SPOT else "SWAP"
    info: dict[str, SwapInfo] = {}
    streams: list[OkxStream] = []
    refused: set[str] = set()  # refused on the socket (60018) though REST lists them: not asked again

    def discover(rest: Rest) -> list[str]:
        nonlocal info
        for stream in streams:
            refused.update(stream.refused[:])
        live = live_instruments(rest.get_parsed(f"{svc.rest_url}{INSTRUMENTS_PATH}", {"instType": inst_type},
                                                lambda body: rows_of(body, INSTRUMENTS_PATH)))
        wanted = [s for s in svc.symbols if s not in refused]  # their refusal stays in the status hash
        symbols = ctx.accept_listed(wanted, live, f"live OKX {inst_type} instrument (unknown, suspended or not listed yet)")
        if kind != SPOT:
            info = {s: swap_info(live[s]) for s in symbols}
        return symbols

    def connections(symbols: list[str]) -> list[Source]:
        streams[:] = [OkxStream(f"{inst_type.lower()}#{i}", svc.url, kind, chunk, info=info, ping_interval=svc.ping_interval)
                      for i, chunk in enumerate(connection_plan(symbols, kind)) if chunk]
        return [ctx.connection(stream, start_delay=i * CONNECT_SPACING_S) for i, stream in enumerate(streams)]

    return [ctx.discovered(discover, connections)]


def spot(ctx: FeedContext) -> list[Source]:
    return _feed(ctx, SPOT)


def swap(ctx: FeedContext) -> list[Source]:
    return _feed(ctx, DERIVATIVE)


EXCHANGE = Exchange(
    name="okx",
    display="OKX",
    feeds=(
        Feed("okx_spot", SPOT, spot, "OKX spot: trades, best bid/ask and 24 h stats", uses_rest=True),
        Feed("okx_swap", DERIVATIVE, swap, "OKX perpetual swaps: trades, book top, mark, index, funding, OI", uses_rest=True),
    ),
    market=market_of,
    funding_interval_hours=DEFAULT_FUNDING_INTERVAL_HOURS,
    simulator="tests.sim.okx:OkxSim",
)
