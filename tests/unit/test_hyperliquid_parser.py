"""Hyperliquid protocol module on the documented / captured samples (tests/samples/hyperliquid), name
resolution, and a property-based check that only ParseError escapes and nothing malformed is written."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.exchanges import hyperliquid as hl
from workers.runtime.fields import PARSER_FIELDS
from workers.runtime.model import IGNORED, PONG, SUB_REJECTED, SUBSCRIBED, Control, ParseError, Update

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "hyperliquid"
T0 = 1795955161612  # 2026-11-29T12:26:01.612Z
PLAIN = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def sample_json(name: str):
    return json.loads(sample(name))


def perp(*coins: str, channels=hl.CHANNELS, now: int = T0) -> hl.HyperliquidStream:
    s = hl.HyperliquidStream("perp#0", "ws://x/ws", hl.PERP, {c: c for c in coins or ("BTC",)}, channels=channels, clock=lambda: now)
    s.on_connect()
    return s


def spot(keys: dict[str, str] | None = None, now: int = T0) -> hl.HyperliquidStream:
    s = hl.HyperliquidStream("spot#0", "ws://x/ws", hl.SPOT, keys or {"@107": "HYPE/USDC"}, clock=lambda: now)
    s.on_connect()
    return s


def mainnet_like_spot_meta() -> dict:
    """PURR/USDC is pair 0; HYPE is token 150 and HYPE/USDC pair 107; the universe is listed out of order
    so that only the entries' own `index` can give the right `@` name."""
    names = {0: "USDC", 1: "PURR", 2: "HFUN", 150: "HYPE", 151: "UBTC"}
    tokens = [{"name": n, "szDecimals": 2, "weiDecimals": 8, "index": i, "tokenId": "0x0", "isCanonical": i < 2,
               "evmContract": None, "fullName": None} for i, n in names.items()]
    universe = [
        {"tokens": [151, 0], "name": "@142", "index": 142, "isCanonical": False},
        {"tokens": [150, 0], "name": "@107", "index": 107, "isCanonical": False},
        {"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True},
        {"tokens": [2, 0], "name": "@1", "index": 1, "isCanonical": False},
        {"tokens": [150, 99], "name": "@5", "index": 5, "isCanonical": False},  # quote token unknown: skipped
    ]
    return {"tokens": tokens, "universe": universe}


# -- frames out ------------------------------------------------------------------------------


def test_subscribe_frames_match_the_documented_shapes():
    frames = [json.loads(f) for f in perp("BTC", "ETH", "SOL").on_connect()]
    assert sample_json("ws_subscribe_activeAssetCtx_perp_BTC_sdk") in frames
    assert sample_json("ws_subscribe_bbo_ETH_sdk") in frames
    assert sample_json("ws_subscribe_trades_SOL_docs") in frames
    assert len(frames) == 9  # one coin per subscription: trades, activeAssetCtx, bbo for each
    assert [json.loads(f) for f in spot({"@1": "HFUN/USDC"}).on_connect()][1] == sample_json("ws_subscribe_activeAssetCtx_spot_at1_sdk")
    only_trades = perp("BTC", channels=("trades",)).on_connect()
    assert only_trades == ['{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}']


def test_ping_pong_and_the_plain_text_greeting():
    s = perp()
    assert json.loads(s.ping_frame()) == sample_json("ping")
    assert s.ping_interval == 30.0 and s.silence_timeout is None and s.binary_ok is False
    assert s.parse(sample("pong")) == Control(PONG)
    assert s.parse(b"Websocket connection established.").kind == IGNORED
    assert s.parse("Websocket connection established.\n").kind == IGNORED
    with pytest.raises(ParseError) as err:
        s.parse(b"Websocket connection refused.")
    assert err.value.kind == "bad_json"


def test_one_subscribed_control_when_every_subscription_is_acknowledged():
    s = perp("SOL", channels=("trades",))
    ack = s.parse(sample("ws_subscriptionResponse_trades_SOL_docs"))
    assert ack.kind == SUBSCRIBED and s.unacked() == []
    s = perp("SOL")
    assert s.parse(sample("ws_subscriptionResponse_trades_SOL_docs")).kind == IGNORED  # two more to come
    assert s.unacked() == [("activeAssetCtx", "SOL"), ("bbo", "SOL")]
    for kind in ("activeAssetCtx", "bbo"):
        last = s.parse(json.dumps({"channel": "subscriptionResponse", "data": {"method": "subscribe",
                                                                             "subscription": {"type": kind, "coin": "SOL"}}}))
    assert last.kind == SUBSCRIBED
    # Somebody else's echo (l2Book with defaults filled in), an unsubscribe ack: nothing to do.
    assert s.parse(sample("ws_subscriptionResponse_l2Book_fast_thirdparty_capture")).kind == IGNORED
    s.on_connect()
    assert s.last_unacked == [] and len(s.unacked()) == 3


def test_error_frames():
    s = perp("SOL", "BTC")
    with pytest.raises(ParseError) as err:
        s.parse(sample("ws_error_already_subscribed_thirdparty_capture"))
    assert err.value.kind == "already_subscribed"
    with pytest.raises(ParseError) as err:
        s.parse(json.dumps({"channel": "error", "data": 'Error parsing JSON into valid websocket request: {"method":"pong"}'}))
    assert err.value.kind == "exchange_error"
    # An error naming one of our subscriptions refuses that one, for good (not re-sent on reconnect).
    text = 'Error parsing JSON into valid websocket request: {"method":"subscribe","subscription":{"type":"bbo","coin":"BTC"}}'
    ctl = s.parse(json.dumps({"channel": "error", "data": text}))
    assert ctl.kind == SUB_REJECTED and ctl.items == ("BTC",) and ctl.detail.startswith("bbo: ")
    frames = s.on_connect()
    assert len(frames) == 5 and '{"method":"subscribe","subscription":{"type":"bbo","coin":"BTC"}}' not in frames
    with pytest.raises(ParseError):
        s.parse(json.dumps({"channel": "error", "data": {"nested": True}}))


# -- data ------------------------------------------------------------------------------------


def test_trades_sample_gives_ltp_at_trade_time():
    s = perp("BTC")
    [u] = s.parse(sample("ws_trades_BTC_thirdparty_capture"))
    assert u == Update("BTC", {"ltp": "84143.0", "original_symbol": "BTC"}, 1790232216193)
    [u] = s.parse(sample("ws_trades_BTC_thirdparty_capture"))
    assert u.fields == {"ltp": "84143.0"}  # original_symbol once per connection


def test_latest_trade_wins_and_a_replayed_older_trade_is_not_written():
    s = perp("BTC")
    def frame(*trades):
        return json.dumps({"channel": "trades", "data": [{"coin": "BTC", "side": "B", "px": px, "sz": "1.0", "time": t,
                                                           "hash": "0x0", "tid": 1, "users": ["a", "b"]} for px, t in trades]})
    [u] = s.parse(frame(("100.0", 2000), ("101.0", 3000), ("99.0", 1000)))
    assert u.fields["ltp"] == "101.0" and u.event_ts_ms == 3000
    [u] = s.parse(frame(("102.0", 3000), ("103.0", 3000)))  # same block time: list order decides
    assert u.fields["ltp"] == "103.0"
    s.on_connect()  # a reconnect; the first frame replays trades from before
    assert s.parse(frame(("98.0", 2500))) == []
    assert s.parse(json.dumps({"channel": "trades", "data": []})) == []


def test_perp_asset_context_sample():
    s = perp("BTC", now=T0)
    [u] = s.parse(sample("ws_activeAssetCtx_perp_BTC_thirdparty_capture"))
    assert u.symbol == "BTC" and u.event_ts_ms == T0  # contexts carry no time: the receive clock
    assert u.fields == {
        "mark_price": "84148.0", "index_price": "84198.0", "mid_price": "84143.5", "funding_rate": "0.0000018952",
        "open_interest": "36585.31848", "premium": "-0.0006413454", "volume_24h": "49116.08533",
        "turnover_24h": "4161029539.6949653625", "prev_price_24h": "86627.0",
        "funding_interval_hours": "1", "next_funding_time": "2026-11-29T13:00:00.000Z",
        "price_change_percent": "-2.8617",  # (84148.0 / 86627.0 - 1) * 100, mark against prevDayPx
        "original_symbol": "BTC",
    }
    assert "ltp" not in u.fields  # never from a mark or a mid


def test_next_funding_is_the_next_whole_utc_hour():
    assert hl.next_funding_ms(1795953600000) == 1795957200000  # exactly on the hour: the next one
    assert hl.next_funding_ms(1795957199999) == 1795957200000


def test_nullable_context_fields_are_left_out_and_the_rest_written():
    raw = sample_json("ws_activeAssetCtx_perp_BTC_thirdparty_capture")
    raw["data"]["ctx"] |= {"midPx": None, "premium": None, "impactPxs": None, "funding": "0.0", "openInterest": "0.0"}
    [u] = perp("BTC").parse(json.dumps(raw))
    assert "mid_price" not in u.fields and "premium" not in u.fields and "ltp" not in u.fields
    assert u.fields["mark_price"] == "84148.0" and u.fields["funding_rate"] == "0.0"


def test_spot_asset_context_sample_keyed_by_the_human_name():
    s = spot({"@107": "HYPE/USDC"}, now=T0)
    [u] = s.parse(sample("ws_activeSpotAssetCtx_at107_thirdparty_fixture"))
    assert u.symbol == "HYPE/USDC" and u.event_ts_ms == T0
    assert u.fields == {
        "mark_price": "92.949", "mid_price": "92.945", "volume_24h": "690824.1400000008", "turnover_24h": "64552049.6973299459",
        "prev_price_24h": "93.124", "price_change_percent": "-0.1879", "circulating_supply": "298462370.4079165459",
        "original_symbol": "@107",
    }
    with pytest.raises(ParseError):  # a perp context on a spot connection (and the reverse) is a mix-up
        s.parse(sample("ws_activeAssetCtx_perp_BTC_thirdparty_capture").replace(b'"BTC"', b'"@107"'))
    with pytest.raises(ParseError):
        perp("@107").parse(sample("ws_activeSpotAssetCtx_at107_thirdparty_fixture"))


def test_bbo_sample_and_empty_sides():
    s = perp("BTC")
    [u] = s.parse(sample("ws_bbo_BTC_thirdparty_capture"))
    assert u == Update("BTC", {"best_bid": "84143.0", "bid_size": "10.25923", "best_ask": "84144.0", "ask_size": "50.66422",
                               "original_symbol": "BTC"}, 1790232237145)
    raw = sample_json("ws_bbo_BTC_thirdparty_capture")
    raw["data"]["bbo"][1] = None
    [u] = s.parse(json.dumps(raw))
    # An empty side is deleted from the hash (None), not left at its old quote.
    assert u.fields == {"best_bid": "84143.0", "bid_size": "10.25923", "best_ask": None, "ask_size": None}
    raw["data"]["bbo"] = [None, None]
    [u] = s.parse(json.dumps(raw))
    assert u.fields == {"best_bid": None, "bid_size": None, "best_ask": None, "ask_size": None}


def test_frames_the_stream_does_not_handle():
    s = perp("BTC")
    for raw, kind in ((sample("ws_l2Book_BTC_trimmed3levels_thirdparty_capture"), "unknown_channel"),
                      (sample("ws_trades_BTC_thirdparty_capture").replace(b'"BTC"', b'"ETH"'), "unknown_coin"),
                      (b'{"channel":"trades","data":{"coin":"BTC"}}', "bad_frame"),
                      (b"[1,2]", "bad_frame"), (b"{nope", "bad_json"), (b'{"method":"ping"}', "unknown_frame")):
        with pytest.raises(ParseError) as err:
            s.parse(raw)
        assert err.value.kind == kind, raw


@pytest.mark.parametrize("bad", ["1e5", "NaN", "inf", "", " 1", "1_000", "١٢٣", 1e300, 0.0, True, None, ["1"], "-1.0", "0.0"])
def test_bad_prices_are_refused_whole(bad):
    raw = sample_json("ws_trades_BTC_thirdparty_capture")
    raw["data"][0]["px"] = bad
    with pytest.raises(ParseError):
        perp("BTC").parse(json.dumps(raw))
    raw = sample_json("ws_activeAssetCtx_perp_BTC_thirdparty_capture")
    raw["data"]["ctx"]["markPx"] = bad
    with pytest.raises(ParseError):
        perp("BTC").parse(json.dumps(raw))


def test_json_numbers_are_taken_as_the_docs_types_say():
    raw = sample_json("ws_activeAssetCtx_perp_BTC_thirdparty_capture")
    raw["data"]["ctx"] |= {"markPx": 84148.0, "funding": 1.25e-05, "openInterest": 36585}
    [u] = perp("BTC").parse(json.dumps(raw))
    assert (u.fields["mark_price"], u.fields["funding_rate"], u.fields["open_interest"]) == ("84148", "0.0000125", "36585")


def test_percent_change():
    assert hl.percent_change("110", "100") == "10"
    assert hl.percent_change("99.99", "100") == "-0.01"
    assert hl.percent_change("100", "100") == "0"
    assert hl.percent_change("1", "0") is None and hl.percent_change("1", "0.0") is None
    assert hl.percent_change("1" + "0" * 39, "0." + "0" * 39 + "1") is None  # absurd: dropped, not raised


def test_every_field_written_is_in_the_contract():
    s = perp("BTC")
    written: set[str] = set()
    for name in ("ws_trades_BTC_thirdparty_capture", "ws_activeAssetCtx_perp_BTC_thirdparty_capture", "ws_bbo_BTC_thirdparty_capture"):
        for u in s.parse(sample(name)):
            written |= set(u.fields)
    for u in spot().parse(sample("ws_activeSpotAssetCtx_at107_thirdparty_fixture")):
        written |= set(u.fields)
    assert written <= PARSER_FIELDS, written - PARSER_FIELDS
    assert {"ltp", "mark_price", "index_price", "funding_rate", "best_bid", "circulating_supply"} <= written


# -- REST: request bodies, name resolution, contexts -----------------------------------------------


def test_info_requests_and_limits():
    assert hl.info_url("https://api.hyperliquid.xyz/") == "https://api.hyperliquid.xyz/info"
    assert hl.meta_request() == {"type": "meta"} and hl.meta_request("xyz") == {"type": "meta", "dex": "xyz"}
    assert hl.spot_meta_request() == {"type": "spotMeta"}
    assert hl.meta_and_ctxs_request() == {"type": "metaAndAssetCtxs"}
    assert hl.spot_meta_and_ctxs_request() == {"type": "spotMetaAndAssetCtxs"}
    assert hl.request_weight(hl.meta_request()) == 20 and hl.request_weight({"type": "l2Book", "coin": "BTC"}) == 2
    assert hl.max_coins() == 150 and hl.subscriptions_needed(150) == 450 and hl.budget_problem(150) is None
    assert "over this feed's share of 450" in (hl.budget_problem(151) or "")
    assert hl.FEED_SUBSCRIPTION_SHARE * 2 <= hl.MAX_WS_SUBSCRIPTIONS_PER_IP
    assert hl.FEED_CONNECTION_SHARE * 2 <= hl.MAX_WS_CONNECTIONS_PER_IP


def test_resolve_perp():
    meta = sample_json("rest_info_meta_response_sdk_cassette")
    meta["universe"].append({"name": "MATIC2", "szDecimals": 1, "maxLeverage": 20, "isDelisted": True})
    coins, rejected = hl.resolve_perp(meta, ["BTC", "kPEPE", "kpepe", "NOPE", "MATIC2", "xyz:SP500", "BTC"])
    assert coins == ["BTC", "kPEPE"]
    assert rejected["MATIC2"] == "delisted"
    assert "did you mean kPEPE" in rejected["kpepe"] and "unknown coin" in rejected["NOPE"]
    assert "HIP-3" in rejected["xyz:SP500"]
    # A metaAndAssetCtxs answer works as well.
    coins, rejected = hl.resolve_perp(sample_json("rest_info_metaAndAssetCtxs_response_docs"), ["HPOS", "SOL"])
    assert coins == ["HPOS"] and set(rejected) == {"SOL"}
    for bad in (None, [], {"universe": "x"}, "null", [1, 2]):
        with pytest.raises(ParseError, match="unexpected answer|expected \\[meta"):
            hl.resolve_perp(bad, ["BTC"])


def test_resolve_spot_uses_the_universe_index_not_the_token_index():
    found, rejected = hl.resolve_spot(mainnet_like_spot_meta(), ["HYPE/USDC", "PURR/USDC", "HFUN/USDC", "@142", "hype/usdc", "HYPE",
                                                                "NOPE/USDC"])
    assert found == {"HYPE/USDC": "@107", "PURR/USDC": "PURR/USDC", "HFUN/USDC": "@1", "UBTC/USDC": "@142"}
    assert "did you mean HYPE/USDC" in rejected["hype/usdc"] and "BASE/QUOTE" in rejected["HYPE"]
    assert set(rejected) == {"hype/usdc", "HYPE", "NOPE/USDC"}
    assert hl.spot_names(sample_json("rest_info_spotMeta_response_docs_fixed")) == {"PURR/USDC": "PURR/USDC", "HFUN/USDC": "@1"}
    # spotMetaAndAssetCtxs works too; a duplicate human name keeps the first pair (as the SDK's table).
    dup = mainnet_like_spot_meta()
    dup["universe"].append({"tokens": [150, 0], "name": "@300", "index": 300, "isCanonical": False})
    assert hl.spot_names([dup, []])["HYPE/USDC"] == "@107"
    with pytest.raises(ParseError, match="unexpected answer|expected \\[meta"):
        hl.resolve_spot({"tokens": []}, ["HYPE/USDC"])


def test_rest_contexts_give_the_same_fields():
    reply = sample_json("rest_info_metaAndAssetCtxs_response_docs")
    [u], bad = hl.ctx_updates(hl.PERP, reply, {"ETH": "ETH"}, T0)
    assert bad == {}
    assert u.symbol == "ETH" and u.event_ts_ms == T0
    assert u.fields["mark_price"] == "6.0436" and u.fields["index_price"] == "6.0457" and u.fields["original_symbol"] == "ETH"
    assert "volume_24h" not in u.fields  # the docs' example has no dayBaseVlm
    # The docs' spot example carries no `coin` in its context: it joins the universe by position.
    [u], _ = hl.ctx_updates(hl.SPOT, sample_json("rest_info_spotMetaAndAssetCtxs_response_docs_fixed"), {"PURR/USDC": "PURR/USDC"}, T0)
    assert u.fields["mark_price"] == "0.14" and u.fields["mid_price"] == "0.209265" and u.fields["prev_price_24h"] == "0.20432"
    reply[1][2]["markPx"] = "NaN"  # HPOS: skipped and named; the others still update
    updates, bad = hl.ctx_updates(hl.PERP, reply, {"HPOS": "HPOS", "BTC": "BTC", "ETH": "ETH"}, T0)
    assert [u.symbol for u in updates] == ["BTC", "ETH"] and list(bad) == ["HPOS"]
    with pytest.raises(ParseError, match="unexpected answer|expected \\[meta"):
        hl.ctx_updates(hl.PERP, {"universe": []}, {}, T0)


def test_constructor_checks():
    with pytest.raises(ValueError):
        hl.HyperliquidStream("x", "ws://x", "futures", {"BTC": "BTC"})
    with pytest.raises(ValueError):
        hl.HyperliquidStream("x", "ws://x", hl.PERP, {"BTC": "BTC"}, channels=("l2Book",))


# -- fuzzing ---------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | st.floats(allow_nan=True)
           | st.text(max_size=12))
