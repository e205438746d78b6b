"""Delta Exchange public market data (India / Global / testnet): protocol, parsing, discovery.

Facts (docs: delta-exchange/slate source/includes/_websocket_api.md, _rest_api.md, _changelog.md):
- Market data comes from the *public* socket (wss://public-socket.india.delta.exchange;
  testnet wss://socket-ind-pub.testnet.deltaex.org) in compact channels: `ticker`
  ({"type":"ticker","sy","sp","ts","d":[{..}]}, 24 h stats published every 5 s),
  `trades` ({"p","r","s","sy","t","ts"}, every trade in real time), `funding_rate`
  ({"fr","sy","ts"}), `spot_price` ({"p","sy","ts"}). The legacy channels of the private
  socket (`v2/ticker`, `v2/spot_price`, `all_trades`...) were announced for removal on
  31 July 2026 (changelog 17.04.26) and their sections deleted: not spoken here.
- `ltp` comes from `trades` only: the ticker's `ohlc` close is up to 5 s old.
- `product_updates` (market disruption, auction start/finish) covers every market without
  a symbol list ("automatically subscribes to all markets by default") and may arrive
  unasked: a known frame with nothing to write.
- subscribe: {"type":"subscribe","payload":{"channels":[{"name":..,"symbols":[..]}]}};
  the answer {"type":"subscriptions","channels":[..]} lists every current subscription;
  a refused channel carries "error" instead of "symbols".
- heartbeat: send {"type":"enable_heartbeat"} after connecting; the server sends
  {"type":"heartbeat"} every 30 s; reconnect after 35 s of silence (the silence watchdog).
- times: the ticker's `ts` is documented in microseconds; the other channels' times and
  REST's `timestamp` (its example looks like seconds) carry no unit: read by magnitude.
- open interest is in contracts: the ticker's `oi[0]` ("oi_contracts") and REST `oi`
  ("the number of outstanding contracts"). Numbers are mostly decimal strings.
- REST: GET /v2/products (contract_types, states, page_size, cursor `after` from meta.after),
  GET /v2/tickers (contract_types, underlying_asset_symbols), GET /v2/indices.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Collection, Iterable, MutableMapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from workers.exchanges.common import decode_object, describe, number_str, percent_to_fraction, unwrap
from workers.runtime.chain import ChainRule, Contract
from workers.runtime.declare import DERIVATIVE, OPTION, SPOT, Exchange, Feed
from workers.runtime.markets import FUTURE, PERPETUAL, Market, expiry_date, market, split_quote
from workers.runtime.model import IGNORED, PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError, Update
from workers.runtime.sharding import shard
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import now_ms

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

# Logical channel -> the public socket's channel name.
CHANNELS = {"ticker": "ticker", "trades": "trades", "funding": "funding_rate", "index": "spot_price"}
ENABLE_HEARTBEAT = '{"type":"enable_heartbeat"}'
PAGE_SIZE = 100          # the documented default; the maximum is not documented
SYMBOLS_PER_CONNECTION = 500  # no ticker cap is documented; keep frames and fan-in moderate
PERPETUAL_TYPE = "perpetual_futures"
FUTURE_TYPES = (PERPETUAL_TYPE, "futures")
OPTION_TYPES = ("call_options", "put_options")

_IGNORED = Control(IGNORED)
_PONG = Control(PONG)
_OPTION_RE = re.compile(r"^([CP])-([A-Z0-9]+)-(\d+(?:\.\d+)?)-(\d{6})$")


# -- symbols ---------------------------------------------------------------------------


def parse_option_symbol(symbol: str) -> dict[str, str] | None:
    """'C-BTC-108200-211025' -> option_type/underlying/strike_price/expiry_date/expiry; None if not an option."""
    m = _OPTION_RE.match(symbol)
    if m is None:
        return None
    kind, underlying, strike, ddmmyy = m.groups()
    try:
        day = dt.date(2000 + int(ddmmyy[4:6]), int(ddmmyy[2:4]), int(ddmmyy[0:2]))
    except ValueError:
        return None
    return {
        "option_type": "CALL" if kind == "C" else "PUT",
        "underlying": underlying,
        "strike_price": strike,
        "expiry_date": ddmmyy,
        "expiry": day.isoformat(),
    }


def index_symbol(symbol: str) -> str:
    """Delta's spot index for a pair: 'ETHUSD' -> '.DEETHUSD'; BTC is spelt XBT ('.DEXBTUSD')."""
    if symbol.startswith("."):
        return symbol
    if symbol.startswith("BTC"):
        symbol = "XBT" + symbol[3:]
    return ".DE" + symbol


