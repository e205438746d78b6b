"""Hyperliquid public market data (perpetuals and spot): protocol, name resolution, parsing.

Pure: no sockets, no HTTP, no Redis. Facts (shared notes exchanges/hyperliquid.md; [U] = unconfirmed):
- WS `wss://api.hyperliquid.xyz/ws`; REST `POST https://api.hyperliquid.xyz/info` with a JSON body `{"type": ...}`.
- Right after connecting the server may send the plain text `Websocket connection established.` (not JSON).
- Subscribe `{"method":"subscribe","subscription":{"type":..,"coin":..}}`, one coin per subscription; the ack
  is `{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{...echo...}}}`.
- Data `{"channel":<name>,"data":...}`: `trades` (a list), `bbo`, `activeAssetCtx` (perp) and, for the same
  subscription type on a spot coin, channel `activeSpotAssetCtx`. Every number is a decimal string;
  `midPx`, `impactPxs`, `premium` and either bbo side may be null. Context frames carry no time.
- Heartbeat: send `{"method":"ping"}`, answer `{"channel":"pong"}`; the server closes a connection after 60 s
  without traffic. Errors arrive as `{"channel":"error","data":"<text>"}` and leave the socket open, but a
  subscription naming an unknown coin closes the whole socket without a word [U]: subscribe only names
  resolved from a fresh `meta` / `spotMeta` (resolve_perp / resolve_spot).
- Perp coin = `meta.universe[i].name` (`BTC`, `kPEPE`); spot coin = `spotMeta.universe[j].name`, which is
  `PURR/USDC` for index 0 and `@<index>` for every other pair (the universe entry's `index`, not a token's).
- Funding is settled every hour on the hour; `funding` is the predicted hourly rate as a fraction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from workers.exchanges.common import decimal_str, decode_object, describe, number_str
from workers.runtime import declare
from workers.runtime.config import ConfigError
from workers.runtime.markets import PERPETUAL, Market, market
from workers.runtime.model import IGNORED, PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError, Update
from workers.runtime.stream import WsStream
from workers.runtime.timefmt import iso_ms, now_ms

if TYPE_CHECKING:
    from workers.runtime.feed import FeedContext, Source
    from workers.runtime.rest import Rest

# -- endpoints and limits ---------------------------------------------------------------

WS_PATH = "/ws"
INFO_PATH = "/info"  # POST, JSON body
MAINNET_WS = "wss://api.hyperliquid.xyz/ws"
MAINNET_REST = "https://api.hyperliquid.xyz"
TESTNET_WS = "wss://api.hyperliquid-testnet.xyz/ws"
TESTNET_REST = "https://api.hyperliquid-testnet.xyz"

PING_FRAME = '{"method":"ping"}'
PING_INTERVAL_S = 30.0      # the server closes after 60 s without traffic; 30 s leaves a whole missed ping of margin
SERVER_IDLE_CLOSE_S = 60.0
GREETING = "Websocket connection established."

# Per IP (gitbook "rate limits"). Connections: the stored gitbook says 100, newer copies 10 [U]: design for 10.
MAX_WS_SUBSCRIPTIONS_PER_IP = 1000
MAX_WS_CONNECTIONS_PER_IP = 10
MAX_WS_NEW_CONNECTIONS_PER_MIN = 30   # [U] third-party copies of the limits page
MAX_WS_MESSAGES_SENT_PER_MIN = 2000   # every subscribe frame counts: a reconnect spends one per subscription
REST_WEIGHT_PER_MIN = 1200
INFO_WEIGHT_DEFAULT = 20              # meta, spotMeta, metaAndAssetCtxs, spotMetaAndAssetCtxs (the spot page says 2; budget 20)
INFO_WEIGHT = {"l2Book": 2, "allMids": 2, "clearinghouseState": 2, "orderStatus": 2, "spotClearinghouseState": 2,
               "exchangeStatus": 2, "userRole": 60}
# What one feed may take, so that hyperliquid_perpetual and hyperliquid_spot together (plus a margin for a
# rebuild that briefly overlaps old and new connections) stay under the per-IP caps.
FEED_SUBSCRIPTION_SHARE = 450
FEED_CONNECTION_SHARE = 2

PERP, SPOT = "perp", "spot"
TRADES, CTX, BBO = "trades", "activeAssetCtx", "bbo"
CHANNELS = (TRADES, CTX, BBO)  # subscription types per coin, in subscribe order
FUNDING_INTERVAL_HOURS = 1
_HOUR_MS = 3_600_000

_IGNORED = Control(IGNORED)
_PONG = Control(PONG)
# Wire numbers are plain decimals ("84143.0"); anything else (exponent, "NaN", "1_000", non-ASCII digits,
# which float() would take) is refused so that only plain decimal strings reach Redis.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,40}(?:\.[0-9]{1,40})?", re.ASCII)
_COIN_IN_TEXT = re.compile(r'"coin"\s*:\s*"([^"\\]{1,80})"')
_TYPE_IN_TEXT = re.compile(r'"type"\s*:\s*"([^"\\]{1,40})"')


# -- budget ------------------------------------------------------------------------------


def subscriptions_needed(n_coins: int, channels: Sequence[str] = CHANNELS) -> int:
    """Subscriptions a feed of `n_coins` coins holds (one per coin and channel)."""
    return n_coins * len(channels)


def max_coins(channels: Sequence[str] = CHANNELS, share: int = FEED_SUBSCRIPTION_SHARE) -> int:
    """How many coins fit in one feed's subscription share (450 // 3 = 150)."""
    return share // max(1, len(channels))