numbers_as_text = st.sampled_from(["NaN", "inf", "-1", "0", "0.0", "", " ", "1e999", "1e-5", "1_000", "١٢٣", "1.5", "-0.0",
                                   "9" * 400, "84143.0", "0.0000125", "12abc", "null", "1.", ".5"])
hostile = scalars | numbers_as_text | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=4), scalars, max_size=3)
good_numbers = (st.sampled_from(["84143.0", "0.0000125", "36585.31848", "-0.0006413454", "4161029539.6949653625", "92.949"])
                | st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")))


def mostly(good, bad=hostile):
    """`good` seven times in eight, a hostile value otherwise (a plain `|` would pick among all of hostile's branches)."""
    # sampled_from, not integers(0, 7): Hypothesis draws integer boundaries far more often than 1 in 8.
    return st.sampled_from(range(8)).flatmap(lambda i: bad if i == 7 else good)


NUM = mostly(st.sampled_from(range(3)).flatmap(lambda i: numbers_as_text if i == 2 else good_numbers))
COINS = {"perp": mostly(st.sampled_from(["BTC", "ETH", "ETH", "btc", "@107"])),
         "spot": mostly(st.sampled_from(["@107", "PURR/USDC", "PURR/USDC", "@1", "BTC"]))}
PERP_CTX = ("funding", "openInterest", "prevDayPx", "dayNtlVlm", "premium", "oraclePx", "markPx", "midPx", "impactPxs", "dayBaseVlm")
SPOT_CTX = ("prevDayPx", "dayNtlVlm", "markPx", "midPx", "circulatingSupply", "coin", "totalSupply", "dayBaseVlm")


@st.composite
def frames(draw, kind="perp"):
    """Frames of every channel with hostile values here and there; coins and the context channel mostly fit `kind`."""
    ctx_channel = "activeAssetCtx" if kind == "perp" else "activeSpotAssetCtx"
    coins = COINS[kind]
    channel = draw(mostly(st.sampled_from(["trades", "bbo", ctx_channel, ctx_channel, "activeAssetCtx", "activeSpotAssetCtx",
                                           "subscriptionResponse", "error", "pong", "l2Book", "post"])))
    if channel == "trades":
        trade = st.fixed_dictionaries({"coin": coins, "px": NUM, "time": mostly(st.integers(-5, 2 * 10**13))})
        data = draw(mostly(st.lists(mostly(trade), max_size=4)))
    elif channel == "bbo":
        level = mostly(st.none() | st.fixed_dictionaries({"px": NUM, "sz": NUM, "n": st.integers(0, 9)}))
        sides = mostly(st.lists(level, min_size=2, max_size=2))
        data = {"coin": draw(coins), "time": draw(mostly(st.integers(0, 10**13))), "bbo": draw(sides)}
    elif channel in ("activeAssetCtx", "activeSpotAssetCtx"):
        names = PERP_CTX if channel == "activeAssetCtx" else SPOT_CTX
        ctx = {k: draw(mostly(NUM, st.none() | hostile)) for k in names}
        for k in draw(st.sets(st.sampled_from(names), max_size=2)):
            del ctx[k]
        data = {"coin": draw(coins), "ctx": draw(mostly(st.just(ctx)))}
    elif channel == "subscriptionResponse":
        data = {"method": draw(mostly(st.sampled_from(["subscribe", "unsubscribe"]))),
                "subscription": draw(mostly(st.fixed_dictionaries({"type": mostly(st.sampled_from(hl.CHANNELS)), "coin": coins})))}
    elif channel == "error":
        data = draw(mostly(st.sampled_from(['Already subscribed: {"type":"bbo","coin":"BTC"}', '{"type":"trades","coin":"BTC"}',
                                            '"coin":"@107"', '"coin":"ETH" "type":[1]'])))
    else:
        data = draw(hostile)
    return json.dumps({"channel": channel, "data": data}, default=str)


def check(stream: hl.HyperliquidStream, raw: bytes | str) -> None:
    try:
        result = stream.parse(raw)
    except ParseError:
        return
    if isinstance(result, Control):
        assert all(isinstance(f, str) for f in result.frames) and all(isinstance(i, str) for i in result.items)
        return
    assert isinstance(result, list)
    for u in result:
        assert isinstance(u, Update) and u.symbol in stream.keys.values() and type(u.event_ts_ms) is int and u.event_ts_ms > 0
        assert set(u.fields) <= PARSER_FIELDS, set(u.fields) - PARSER_FIELDS
        for name, value in u.fields.items():
            if value is None:  # deleted: only a side of the book that emptied
                assert name in ("best_bid", "bid_size", "best_ask", "ask_size"), name
                continue
            assert type(value) is str
            if name in ("original_symbol", "next_funding_time"):
                continue
            assert PLAIN.fullmatch(value), (name, value)  # plain decimal: no exponent, NaN, spaces or odd digits
            if name in ("ltp", "mark_price", "index_price", "mid_price", "best_bid", "best_ask"):
                assert math.isfinite(float(value)) and float(value) > 0, (name, value)
        if "ltp" in u.fields:
            assert set(u.fields) <= {"ltp", "original_symbol"}  # ltp comes from trades only, never a mark or a mid


STREAMS = {"perp": lambda: perp("BTC", "ETH"), "spot": lambda: spot({"@107": "HYPE/USDC", "PURR/USDC": "PURR/USDC", "@1": "HFUN/USDC"})}


@pytest.mark.parametrize("kind", sorted(STREAMS))
@FUZZ
@given(data=st.data())
def test_fuzz_structured_frames(kind, data):
    check(STREAMS[kind](), data.draw(frames(kind)))


@pytest.mark.parametrize("kind", sorted(STREAMS))
@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=80).map(str.encode))
def test_fuzz_arbitrary_bytes(kind, raw):
    check(STREAMS[kind](), raw)


