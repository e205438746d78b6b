"""Binance feeds end to end: real supervisord, real Redis, the Binance simulator (REST + /ws, /public/ws, /market/ws),
over ws:// and wss://: the field contract, symbols Binance would silently ignore, drops, the server's pings,
garbage, REST refusals, and the 24 h close handled as a planned reconnect (lifetimes shortened to seconds)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from tests.harness import Supervisor, sim_config, wait_for
from tests.sim import Simulator

pytestmark = pytest.mark.e2e

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
COMMON = {"ltp", "best_bid", "best_ask", "bid_size", "ask_size", "volume_24h", "turnover_24h", "high_24h", "low_24h",
          "prev_price_24h", "price_change_percent", "timestamp", "recv_ts", "original_symbol"}
FUTURES = COMMON | {"mark_price", "index_price", "funding_rate", "funding_interval_hours", "next_funding_time", "open_interest"}


def status(r, feed: str) -> dict:
    return r.hgetall(f"service:status:{feed}")


def rejected(r, feed: str) -> dict:
    return json.loads(status(r, feed).get("rejected") or "{}")


def test_spot_fills_the_contract_and_never_subscribes_what_binance_would_ignore(redis_server, sim, make_supervisor):
    bn = sim.exchanges["binance"]
    bn.faults.reject_symbols = {"ETHUSDT"}  # Binance would ack its streams and stay silent: not listed, so refused first
    sv = make_supervisor(overrides={"binance_spot": {"symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "LUNAUSDT", "NOPEUSDT"]}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "binance_spot")
    btc = wait_for(lambda: (h := r.hgetall("binance_spot:BTCUSDT")) and COMMON <= h.keys() and h, 20)
    assert btc["original_symbol"] == "BTCUSDT" and ISO_MS.match(btc["timestamp"]) and float(btc["best_bid"]) < float(btc["best_ask"])
    wait_for(lambda: r.hget("binance_spot:SOLUSDT", "ltp"), 10)
    refused = wait_for(lambda: (j := rejected(r, "binance_spot")) and {"ETHUSDT", "LUNAUSDT", "NOPEUSDT"} <= j.keys() and j, 10)
    assert "BREAK" in refused["LUNAUSDT"] and "not listed" in refused["NOPEUSDT"]
    assert not r.exists("binance_spot:ETHUSDT", "binance_spot:LUNAUSDT", "binance_spot:NOPEUSDT")
    names = [n for s in bn.sessions for n in s.subs]
    assert names and all(n == n.lower() or n.endswith("@bookTicker") for n in names) and not any("eth" in n for n in names)

    # A drop: reconnect and resubscribe; the server's pings were answered, no limit was hit.
    connects = bn.connects
    sim.drop("binance")
    wait_for(lambda: bn.connects > connects, 20)
    recv = int(r.hget("binance_spot:BTCUSDT", "recv_ts"))
    wait_for(lambda: int(r.hget("binance_spot:BTCUSDT", "recv_ts")) > recv, 20)
    st = wait_for(lambda: (s := status(r, "binance_spot")) and int(s["reconnects"]) >= 1 and s, 5)  # refreshed every second
    assert st["parse_errors"] == "0"
    assert not bn.kills, bn.kills


def test_futures_fills_the_contract_over_both_paths(redis_server, sim, make_supervisor):
    bn = sim.exchanges["binance"]
    sv = make_supervisor(overrides={"binance_futures": {
        "symbols": ["BTCUSDT", "SOLUSDT", "1000PEPEUSDT", "OLDUSDT", "BTCUSDT_261225"], "poll_interval": 1}})
    r = redis_server.client()
    assert "started" in sv.ctl("start", "binance_futures")
    btc = wait_for(lambda: (h := r.hgetall("binance_futures:BTCUSDT")) and FUTURES <= h.keys() and h, 20)
    assert btc["funding_interval_hours"] == "8" and ISO_MS.match(btc["next_funding_time"]) and float(btc["open_interest"]) > 0
    sol = wait_for(lambda: (h := r.hgetall("binance_futures:SOLUSDT")) and FUTURES <= h.keys() and h, 20)
    assert sol["funding_interval_hours"] == "4"  # listed by fundingInfo
    refused = wait_for(lambda: (j := rejected(r, "binance_futures")) and {"OLDUSDT", "BTCUSDT_261225"} <= j.keys() and j, 10)
    assert "SETTLING" in refused["OLDUSDT"] and "CURRENT_QUARTER" in refused["BTCUSDT_261225"]
    routes = sorted(s.route for s in bn.sessions)
    assert routes == ["market", "public"]  # book top on /public, the rest on /market
    assert all(t is not None for s in bn.sessions for t in s.subs.values())  # every stream on its own path
    # Open interest keeps coming, under the weight budget.
    oi_time = r.hget("binance_futures:BTCUSDT", "timestamp")
    wait_for(lambda: r.hget("binance_futures:BTCUSDT", "timestamp") > oi_time, 10)
    assert not bn.kills, bn.kills


def test_garbage_rest_refusals_and_a_silent_server(redis_server, sim, make_supervisor):
    bn = sim.exchanges["binance"]
    bn.faults.rest_errors = [429, 418]  # the first discovery rounds: wait as Retry-After says
    sv = make_supervisor(overrides={"binance_spot": {"symbols": ["BTCUSDT"], "silence_timeout": 2}})
    r = redis_server.client()
    started = time.monotonic()
    sv.ctl("start", "binance_spot")
    wait_for(lambda: r.hget("binance_spot:BTCUSDT", "ltp"), 20)
    assert time.monotonic() - started >= 2.5  # Retry-After 1 s, then 2 s
    assert "rest_error" in json.loads(status(r, "binance_spot")["errors_by_kind"])
    bn.faults.garbage = ['{"e":"trade","E":1,"s":"BTCUSDT","p":"NaN"}', "{not json", '{"e":"trade","E":1,"s":"BTCUSDT","p":"-2"}',
                         '{"code":2,"msg":"Invalid request: missing field `method`"}']
    wait_for(lambda: int(status(r, "binance_spot")["parse_errors"]) >= 4, 10)
    assert float(r.hget("binance_spot:BTCUSDT", "ltp")) > 0 and status(r, "binance_spot")["reconnects"] == "0"
    bn.faults.silent = True
    wait_for(lambda: int(status(r, "binance_spot")["reconnects"]) >= 1, 10)
    bn.faults.silent = False
    recv = int(r.hget("binance_spot:BTCUSDT", "recv_ts"))
    wait_for(lambda: int(r.hget("binance_spot:BTCUSDT", "recv_ts")) > recv, 15)


def _watch(r, channel: str, stop: threading.Event, times: list[float], marks: list[str]) -> None:
    ps = r.pubsub()
    ps.subscribe(channel)
    while not stop.is_set():
        msg = ps.get_message(timeout=0.1)
        if msg and msg["type"] == "message":
            data = json.loads(msg["data"])
            if "stale" in data:
                marks.append(data["stale"])
            if "ltp" in data:
                times.append(time.monotonic())
    ps.close()


def test_the_24h_close_is_a_planned_reconnect_without_a_gap(redis_server, sim, make_supervisor):
    """Binance cuts each connection at 24 h (here 4 s); the feed replaces it first (here at 1.5 s), at once:
    no server cut, no `disconnected` mark, no gap in the trades longer than one reconnect. Without the plan,
    the server's cut is survived too. Both pings (every 0.3 s, pong within 1 s) are answered throughout."""
    bn = sim.exchanges["binance"]
    bn.lifetime_s, bn.ping_interval_s, bn.pong_timeout_s = 4.0, 0.3, 1.0
    sv = make_supervisor(overrides={"binance_spot": {"symbols": ["BTCUSDT"], "max_connection_age": 1.5},
                                    "binance_futures": {"symbols": ["BTCUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "binance_spot")
    wait_for(lambda: r.hget("binance_spot:BTCUSDT", "ltp"), 20)
    times: list[float] = []
    marks: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(r, "binance_spot:BTCUSDT", stop, times, marks), daemon=True)
    watcher.start()
    connects = bn.connects
    time.sleep(5.0)
    stop.set()
    watcher.join(2)
    assert bn.connects - connects >= 3  # replaced every 1.5 s
    assert not bn.kills, bn.kills  # never cut by the server's lifetime, never late with a pong
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) > 40 and max(gaps) < 0.75, max(gaps)  # trades every 50 ms; one reconnect is far less than 0.75 s
    assert marks == []
    st = wait_for(lambda: (s := status(r, "binance_spot")) and s["state"] == "subscribed" and s, 3)
    assert "connection_lost" not in json.loads(st["errors_by_kind"] or "{}")

    # The futures feed keeps the default (23.5 h): the server's cut (now 2 s) comes first and is survived.
    bn.lifetime_s = 2.0
    sv.ctl("start", "binance_futures")
    wait_for(lambda: r.hget("binance_futures:BTCUSDT", "ltp"), 20)
    wait_for(lambda: bn.kills["lifetime"] >= 2, 10)
    recv = int(r.hget("binance_futures:BTCUSDT", "recv_ts"))
    wait_for(lambda: int(r.hget("binance_futures:BTCUSDT", "recv_ts")) > recv, 10)
    assert bn.kills["no_pong"] == 0


def test_server_shutdown_notice_reconnects_at_once(redis_server, sim, make_supervisor):
    bn = sim.exchanges["binance"]
    bn.shutdown_grace_s = 5.0  # the feed leaves before the server closes
    sv = make_supervisor(overrides={"binance_spot": {"symbols": ["BTCUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "binance_spot")
    wait_for(lambda: r.hget("binance_spot:BTCUSDT", "ltp"), 20)
    connects = bn.connects
    sim.call(bn.server_shutdown)
    wait_for(lambda: bn.connects > connects, 2)
    recv = int(r.hget("binance_spot:BTCUSDT", "recv_ts"))
    wait_for(lambda: int(r.hget("binance_spot:BTCUSDT", "recv_ts")) > recv, 5)
    st = wait_for(lambda: (s := status(r, "binance_spot")) and s["state"] == "subscribed" and s, 3)
    assert st["parse_errors"] == "0" and "connection_lost" not in json.loads(st["errors_by_kind"] or "{}")


def test_both_feeds_over_tls(redis_server, tls_certs):
    tls_sim = Simulator(rate_hz=20.0, ssl_context=tls_certs.server_context()).start()
    sv = Supervisor(sim_config(redis_server.url, tls_sim.port, tls=True, overrides={"binance_futures": {"poll_interval": 1}}),
                    redis_server.url, tls_certs.trust_env("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"))
    try:
        sv.start()
        r = redis_server.client()
        for feed in ("binance_spot", "binance_futures"):
            assert "started" in sv.ctl("start", feed)
        wait_for(lambda: (h := r.hgetall("binance_spot:ETHUSDT")) and COMMON <= h.keys(), 20)
        wait_for(lambda: (h := r.hgetall("binance_futures:SOLUSDT")) and FUTURES <= h.keys(), 20)
        for feed in ("binance_spot", "binance_futures"):
            st = status(r, feed)
            assert st["state"] == "subscribed" and st["last_error"] == "" and st["reconnects"] == "0", st
    finally:
        sv.stop()
        tls_sim.stop()