def budget_problem(n_coins: int, channels: Sequence[str] = CHANNELS, share: int = FEED_SUBSCRIPTION_SHARE) -> str | None:
    """None if `n_coins` fits the feed's share, else a sentence for a config error."""
    need = subscriptions_needed(n_coins, channels)
    if need <= share:
        return None
    return (f"{n_coins} coins x {len(channels)} channels = {need} subscriptions, over this feed's share of {share} "
            f"(Hyperliquid allows {MAX_WS_SUBSCRIPTIONS_PER_IP} per IP for all feeds); at most {max_coins(channels, share)} coins")


# -- REST /info request bodies -----------------------------------------------------------


def info_url(rest_base: str) -> str:
    """'https://api.hyperliquid.xyz' -> 'https://api.hyperliquid.xyz/info' (POST it a request body below)."""
    return rest_base.rstrip("/") + INFO_PATH


def meta_request(dex: str = "") -> dict[str, str]:
    """Perp universe of the first perp dex (or the HIP-3 dex named)."""
    return {"type": "meta", "dex": dex} if dex else {"type": "meta"}


def meta_and_ctxs_request(dex: str = "") -> dict[str, str]:
    return {"type": "metaAndAssetCtxs", "dex": dex} if dex else {"type": "metaAndAssetCtxs"}


def spot_meta_request() -> dict[str, str]:
    return {"type": "spotMeta"}


def spot_meta_and_ctxs_request() -> dict[str, str]:
    return {"type": "spotMetaAndAssetCtxs"}


def request_weight(body: dict[str, Any]) -> int:
    """REST weight of one /info request (1200 per minute per IP)."""
    return INFO_WEIGHT.get(str(body.get("type")), INFO_WEIGHT_DEFAULT)


# -- name resolution (pure: the caller fetched the replies) --------------------------------


def _meta_of(reply: Any, what: str) -> dict:
    """`meta`/`spotMeta` itself, or the first element of a `...AndAssetCtxs` reply."""
    if isinstance(reply, list) and len(reply) == 2:
        reply = reply[0]
    if not isinstance(reply, dict) or not isinstance(reply.get("universe"), list):
        raise ParseError("bad_reply", f"{what}: unexpected answer ({type(reply).__name__} without a universe list)")
    return reply