@FUZZ
@given(seq=st.lists(frames(), max_size=12))
def test_fuzz_a_sequence_on_one_stream(seq):
    s = perp("BTC", "ETH")  # state (acks, refusals, last trade times) carries over, as on a live socket
    for raw in seq:
        check(s, raw)
    s.on_connect()
    for f in s.on_connect():
        assert json.loads(f)["method"] == "subscribe"



# Well-formed frames with arbitrary plain values: always parsed, and every value lands unchanged where it belongs.
price = st.decimals(min_value=Decimal("0.000001"), max_value=10**7, places=6).map(lambda d: format(d, "f"))
amount = st.decimals(min_value=0, max_value=10**12, places=8).map(lambda d: format(d, "f"))
signed = st.decimals(min_value=-1, max_value=1, places=10).map(lambda d: format(d, "f"))
times = st.integers(1, 10**13)


@FUZZ
@given(trades=st.lists(st.tuples(price, times), min_size=1, max_size=5), coin=st.sampled_from(["BTC", "ETH"]))
def test_valid_trades_always_write_the_latest(trades, coin):
    s = perp("BTC", "ETH")
    raw = json.dumps({"channel": "trades", "data": [{"coin": coin, "side": "A", "px": p, "sz": "1.0", "time": t, "hash": "0x",
                                                      "tid": 1, "users": []} for p, t in trades]})
    [u] = s.parse(raw)
    latest = max(range(len(trades)), key=lambda i: (trades[i][1], i))
    assert u.fields == {"ltp": trades[latest][0], "original_symbol": coin} and u.event_ts_ms == trades[latest][1]