# -- frame parsing ---------------------------------------------------------------------


def _micros(value: Any, name: str) -> int:
    """Epoch microseconds (int or digit string) -> epoch milliseconds."""
    if type(value) is str and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int or value <= 0:
        raise ParseError("bad_type", f"{name} should be epoch microseconds, got {value!r:.40}")
    return value // 1000


def epoch_ms(value: Any, name: str) -> int:
    """An epoch time in s, ms, µs or ns (int or digit string) -> ms, the unit told by magnitude.

    Delta's sockets send µs, while its REST tickers example shows seconds (1609459200):
    where the docs leave the unit open, a plausible date decides it."""
    if type(value) is str and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int or value <= 0:
        raise ParseError("bad_type", f"{name} should be an epoch time, got {value!r:.40}")
    for ms in (value * 1000, value, value // 1000, value // 1_000_000):  # as s, ms, µs, ns: the one in 2001..2286
        if 1_000_000_000_000 <= ms < 10_000_000_000_000:
            return ms
    raise ParseError("bad_value", f"{name} is not a plausible epoch time: {value!r:.40}")


def _put(fields: MutableMapping[str, str | None], key: str, value: Any, name: str) -> None:
    if value is not None and value != "":
        fields[key] = number_str(value, name)


def _at(seq: Any, i: int) -> Any:
    return seq[i] if isinstance(seq, list) and len(seq) > i else None


def option_fields(symbol: str) -> dict[str, str]:
    parsed = parse_option_symbol(symbol)
    if parsed is None:
        raise ParseError("bad_symbol", f"not an option symbol: {symbol!r:.60}")
    return parsed


def compact_ticker_fields(d: dict, spot: Any, kind: str) -> dict[str, str | None]:
    """One entry of a compact `ticker` frame's `d` list (see the doc's field key)."""
    f: dict[str, str | None] = {}
    ohlc = d.get("ohlc")
    if ohlc is not None and not (isinstance(ohlc, list) and len(ohlc) == 4):
        raise ParseError("bad_frame", f"ohlc should be [o,h,l,c], got {ohlc!r:.60}")
    # ohlc[3] (close) is the last trade as of the ticker's push, up to 5 s old: `ltp` comes from `trades`.
    _put(f, "high_24h", _at(ohlc, 1), "ohlc.high")
    _put(f, "low_24h", _at(ohlc, 2), "ohlc.low")
    _put(f, "mark_price", d.get("m"), "m")
    _put(f, "index_price", spot, "sp")
    if kind != "spot":  # a spot market has no open interest
        _put(f, "open_interest", _at(d.get("oi"), 0), "oi.contracts")
    _put(f, "turnover_24h", _at(d.get("to"), 0), "to.turnover")
    q = d.get("q")
    _put(f, "best_ask", _at(q, 0), "q.best_ask")
    _put(f, "best_bid", _at(q, 2), "q.best_bid")
    if isinstance(q, list):  # quotes sent, a side empty: its old price is deleted, not left standing
        for i, name in ((0, "best_ask"), (2, "best_bid")):
            if _at(q, i) in (None, ""):
                f[name] = None
    if kind == "options":
        g = d.get("g")
        for i, name in enumerate(("delta", "gamma", "rho", "theta", "vega")):
            _put(f, name, _at(g, i), f"g.{name}")
        qiv = d.get("qiv")
        _put(f, "ask_iv", _at(qiv, 0), "qiv.ask_iv")
        _put(f, "bid_iv", _at(qiv, 1), "qiv.bid_iv")
        _put(f, "implied_volatility", _at(qiv, 2), "qiv.mark_iv")
        if isinstance(qiv, list):
            for i, name in ((0, "ask_iv"), (1, "bid_iv")):
                if _at(qiv, i) in (None, ""):
                    f[name] = None
    return f


def _contracts(value: Any, name: str) -> str | None:
    """An open interest in contracts: a whole number (Delta trades whole contracts), else None."""
    if value is None or value == "":
        return None
    text = number_str(value, name)
    return text if Decimal(text) == Decimal(text).to_integral_value() else None


def rest_ticker_fields(d: dict, kind: str) -> dict[str, str | None]:
    """One row of REST GET /v2/tickers (the futures feed's first state and its 24 h volume)."""
    f: dict[str, str | None] = {}
    close = d.get("close")  # "the closing price of the last trade": a trade, so it may seed `ltp`
    if close is not None and close != "" and float(number_str(close, "close")) > 0:
        f["ltp"] = number_str(close, "close")
    _put(f, "high_24h", d.get("high"), "high")
    _put(f, "low_24h", d.get("low"), "low")
    _put(f, "mark_price", d.get("mark_price"), "mark_price")
    _put(f, "index_price", d.get("spot_price"), "spot_price")
    # `oi` is documented as "the number of outstanding contracts"; `oi_contracts` (undocumented, sent by
    # the live API beside a coin-denominated `oi`) wins when present. A fractional value can't be a count
    # of contracts and is not written: open_interest is contracts on every Delta path.
    oi = _contracts(d.get("oi_contracts"), "oi_contracts") if "oi_contracts" in d else _contracts(d.get("oi"), "oi")
    if oi is not None:
        f["open_interest"] = oi
    _put(f, "volume_24h", d.get("volume"), "volume")
    _put(f, "turnover_24h", d.get("turnover"), "turnover")
    if kind == "futures":
        _put(f, "funding_rate", d.get("funding_rate"), "funding_rate")
        rate = f.get("funding_rate")
        if rate is not None:
            f["funding_rate"] = percent_to_fraction(rate)
    quotes = d.get("quotes")
    q = quotes if isinstance(quotes, dict) else {}
    _put(f, "best_bid", q.get("best_bid"), "quotes.best_bid")
    _put(f, "best_ask", q.get("best_ask"), "quotes.best_ask")
    if kind == "options":
        greeks = d.get("greeks")
        g = greeks if isinstance(greeks, dict) else {}
        for name in ("delta", "gamma", "vega", "theta", "rho"):
            _put(f, name, g.get(name), f"greeks.{name}")
        _put(f, "implied_volatility", q.get("mark_iv"), "quotes.mark_iv")
        _put(f, "bid_iv", q.get("bid_iv"), "quotes.bid_iv")
        _put(f, "ask_iv", q.get("ask_iv"), "quotes.ask_iv")
    return f



def subscribe_frame(channels: dict[str, list[str]], op: str = "subscribe") -> str:
    return json.dumps({"type": op, "payload": {"channels": [{"name": n, "symbols": s} for n, s in channels.items() if s]}})


def _tokens(text: str) -> set[str]:
    return {t.rstrip(".") for t in re.findall(r"[A-Za-z0-9_.\-]+", text)}


class DeltaStream(WsStream):
    """One Delta public socket: which symbols on which channels, and the frame dispatch.

    `channels` maps a logical channel (`CHANNELS`' keys) to exchange symbols; `keys` maps
    an exchange symbol to its Redis key (they differ only for spot indices: '.DEXBTUSD'
    is written as 'BTCUSD').
    """

    def __init__(
        self,
        name: str,
        url: str,
        kind: str,
        channels: dict[str, list[str]],
        *,
        keys: dict[str, str] | None = None,
        ping_interval: float | None = None,
    ) -> None:
        if kind not in ("spot", "futures", "options"):
            raise ValueError(f"kind {kind!r}")
        unknown = set(channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s) {sorted(unknown)}; known: {sorted(CHANNELS)}")
        self.name = name
        self.url = url
        self.kind = kind
        self.channels = {CHANNELS[k]: list(v) for k, v in channels.items() if v}
        self.keys = dict(keys or {})
        for syms in self.channels.values():
            for s in syms:
                self.keys.setdefault(s, s)
        self.ping_interval = ping_interval  # heartbeat is server-driven; no client ping needed
        self._dropped: set[tuple[str, str]] = set()
        self.reset()

    def reset(self) -> None:
        self._wanted = {n: [s for s in syms if (n, s) not in self._dropped] for n, syms in self.channels.items()}
        self._named: set[str] = set()  # symbols whose static fields this connection has written

    def on_connect(self) -> list[str]:
        self.reset()
        frames = [ENABLE_HEARTBEAT]
        if any(self._wanted.values()):
            frames.append(subscribe_frame(self._wanted))
        return frames

    # -- dispatch ----------------------------------------------------------------------

    def parse(self, raw: str | bytes) -> list[Update] | Control:
        msg = decode_object(raw)
        kind = msg.get("type")
        if kind == "trades":
            return self._trade(msg)
        if kind == "ticker":
            return self._ticker(msg)
        if kind == "funding_rate":
            return self._funding_rate(msg)
        if kind == "spot_price":
            return self._index_price(msg)
        if kind == "subscriptions":
            return self._ack(msg)
        if kind in ("heartbeat", "pong"):
            return _PONG
        if kind == "product_updates":
            return self._product_update(msg)
        if kind in ("unsubscribed", "disable_heartbeat", "enable_heartbeat"):
            return _IGNORED
        raise ParseError("unknown_frame", describe(msg))

    def _update(self, symbol: str, fields: dict[str, str | None], ts_ms: int) -> Update:
        """The update of `symbol`'s key; its static fields once per connection (Redis keeps them)."""
        if symbol not in self._named:
            if self.kind == "options":
                fields.update(option_fields(symbol))
            fields["original_symbol"] = symbol
            self._named.add(symbol)
        return Update(self.keys[symbol], fields, ts_ms)

    def _symbol(self, msg: dict, channel: str) -> str:
        symbol = msg.get("sy")
        if type(symbol) is not str:
            raise ParseError("bad_type", f"{channel} sy is {symbol!r:.40}")
        return symbol

    def _trade(self, msg: dict) -> list[Update]:
        """A `trades` frame: one fill; its price is the `ltp`, its time `t` the event time."""
        symbol = self._symbol(msg, "trades")
        t = msg.get("t")
        ts_ms = epoch_ms(t, "trades.t")  # "time of the trade"; no unit stated (the doc's sample is µs)
        price = number_str(msg.get("p"), "trades.p", positive=True)
        if symbol not in self.keys:
            return []  # a chain or category subscription's other contracts
        # One socket delivers in order: the latest frame is the latest trade, even if the exchange's clock
        # stepped back (the sink keeps `timestamp` from going backwards).
        return [self._update(symbol, {"ltp": price}, ts_ms)]

    def _ticker(self, msg: dict) -> list[Update]:
        ts = _micros(msg.get("ts"), "ts")  # documented: microseconds
        entries = msg.get("d")
        if not isinstance(entries, list):
            raise ParseError("bad_frame", "ticker d is not a list")
        out = []
        for d in entries:
            if type(d) is not dict or type(d.get("s")) is not str:
                raise ParseError("bad_frame", f"ticker entry without symbol: {d!r:.80}")
            if d["s"] not in self.keys:
                continue  # e.g. the rest of an option chain we did not ask for
            fields = compact_ticker_fields(d, d.get("sp", msg.get("sp")), self.kind)
            if self.kind == "spot":
                fields["source"] = "spot"
            out.append(self._update(d["s"], fields, ts))
        return out

    def _funding_rate(self, msg: dict) -> list[Update]:
        symbol = self._symbol(msg, "funding_rate")
        ts_ms = epoch_ms(msg.get("ts"), "funding_rate.ts")
        rate = msg.get("fr")
        if symbol not in self.keys or rate is None:
            return []
        value = percent_to_fraction(number_str(rate, "funding_rate.fr"))  # Delta sends percent
        return [self._update(symbol, {"funding_rate": value}, ts_ms)]

    def _index_price(self, msg: dict) -> list[Update]:
        symbol = self._symbol(msg, "spot_price")
        ts_ms = epoch_ms(msg.get("ts"), "spot_price.ts")
        if symbol not in self.keys:
            return []
        # An index is no trade: written as index_price, and no ltp is made up from it.
        fields: dict[str, str | None] = {"index_price": number_str(msg.get("p"), "spot_price.p", positive=True), "source": "index"}
        return [self._update(symbol, fields, ts_ms)]

    @staticmethod
    def _product_update(msg: dict) -> Control:
        """Market disruption / auction notices: sent unasked, nothing in them for the hash."""
        product = msg.get("product")
        p = product if isinstance(product, dict) else {}
        return Control(IGNORED, f"product_updates {str(msg.get('event'))[:40]} {str(p.get('symbol'))[:40]}: "
                                f"trading_status {str(p.get('trading_status'))[:40]}")

    def _ack(self, msg: dict) -> Control:
        channels = msg.get("channels")
        if not isinstance(channels, list):
            raise ParseError("bad_frame", "subscriptions without a channels list")
        items: list[str] = []
        reasons: list[str] = []
        resend: dict[str, list[str]] = {}
        for ch in channels:
            if not isinstance(ch, dict) or "error" not in ch:
                continue
            name, error = str(ch.get("name")), str(ch.get("error"))
            wanted = self._wanted.get(name)
            reasons.append(f"{name}: {error}")
            if not wanted:
                items.append(name)  # a channel we never asked for
                continue
            # The error text may name the offending symbols; if so keep the rest of the channel.
            named = [s for s in wanted if s in _tokens(error)]
            bad = named or list(wanted)
            for s in bad:
                wanted.remove(s)
                self._dropped.add((name, s))
                items.append(self.keys[s])
            if named and wanted:
                resend[name] = list(wanted)
        if items:
            frames = (subscribe_frame(resend),) if resend else ()
            return Control(SUB_REJECTED, "; ".join(reasons)[:300], tuple(items), frames)
        summary = ", ".join(f"{c.get('name')}({len(c['symbols']) if isinstance(c.get('symbols'), list) else 0})"
                            for c in channels if isinstance(c, dict))
        return Control(SUBSCRIBED, summary)


# -- REST: paths and pure readers of the replies (the calls are made by the wiring) ------

PRODUCTS_PATH = "/v2/products"
TICKERS_PATH = "/v2/tickers"
INDICES_PATH = "/v2/indices"
DEFAULT_FUNDING_INTERVAL_HOURS = 8  # Delta's perpetuals settle every 8 h unless the product says otherwise


def _ok(body: dict) -> bool:
    return body.get("success") is not False


def products_params(contract_types: Sequence[str], states: str = "live") -> dict[str, Any]:
    return {"contract_types": ",".join(contract_types), "states": states, "page_size": PAGE_SIZE}


def products_page(body: Any) -> tuple[list[dict], str | None]:
    """One page of /v2/products: rows with a symbol, and the `after` cursor of the next page."""
    rows = unwrap(body, PRODUCTS_PATH, _ok)
    if not isinstance(rows, list):
        raise ParseError("bad_reply", f"{PRODUCTS_PATH}: result is not a list")
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    after = meta.get("after")
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("symbol"), str)], after if isinstance(after, str) else None