def resolve_perp(meta_reply: Any, wanted: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Wanted perp coins -> (coins to subscribe, in the order asked; {name: why not} for the rest).

    Names must match the universe exactly (case matters: `kPEPE`); delisted coins are refused because
    their marks are frozen. `meta_reply` is a `meta` or `metaAndAssetCtxs` answer; a malformed one
    raises ParseError (read through poll.post_parsed: a RestError, which the discovery poller retries).
    """
    universe = _meta_of(meta_reply, "meta")["universe"]
    listed: dict[str, dict] = {}
    for entry in universe:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            listed.setdefault(entry["name"], entry)
    by_lower = {n.lower(): n for n in listed}
    coins: list[str] = []
    rejected: dict[str, str] = {}
    for name in wanted:
        entry = listed.get(name)
        if entry is None:
            if ":" in name:
                rejected[name] = "HIP-3 builder perp (dex:COIN): only the first perp dex is supported"
            elif name.lower() in by_lower:
                rejected[name] = f"unknown coin (names are case-sensitive: did you mean {by_lower[name.lower()]}?)"
            else:
                rejected[name] = "unknown coin (not in Hyperliquid's perp universe)"
        elif entry.get("isDelisted") is True:
            rejected[name] = "delisted"
        elif name not in coins:
            coins.append(name)
    return coins, rejected


def spot_names(spot_meta_reply: Any) -> dict[str, str]:
    """Every spot pair: human name ('HYPE/USDC') -> exchange coin ('@107'); 'PURR/USDC' maps to itself.

    The human name is `tokens[base].name + "/" + tokens[quote].name`, tokens looked up by their
    `index` field; when two pairs would get the same name the first in the universe keeps it (as the
    official SDK builds its name table).
    """
    meta = _meta_of(spot_meta_reply, "spotMeta")
    tokens = meta.get("tokens")
    token_name: dict[int, str] = {}
    for tok in tokens if isinstance(tokens, list) else ():
        if isinstance(tok, dict) and type(tok.get("index")) is int and isinstance(tok.get("name"), str):
            token_name.setdefault(tok["index"], tok["name"])
    out: dict[str, str] = {}
    for pair in meta["universe"]:
        if not isinstance(pair, dict) or not isinstance(pair.get("name"), str):
            continue
        coin = pair["name"]
        pair_tokens = pair.get("tokens")
        if not (isinstance(pair_tokens, list) and len(pair_tokens) == 2 and all(type(t) is int for t in pair_tokens)):
            continue
        base, quote = (token_name.get(t) for t in pair_tokens)
        if base is None or quote is None:
            continue
        out.setdefault(f"{base}/{quote}", coin)
    return out


def resolve_spot(spot_meta_reply: Any, wanted: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Wanted spot pairs ('HYPE/USDC') -> ({human name: exchange coin}, {name: why not}).

    An exchange id given directly ('@107') is accepted and keyed by its human name. Case matters.
    """
    names = spot_names(spot_meta_reply)
    by_coin = {coin: human for human, coin in names.items()}
    by_lower = {n.lower(): n for n in names}
    found: dict[str, str] = {}
    rejected: dict[str, str] = {}
    for name in wanted:
        if name in names:
            found[name] = names[name]
        elif name in by_coin:
            found[by_coin[name]] = name
        elif name.lower() in by_lower:
            rejected[name] = f"unknown spot pair (names are case-sensitive: did you mean {by_lower[name.lower()]}?)"
        elif "/" not in name:
            rejected[name] = "unknown spot pair (spot names are BASE/QUOTE, e.g. HYPE/USDC)"
        else:
            rejected[name] = "unknown spot pair (not in Hyperliquid's spot universe)"
    return found, rejected


# -- subscribe frames --------------------------------------------------------------------


def subscription(kind: str, coin: str) -> dict[str, str]:
    return {"type": kind, "coin": coin}


def subscribe_frame(kind: str, coin: str, method: str = "subscribe") -> str:
    """One subscription per frame: the server refuses a coin array."""
    return json.dumps({"method": method, "subscription": subscription(kind, coin)}, separators=(",", ":"))


# -- field checks ------------------------------------------------------------------------


def _num(value: Any, name: str, sign: str = "any") -> str:
    """A plain decimal string, returned unchanged. sign: any | nonneg (no leading '-') | pos (> 0).

    The wire sends strings; the gitbook's types say `number` for context fields [U], so a JSON number is
    taken too (converted without float noise)."""
    s = number_str(value, name) if type(value) in (int, float) else decimal_str(value, name)
    if not _PLAIN_DECIMAL.fullmatch(s):
        raise ParseError("bad_value", f"{name} is not a plain decimal: {s!r:.40}")
    if sign != "any" and (s[0] == "-" or (sign == "pos" and float(s) == 0)):
        raise ParseError("bad_value", f"{name} out of range: {s!r:.40}")
    return s


def _put(fields: dict[str, str], dst: str, d: dict, src: str, sign: str = "any") -> None:
    """fields[dst] = d[src] when present and not null (null = not applicable now: nothing written)."""
    v = d.get(src)
    if v is not None:
        fields[dst] = _num(v, src, sign)


def _ms(value: Any, name: str) -> int:
    if type(value) is not int or not 0 < value < 10**14:
        raise ParseError("bad_type", f"{name} should be epoch milliseconds, got {value!r:.40}")
    return value


def percent_change(price: str, prev: str) -> str | None:
    """(price / prev - 1) * 100, 4 decimals, trailing zeros dropped; None when prev is 0 or the result is absurd."""
    try:
        p = Decimal(prev)
        if p <= 0:
            return None
        pct = ((Decimal(price) - p) * 100 / p).quantize(Decimal("0.0001"))
    except (ArithmeticError, InvalidOperation):
        return None
    if pct == 0:
        return "0"
    text = format(pct, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def next_funding_ms(now: int) -> int:
    """Hourly funding settles on the hour: the next whole UTC hour after `now`."""
    return (now // _HOUR_MS + 1) * _HOUR_MS


def perp_ctx_fields(ctx: dict, now: int) -> dict[str, str]:
    """PerpAssetCtx -> contract fields. price_change_percent is markPx against prevDayPx (same frame)."""
    f: dict[str, str] = {}
    f["mark_price"] = _num(ctx.get("markPx"), "markPx", "pos")
    _put(f, "index_price", ctx, "oraclePx", "pos")
    _put(f, "mid_price", ctx, "midPx", "pos")
    _put(f, "funding_rate", ctx, "funding")
    _put(f, "open_interest", ctx, "openInterest", "nonneg")
    _put(f, "premium", ctx, "premium")
    _put(f, "volume_24h", ctx, "dayBaseVlm", "nonneg")
    _put(f, "turnover_24h", ctx, "dayNtlVlm", "nonneg")
    _put(f, "prev_price_24h", ctx, "prevDayPx", "nonneg")
    if "funding_rate" in f:
        f["funding_interval_hours"] = str(FUNDING_INTERVAL_HOURS)
        f["next_funding_time"] = iso_ms(next_funding_ms(now))
    _change(f)
    return f


def spot_ctx_fields(ctx: dict) -> dict[str, str]:
    """SpotAssetCtx -> contract fields (no funding, oracle or open interest on spot)."""
    f: dict[str, str] = {}
    f["mark_price"] = _num(ctx.get("markPx"), "markPx", "pos")
    _put(f, "mid_price", ctx, "midPx", "pos")
    _put(f, "volume_24h", ctx, "dayBaseVlm", "nonneg")  # [U] present on the wire, not in the SDK's type
    _put(f, "turnover_24h", ctx, "dayNtlVlm", "nonneg")
    _put(f, "prev_price_24h", ctx, "prevDayPx", "nonneg")
    _put(f, "circulating_supply", ctx, "circulatingSupply", "nonneg")
    _change(f)
    return f


def _change(f: dict[str, str]) -> None:
    prev = f.get("prev_price_24h")
    if prev is not None:
        pct = percent_change(f["mark_price"], prev)
        if pct is not None:
            f["price_change_percent"] = pct


def ctx_updates(kind: str, reply: Any, keys: dict[str, str], now: int) -> tuple[list[Update], dict[str, str]]:
    """A REST `metaAndAssetCtxs` / `spotMetaAndAssetCtxs` answer -> (the updates the WS contexts would give,
    {coin: problem} for contexts that failed the checks and were skipped), for the coins in `keys`
    (exchange coin -> Redis symbol). Event time = `now` (contexts carry none). Perp contexts carry no
    name: they join the universe by position. Spot contexts carry `coin`; where one does not (the docs'
    example) it joins by position too. A reply of the wrong shape raises ParseError."""
    if not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list)):
        raise ParseError("bad_reply", f"{kind} asset contexts: expected [meta, [ctx...]], got {type(reply).__name__}")
    universe = _meta_of(reply, "meta" if kind == PERP else "spotMeta")["universe"]
    out: list[Update] = []
    bad: dict[str, str] = {}
    for i, ctx in enumerate(reply[1]):
        if not isinstance(ctx, dict):
            continue
        coin = ctx.get("coin") if kind == SPOT else None
        if coin is None and i < len(universe) and isinstance(universe[i], dict):
            coin = universe[i].get("name")
        if not isinstance(coin, str) or coin not in keys:
            continue
        try:
            fields = perp_ctx_fields(ctx, now) if kind == PERP else spot_ctx_fields(ctx)
        except ParseError as exc:
            bad[coin] = str(exc)  # one odd context must not cost the others their update
            continue
        fields["original_symbol"] = coin
        out.append(Update(keys[coin], fields, now))
    return out, bad


# -- the stream --------------------------------------------------------------------------


class HyperliquidStream(WsStream):
    """One Hyperliquid socket: `trades`, `activeAssetCtx` and `bbo` per coin, and the frame dispatch.

    `keys` maps the exchange coin to its Redis symbol (perp 'BTC' -> 'BTC'; spot '@107' -> 'HYPE/USDC').
    `ltp` comes only from trades; until a coin's first trade its hash has the other fields and no `ltp`.
    Context frames carry no time: their event time is `clock()` (the receive time, epoch ms), and the
    hourly `next_funding_time` is computed from it.
    """

    def __init__(
        self,
        name: str,
        url: str,
        kind: str,
        keys: dict[str, str],
        *,
        channels: Sequence[str] = CHANNELS,
        ping_interval: float = PING_INTERVAL_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if kind not in (PERP, SPOT):
            raise ValueError(f"kind {kind!r}: expected {PERP!r} or {SPOT!r}")
        bad = [c for c in channels if c not in CHANNELS]
        if bad or not channels:
            raise ValueError(f"channels {list(channels)!r}: expected a non-empty subset of {list(CHANNELS)}")
        self.name = name
        self.url = url
        self.kind = kind
        self.keys = dict(keys)
        self.channels = tuple(channels)
        self.ping_interval: float | None = ping_interval
        self.clock = clock
        self._ctx_channel = "activeAssetCtx" if kind == PERP else "activeSpotAssetCtx"
        self._dropped: set[tuple[str, str]] = set()  # (type, coin) the server refused: not re-sent on reconnect
        self._last_trade_ms: dict[str, int] = {}      # kept across connections: a replayed older trade never wins
        self._sent: set[tuple[str, str]] = set()
        self._acked: set[tuple[str, str]] = set()
        self._described: set[str] = set()
        self.last_unacked: list[tuple[str, str]] = []

    # -- connection ------------------------------------------------------------------

    def subscriptions(self) -> list[tuple[str, str]]:
        """(type, coin) pairs this stream subscribes, refused ones left out."""
        return [(ch, coin) for coin in self.keys for ch in self.channels if (ch, coin) not in self._dropped]

    def on_connect(self) -> list[str]:
        # An unknown coin makes the server drop the socket with no message [U]; what the previous
        # connection never saw acknowledged is kept for the wiring to log.
        self.last_unacked = sorted(self._sent - self._acked)
        self._described = set()
        self._acked = set()
        subs = self.subscriptions()
        self._sent = set(subs)
        return [subscribe_frame(ch, coin) for ch, coin in subs]

    def unacked(self) -> list[tuple[str, str]]:
        """Subscriptions sent on this connection and not acknowledged yet."""
        return sorted(self._sent - self._acked)

    def ping_frame(self) -> str:
        return PING_FRAME

    # -- dispatch --------------------------------------------------------------------

    def parse(self, raw: bytes | str) -> list[Update] | Control:
        if len(raw) < 64 and (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip() == GREETING:
            return _IGNORED  # plain text (not JSON), sent once after the handshake
        msg = decode_object(raw)
        channel = msg.get("channel")
        data = msg.get("data")
        if channel == TRADES:
            return self._trades(data)
        if channel == BBO:
            return self._bbo(data)
        if channel in ("activeAssetCtx", "activeSpotAssetCtx"):
            return self._ctx(channel, data)
        if channel == "pong":
            return _PONG
        if channel == "subscriptionResponse":
            return self._ack(data)
        if channel == "error":
            return self._error(data)
        if channel == "post":
            return _IGNORED  # answers to WS info posts, which this stream does not send
        if type(channel) is str:
            raise ParseError("unknown_channel", channel[:60])
        raise ParseError("unknown_frame", describe(msg))

    def _coin(self, coin: Any, channel: str) -> str:
        """The frame's coin, which must be one this stream subscribed."""
        if type(coin) is not str:
            raise ParseError("bad_type", f"{channel} coin is {coin!r:.40}")
        if coin not in self.keys:
            raise ParseError("unknown_coin", f"{channel} for {coin!r:.40}, which this connection did not subscribe")
        return coin

    def _update(self, coin: str, fields: Mapping[str, str | None], ts: int) -> Update:
        if coin not in self._described:  # static per coin; once per connection (the sink keeps full state)
            fields = {**fields, "original_symbol": coin}
            self._described.add(coin)
        return Update(self.keys[coin], fields, ts)

    def _trades(self, data: Any) -> list[Update]:
        if type(data) is not list:
            raise ParseError("bad_frame", "trades data is not a list")
        latest: dict[str, tuple[int, str]] = {}
        for t in data:
            if type(t) is not dict:
                raise ParseError("bad_frame", f"trade is not an object: {t!r:.60}")
            coin = self._coin(t.get("coin"), TRADES)
            px = _num(t.get("px"), "px", "pos")
            ts = _ms(t.get("time"), "time")
            prev = latest.get(coin)
            if prev is None or ts >= prev[0]:  # equal times: the later in the list is the later trade
                latest[coin] = (ts, px)
        out = []
        for coin, (ts, px) in latest.items():
            if ts < self._last_trade_ms.get(coin, 0):
                continue  # older than a trade already written (the first frame replays recent trades [U])
            self._last_trade_ms[coin] = ts
            out.append(self._update(coin, {"ltp": px}, ts))
        return out

    def _bbo(self, data: Any) -> list[Update]:
        if type(data) is not dict:
            raise ParseError("bad_frame", "bbo data is not an object")
        coin = self._coin(data.get("coin"), BBO)
        ts = _ms(data.get("time"), "bbo.time")
        sides = data.get("bbo")
        if type(sides) is not list or len(sides) != 2:
            raise ParseError("bad_frame", f"bbo should be [bid, ask], got {sides!r:.60}")
        fields: dict[str, str | None] = {}
        for level, px_name, sz_name in ((sides[0], "best_bid", "bid_size"), (sides[1], "best_ask", "ask_size")):
            if level is None:
                fields[px_name] = fields[sz_name] = None  # an empty side: its old quote is deleted
                continue
            if type(level) is not dict:
                raise ParseError("bad_frame", f"bbo level is not an object: {level!r:.60}")
            fields[px_name] = _num(level.get("px"), "px", "pos")
            fields[sz_name] = _num(level.get("sz"), "sz", "nonneg")
        if not fields:
            return []
        return [self._update(coin, fields, ts)]

    def _ctx(self, channel: str, data: Any) -> list[Update]:
        if channel != self._ctx_channel:
            raise ParseError("bad_frame", f"{channel} on a {self.kind} stream")
        if type(data) is not dict:
            raise ParseError("bad_frame", f"{channel} data is not an object")
        coin = self._coin(data.get("coin"), channel)
        ctx = data.get("ctx")
        if type(ctx) is not dict:
            raise ParseError("bad_frame", f"{channel} ctx is not an object")
        now = self.clock()
        fields = perp_ctx_fields(ctx, now) if self.kind == PERP else spot_ctx_fields(ctx)
        return [self._update(coin, fields, now)]

    def _ack(self, data: Any) -> Control:
        sub = data.get("subscription") if type(data) is dict else None
        if type(sub) is not dict:
            raise ParseError("bad_frame", "subscriptionResponse without a subscription")
        if data.get("method") != "subscribe":
            return _IGNORED  # an unsubscribe ack
        kind, coin = sub.get("type"), sub.get("coin")
        if type(kind) is not str or type(coin) is not str:
            raise ParseError("bad_frame", f"subscriptionResponse for {kind!r:.40} {coin!r:.40}")
        pair = (kind, coin)
        if pair not in self._sent or pair in self._acked:
            return _IGNORED
        self._acked.add(pair)
        # One SUBSCRIBED per connection (not one log line per subscription), when the last ack is in.
        if len(self._acked) == len(self._sent):
            return Control(SUBSCRIBED, f"{len(self._sent)} subscription(s) on {len(self.keys)} {self.kind} coin(s)")
        return _IGNORED

    def _error(self, data: Any) -> Control:
        if type(data) is not str:
            raise ParseError("exchange_error", f"error frame with {type(data).__name__} data")
        text: str = data
        if text.startswith(("Already subscribed", "Already unsubscribed")):
            raise ParseError("already_subscribed", text[:200])  # harmless to the data, but a bug on our side
        coin_m, type_m = _COIN_IN_TEXT.search(text), _TYPE_IN_TEXT.search(text)
        coin = coin_m.group(1) if coin_m else None
        if coin is not None and coin in self.keys:
            refused = [(t, coin) for t in ((type_m.group(1),) if type_m else self.channels) if (t, coin) in self._sent]
            if refused:
                self._dropped.update(refused)
                self._sent.difference_update(refused)
                return Control(SUB_REJECTED, f"{', '.join(t for t, _ in refused)}: {text[:200]}", (self.keys[coin],))
        raise ParseError("exchange_error", text[:200])



# -- markets: how the panel reads a Hyperliquid symbol -------------------------------------

PERP_QUOTE = "USDC"  # perpetuals are margined and settled in USDC
SPOT_ALIASES = {"UBTC": "BTC", "UETH": "ETH", "USOL": "SOL"}  # Unit-bridged spot tokens, named as their coin


def market_of(symbol: str, kind: str) -> Market | None:
    """Perpetuals are the coin (BTC; kPEPE is 1000 PEPE), quoted in USDC; spot is `<BASE>/<QUOTE>`
    (HYPE/USDC) with bridged tokens read as their coin; unresolved ids (@107) are not markets."""
    if symbol.startswith("@"):
        return None
    if kind == declare.SPOT:
        base, slash, quote = symbol.partition("/")
        if not slash or not quote:
            return None
        return market(SPOT_ALIASES.get(base, base), quote, declare.SPOT)
    if "/" in symbol or "-" in symbol:
        return None
    if symbol.startswith("k") and symbol[1:2].isupper():
        return Market(symbol[1:], PERP_QUOTE, PERPETUAL, None, 1000)
    return market(symbol, PERP_QUOTE, PERPETUAL)


# -- feeds: how each is wired --------------------------------------------------------------
# An unknown coin in a subscription makes the server close the whole socket, so nothing is subscribed
# that the live `meta` / `spotMeta` does not list: names are resolved at start and every
# `discovery_interval`, unknown or delisted ones are reported once and skipped, and later listings are
# picked up without a restart. Limits are per IP and shared by both feeds: each keeps to
# FEED_SUBSCRIPTION_SHARE subscriptions on one connection.

def _feed(ctx: FeedContext, kind: str) -> list[Source]:
    svc = ctx.service
    problem = budget_problem(len(svc.symbols))
    if problem:
        raise ConfigError(f"{svc.path}.symbols", problem, f"at most {max_coins()} symbols per feed")
    info = info_url(svc.rest_url)
    keys: dict[str, str] = {}  # exchange coin ('BTC', '@107') -> Redis symbol ('BTC', 'HYPE/USDC')

    def discover(rest: Rest) -> list[str]:
        nonlocal keys
        if kind == PERP:
            coins, refused = rest.post_parsed(info, meta_request(), lambda reply: resolve_perp(reply, svc.symbols))
            resolved = {coin: coin for coin in coins}
        else:
            names, refused = rest.post_parsed(info, spot_meta_request(), lambda reply: resolve_spot(reply, svc.symbols))
            resolved = {coin: name for name, coin in names.items()}
        ctx.report_selection(resolved.values(), refused)
        keys = resolved
        return sorted(resolved.values())

    def connections(_symbols: list[str]) -> list[Source]:
        if not keys:
            return []
        return [ctx.connection(HyperliquidStream(f"{kind}#0", svc.url, kind, keys, ping_interval=svc.ping_interval))]

    return [ctx.discovered(discover, connections)]


def perpetual(ctx: FeedContext) -> list[Source]:
    return _feed(ctx, PERP)


def spot(ctx: FeedContext) -> list[Source]:
    return _feed(ctx, SPOT)


EXCHANGE = declare.Exchange(
    name="hyperliquid",
    display="Hyperliquid",
    feeds=(
        declare.Feed("hyperliquid_perpetual", declare.DERIVATIVE, perpetual,
             "Hyperliquid perpetuals: trades, mark, oracle, hourly funding, OI, best bid/ask", uses_rest=True),
        declare.Feed("hyperliquid_spot", declare.SPOT, spot, "Hyperliquid spot pairs by name (HYPE/USDC): trades, mark, mid, best bid/ask",
             uses_rest=True),
    ),
    market=market_of,
    funding_interval_hours=float(FUNDING_INTERVAL_HOURS),
    simulator="tests.sim.hyperliquid:HyperliquidSim",
)