@FUZZ
@given(mark=price, oracle=price, mid=st.none() | price, funding=signed, premium=st.none() | signed, oi=amount, vlm=amount,
       ntl=amount, prev=amount, now=times)
def test_valid_perp_contexts_always_parse(mark, oracle, mid, funding, premium, oi, vlm, ntl, prev, now):
    ctx = {"funding": funding, "openInterest": oi, "prevDayPx": prev, "dayNtlVlm": ntl, "premium": premium, "oraclePx": oracle,
           "markPx": mark, "midPx": mid, "impactPxs": None if mid is None else [mid, mid], "dayBaseVlm": vlm}
    [u] = perp("BTC", now=now).parse(json.dumps({"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": ctx}}))
    f = u.fields
    assert (f["mark_price"], f["index_price"], f["funding_rate"], f["open_interest"]) == (mark, oracle, funding, oi)
    assert f.get("mid_price") == mid and f.get("premium") == premium and "ltp" not in f and u.event_ts_ms == now
    assert f["next_funding_time"].endswith(":00:00.000Z")
    if Decimal(prev) > 0:
        assert Decimal(f["price_change_percent"]) == ((Decimal(mark) - Decimal(prev)) * 100 / Decimal(prev)).quantize(Decimal("0.0001"))
    check(perp("BTC"), json.dumps({"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": ctx}}))


@FUZZ
@given(bid=st.none() | st.tuples(price, amount), ask=st.none() | st.tuples(price, amount), t=times)
def test_valid_bbo_always_parses(bid, ask, t):
    levels = [None if side is None else {"px": side[0], "sz": side[1], "n": 1} for side in (bid, ask)]
    out = spot({"@1": "HFUN/USDC"}).parse(json.dumps({"channel": "bbo", "data": {"coin": "@1", "time": t, "bbo": levels}}))
    [u] = out  # an empty side deletes its fields (None): even [null, null] is an update
    assert u.symbol == "HFUN/USDC" and u.event_ts_ms == t
    assert (u.fields.get("best_bid"), u.fields.get("bid_size")) == (bid or (None, None))
    assert (u.fields.get("best_ask"), u.fields.get("ask_size")) == (ask or (None, None))