def tickers_params(contract_types: Sequence[str], underlying: str | None = None) -> dict[str, str]:
    params = {"contract_types": ",".join(contract_types)}
    if underlying:
        params["underlying_asset_symbols"] = underlying
    return params


def rows_of(body: Any, path: str) -> list[dict]:
    """The object rows of a list reply (tickers, indices)."""
    rows = unwrap(body, path, _ok)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def index_symbols(body: Any) -> set[str]:
    return {r["symbol"] for r in rows_of(body, INDICES_PATH) if isinstance(r.get("symbol"), str)}


def index_price(ticker_rows: Iterable[dict]) -> float | None:
    """The underlying's index price from its futures tickers (`spot_price`), centring the strike window."""
    for row in ticker_rows:
        try:
            price = float(row.get("spot_price") or 0)
        except (TypeError, ValueError):
            continue
        if price > 0:
            return price
    return None


def _settlement(product: dict) -> dt.datetime | None:
    settle = product.get("settlement_time")
    if isinstance(settle, str) and settle:
        try:
            return dt.datetime.fromisoformat(settle.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def is_live(product: dict, now: dt.datetime) -> bool:
    if product.get("state", "live") != "live":
        return False
    settle = _settlement(product)
    return settle is None or settle > now


def option_contracts(products: Iterable[dict]) -> list[Contract]:
    """Option products for the chain rule (expiry from `settlement_time`, else the symbol's date)."""
    out = []
    for p in products:
        opt = parse_option_symbol(p["symbol"])
        if opt is None:
            continue
        settle = _settlement(p) or dt.datetime.fromisoformat(opt["expiry"]).replace(tzinfo=dt.UTC)
        out.append(Contract(p["symbol"], opt["underlying"], int(settle.timestamp() * 1000), float(opt["strike_price"])))
    return out


def funding_interval_hours(product: dict) -> str:
    """Hours between fundings of a perpetual: the product's own figure if it carries one [U], else 8."""
    value = product.get("funding_interval")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 24 * 3600:
        return format(value / 3600 if value > 24 else value, "g")  # seconds or hours, by magnitude
    return str(DEFAULT_FUNDING_INTERVAL_HOURS)


def connection_plan(channels: dict[str, list[str]]) -> list[dict[str, list[str]]]:
    """Channel -> symbols for each socket: tickers sharded SYMBOLS_PER_CONNECTION to a socket, each
    symbol's trades and funding on its ticker's socket, the spot indices on the first socket."""
    others = {k: v for k, v in channels.items() if k != "ticker"}
    plans = []
    for i, chunk in enumerate(shard(channels.get("ticker", []), lambda s: (s,), max_topics=SYMBOLS_PER_CONNECTION)):
        wanted = {"ticker": chunk}
        for name, syms in others.items():
            wanted[name] = [s for s in syms if s in chunk] if name in ("trades", "funding") else (syms if i == 0 else [])
        plans.append(wanted)
    return [p for p in plans if any(p.values())]


# -- markets: how the panel reads a Delta symbol -----------------------------------------

_DATED = re.compile(r"^([A-Z0-9]+)_(\d{2})([A-Za-z]{3}|\d{2})(\d{2})$")


def market_of(symbol: str, kind: str) -> Market | None:
    """`<BASE><QUOTE>` (BTCUSD: a perpetual, or delta_spot's index of that pair) or `<BASE>_<QUOTE>`
    (BTC_USDT spot); a `_DDMonYY` / `_DDMMYY` suffix is a dated future; options are not markets."""
    if symbol[:2] in ("C-", "P-") or symbol.startswith("."):
        return None
    expiry = None
    dated = _DATED.match(symbol)
    if dated:
        expiry = expiry_date(*dated.group(2, 3, 4))
        if expiry is None:
            return None
        symbol = dated.group(1)
    if "_" in symbol:
        base, _, quote = symbol.partition("_")
        split: tuple[str, str] | None = (base, quote) if quote else None
    else:
        split = split_quote(symbol)
    if split is None:
        return None
    if kind == SPOT:
        return None if expiry else market(*split, SPOT)
    return market(*split, FUTURE if expiry else PERPETUAL, expiry)


# -- feeds: how each is wired ----------------------------------------------------------------
# Each feed re-discovers over REST every `discovery_interval`: which symbols are live (a configured
# one that is not is reported once, never subscribed) and, for options, the chain the rule picks;
# the connections are rebuilt when the set changes. Every market followed on `ticker` is also
# followed on `trades`, the only source of `ltp`; index pairs have no trades.

# What one discovery round decided: channel -> exchange symbols, exchange symbol -> Redis key.
Plan = tuple[dict[str, list[str]], dict[str, str]]


def _live_products(rest: Rest, rest_url: str, contract_types: Sequence[str]) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    rows = rest.pages(f"{rest_url}{PRODUCTS_PATH}", products_params(contract_types), products_page, "after")
    return [p for p in rows if is_live(p, now)]


def _ticker_rows(rest: Rest, rest_url: str, contract_types: Sequence[str], underlying: str | None = None) -> list[dict]:
    return rest.get_parsed(f"{rest_url}{TICKERS_PATH}", tickers_params(contract_types, underlying),
                           lambda body: rows_of(body, TICKERS_PATH))


def _discovered(ctx: FeedContext, kind: str, plan_of: Callable[[Rest, str], Plan]) -> list[Source]:
    svc = ctx.service
    plan: Plan = ({}, {})

    def discover(rest: Rest) -> list[str]:
        nonlocal plan
        plan = plan_of(rest, svc.rest_url)
        return sorted(set(plan[1].values()))

    def connections(_symbols: list[str]) -> list[Source]:
        channels, keys = plan
        return [ctx.connection(DeltaStream(f"{kind}#{i}", svc.url, kind, wanted, keys=keys))
                for i, wanted in enumerate(connection_plan(channels))]

    return [ctx.discovered(discover, connections)]


def futures(ctx: FeedContext) -> list[Source]:
    """`ticker` + `trades` + `funding_rate`; REST tickers add the 24 h volume the compact ticker lacks."""
    seeded: set[str] = set()

    def plan(rest: Rest, rest_url: str) -> Plan:
        products = {p["symbol"]: p for p in _live_products(rest, rest_url, FUTURE_TYPES)}
        symbols = ctx.accept_listed(ctx.service.symbols, set(products), "live future on Delta (unknown or expired)")
        perps = [s for s in symbols if products[s].get("contract_type") == PERPETUAL_TYPE]
        _seed_from_rest(ctx, _ticker_rows(rest, rest_url, FUTURE_TYPES), {s: products[s] for s in symbols}, seeded)
        return {"ticker": symbols, "trades": symbols, "funding": perps}, {s: s for s in symbols}

    return _discovered(ctx, "futures", plan)


def _seed_from_rest(ctx: FeedContext, rows: list[dict], products: dict[str, dict], seeded: set[str]) -> None:
    """A new symbol's first state from REST tickers (`ltp` from the last trade's `close`, until `trades`
    brings a newer one); afterwards only the 24 h volume, which the socket lacks."""
    recv_ms = now_ms()
    for row in rows:
        sym = row.get("symbol")
        if sym not in products:
            continue
        try:
            fields = rest_ticker_fields(row, "futures")
            ts_ms = epoch_ms(row.get("timestamp"), "timestamp")
        except ParseError as exc:
            ctx.stats.error(exc.kind, f"REST ticker {sym}: {exc.detail}")
            continue
        if sym in seeded:
            fields = {k: v for k, v in fields.items() if k == "volume_24h"}
        else:
            fields["original_symbol"] = sym
            if products[sym].get("contract_type") == PERPETUAL_TYPE:
                fields["funding_interval_hours"] = funding_interval_hours(products[sym])
            seeded.add(sym)
        if fields:
            ctx.sink.put(sym, fields, min(ts_ms, recv_ms), recv_ms)


def options(ctx: FeedContext) -> list[Source]:
    """Explicit symbols (checked live) plus the chain the selection rule picks."""
    svc = ctx.service
    rule = ChainRule.from_config(svc.selection, f"{svc.path}.selection")

    def plan(rest: Rest, rest_url: str) -> Plan:
        products = _live_products(rest, rest_url, OPTION_TYPES)
        symbols = set(ctx.accept_listed(svc.symbols, {p["symbol"] for p in products}, "live option on Delta (unknown or expired)"))
        if rule.underlyings:
            prices = {}
            for und in rule.underlyings if rule.strike_range_pct else ():
                price = index_price(_ticker_rows(rest, rest_url, FUTURE_TYPES, und))
                if price:
                    prices[und] = price
            chosen, no_price = rule.select(option_contracts(products), prices, now_ms())
            for und in no_price:
                ctx.stats.error("no_spot_price", f"no index price for {und}; its chain is skipped this round", parse=False)
            symbols.update(chosen)
        ordered = sorted(symbols)
        return {"ticker": ordered, "trades": ordered}, {s: s for s in ordered}

    return _discovered(ctx, "options", plan)


def spot_plan(wanted: Sequence[str], markets: Collection[str], indices: Collection[str]) -> tuple[Plan, dict[str, str]]:
    """A live `spot` product of that name if Delta lists one, else the pair's spot index; the plan and
    the symbols that are neither, with the reason."""
    tickers, index, keys, refused = [], [], {}, {}
    for sym in wanted:
        if sym in markets:
            tickers.append(sym)
            keys[sym] = sym
        elif index_symbol(sym) in indices:
            index.append(index_symbol(sym))
            keys[index_symbol(sym)] = sym
        else:
            refused[sym] = f"neither a live spot market nor an index {index_symbol(sym)} on Delta"
    return ({"ticker": tickers, "trades": tickers, "index": index}, keys), refused


def spot(ctx: FeedContext) -> list[Source]:
    def plan(rest: Rest, rest_url: str) -> Plan:
        markets = {p["symbol"] for p in _live_products(rest, rest_url, ("spot",))}
        found, refused = spot_plan(ctx.service.symbols, markets, rest.get_parsed(f"{rest_url}{INDICES_PATH}", None, index_symbols))
        ctx.report_selection(found[1].values(), refused)
        return found

    return _discovered(ctx, "spot", plan)


EXCHANGE = Exchange(
    name="delta",
    display="Delta",
    feeds=(
        Feed("delta_spot", SPOT, spot, "Delta spot markets or spot indices", uses_rest=True),
        Feed("delta_futures_ltp", DERIVATIVE, futures, "Delta perpetuals and futures: LTP, mark, funding, OI", uses_rest=True),
        Feed("delta_options", OPTION, options, "Delta option chains with Greeks", uses_rest=True),
    ),
    market=market_of,
    funding_interval_hours=float(DEFAULT_FUNDING_INTERVAL_HOURS),
    simulator="tests.sim.delta:DeltaSim",
)
