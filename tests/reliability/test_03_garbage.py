"""Fault 3 under supervisord: garbage frames are counted, write nothing, break nothing.

Truncated JSON, binary frames, wrong field types, unknown topics, a frame over
the 4 MiB cap, NaN / negative / empty prices. The data stream is paused while
they are injected so that "existing Redis values untouched" is exact: every
hash is byte-for-byte the same afterwards. (The parsers themselves are fuzzed
in test_03_parser_fuzz.py; tests/integration covers the in-process path.)
"""

from __future__ import annotations

import json
import time

from tests.harness import wait_for
from tests.reliability.util import fresh, inject, now_ms, parse_errors, status, time_until
from workers.runtime.ws import DEFAULT_MAX_FRAME_BYTES

TS = 1_700_000_000_000


def _ticker(price) -> str:
    return json.dumps({"topic": "tickers.BTCUSDT", "ts": TS, "type": "snapshot", "data": {"symbol": "BTCUSDT", "lastPrice": price}})


HUGE = json.dumps({"topic": "tickers.BTCUSDT", "ts": TS, "type": "snapshot",
                   "data": {"symbol": "BTCUSDT", "lastPrice": "1"}, "pad": "x" * DEFAULT_MAX_FRAME_BYTES})
BYBIT_GARBAGE = {
    '{"topic": "tickers.BTCUSDT", "ts": 1, "data": {': "bad_json",
    b"\x00\x01binary\xff": "binary_frame",
    _ticker(65000): "bad_type",            # a number where Bybit sends a decimal string
    _ticker("NaN"): "bad_value",
    _ticker("-5"): "bad_value",
    _ticker(""): "bad_value",
    '{"topic": "nosuch.BTCUSDT", "ts": 1, "data": {}}': "unknown_topic",
    '{"topic": "tickers.BTCUSDT", "ts": "soon", "data": {}}': "bad_type",
    "[1, 2, 3]": "bad_frame",
    HUGE: "oversized_frame",
}


def _index(price) -> str:
    return json.dumps({"type": "spot_price", "sy": ".DEXBTUSD", "p": price, "ts": TS * 1000})


DELTA_GARBAGE = {
    '{"type": "spot_price", "sy": ".DEXBTUSD", "p": "1"': "bad_json",
    b"\x00\x01binary\xff": "binary_frame",
    _index("NaN"): "bad_value",
    _index("-1"): "bad_value",
    _index(""): "bad_value",
    _index(["1"]): "bad_type",
    json.dumps({"type": "spot_price", "sy": ".DEXBTUSD", "p": "1", "ts": "yesterday"}): "bad_type",
    '{"type": "nosuch", "sy": ".DEXBTUSD"}': "unknown_frame",
    HUGE: "oversized_frame",
}
CASES = {  # feed -> (exchange, keys, garbage)
    "bybit_spot": ("bybit", ["bybit_spot:BTCUSDT", "bybit_spot:ETHUSDT"], BYBIT_GARBAGE),
    "delta_spot": ("delta", ["delta_spot:BTCUSD"], DELTA_GARBAGE),
}


def test_garbage_is_counted_writes_nothing_and_the_feed_carries_on(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT", "ETHUSDT"]},
                                    "delta_spot": {"symbols": ["BTCUSD"], "discovery_interval": 30}})
    r = redis_server.client()
    for feed in CASES:
        sv.ctl("start", feed)
    for _ex, keys, _g in CASES.values():
        wait_for(lambda keys=keys: fresh(r, keys, 0), 20)
    pids = {feed: sv.info(feed)["pid"] for feed in CASES}

    for ex, _k, _g in CASES.values():
        sim.exchanges[ex].faults.silent = True  # pause the data; the sockets stay open
    time.sleep(1.2)  # in-flight writes land and the status hash catches up
    before_rows = {k: r.hgetall(k) for _ex, keys, _g in CASES.values() for k in keys}
    before = {feed: status(r, feed) for feed in CASES}

    t0 = time.monotonic()
    for _feed, (ex, _keys, garbage) in CASES.items():
        assert inject(sim, ex, list(garbage)) == 1
    counted = {}
    for feed, (_ex, _keys, garbage) in CASES.items():
        want = int(before[feed]["parse_errors"]) + len(garbage)
        counted[feed] = time_until(lambda feed=feed, want=want: parse_errors(r, feed) >= want, 10, since=t0)
    time.sleep(1.2)  # one more status refresh: nothing else trickles in

    for feed, (_ex, keys, garbage) in CASES.items():
        st = status(r, feed)
        assert int(st["parse_errors"]) == int(before[feed]["parse_errors"]) + len(garbage)
        kinds_before, kinds = json.loads(before[feed]["errors_by_kind"]), json.loads(st["errors_by_kind"])
        for kind in set(garbage.values()):
            expected = sum(1 for k in garbage.values() if k == kind)
            assert kinds.get(kind, 0) - kinds_before.get(kind, 0) == expected, (feed, kind, kinds)
        assert st["reconnects"] == before[feed]["reconnects"] and sv.info(feed)["pid"] == pids[feed]
        for k in keys:
            assert r.hgetall(k) == before_rows[k], f"{k} changed while only garbage arrived"

    t1, resume_at = time.monotonic(), now_ms()
    for ex, _k, _g in CASES.values():
        sim.exchanges[ex].faults.silent = False
    for feed, (_ex, keys, garbage) in CASES.items():
        resumed = time_until(lambda keys=keys: fresh(r, keys, resume_at), 5, since=t1)
        figures.record(f"3 garbage ({feed})", f"{len(garbage)} bad frames -> all counted as parse errors", counted[feed])
        figures.record(f"3 garbage ({feed})", "writes / reconnects caused", "0 / 0", "")
        figures.record(f"3 garbage ({feed})", "good data after garbage -> in Redis", resumed)
