"""Fault 7: a slow consumer: Redis slowed down while the simulator sends fast.

Redis 7 refuses DEBUG SLEEP unless enable-debug-command is set, so Redis is
slowed by pausing its process: first an 80 % duty cycle (SIGSTOP 0.2 s /
SIGCONT 0.05 s) for 4 s, then a full 3 s pause. Meanwhile 12 topics arrive at
100 Hz each. The sink's pending dict must stay at one entry per key, no
written `timestamp`/`recv_ts` may go backwards (in the hash or on pub/sub),
and once the flow stops the hash holds exactly the last price sent.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from tests.harness import wait_for
from tests.reliability.util import Watcher, fresh, now_ms, rss_kb, status, time_until

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT"]
KEYS = [f"bybit_spot:{s}" for s in SYMBOLS]


def test_slow_redis_queue_stays_bounded_and_latest_values_win(redis_server, sim, make_supervisor, figures):
    sim.rate_hz = 100.0
    sv = make_supervisor()
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    wait_for(lambda: fresh(r, KEYS, 0), 15)
    pid = sv.info("bybit_spot")["pid"]
    rss_before = rss_kb(pid)
    redis_pid = redis_server.proc.pid

    last: dict[str, tuple[str, int]] = {}

    def monotonic_rows() -> None:
        pipe = r.pipeline(transaction=False)
        for k in KEYS:
            pipe.hmget(k, "timestamp", "recv_ts")
        for k, (ts, recv) in zip(KEYS, pipe.execute(), strict=True):
            prev = last.get(k)
            if prev is not None:
                assert ts >= prev[0] and int(recv) >= prev[1], f"{k} went back: {prev} -> {(ts, recv)}"
            last[k] = (ts, int(recv))

    pubsub_errors: list[str] = []
    pubsub_count = [0]
    ps = redis_server.client().pubsub()
    ps.subscribe(*KEYS)
    stop_ps = threading.Event()

    def listen() -> None:
        seen: dict[str, tuple[str, int]] = {}
        while not stop_ps.is_set():
            msg = ps.get_message(timeout=0.2)
            if not msg or msg["type"] != "message":
                continue
            body = json.loads(msg["data"])
            pubsub_count[0] += 1
            cur, prev = (body["timestamp"], int(body["recv_ts"])), seen.get(msg["channel"])
            if prev and (cur[0] < prev[0] or cur[1] < prev[1]):
                pubsub_errors.append(f"{msg['channel']}: {prev} -> {cur}")
            seen[msg["channel"]] = cur

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    pending_seen: list[int] = []
    rss_peak = rss_before

    with Watcher(monotonic_rows, interval=0.01) as watch:
        # Phase 1: Redis runs 20 % of the time.
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            os.kill(redis_pid, signal.SIGSTOP)
            time.sleep(0.2)
            os.kill(redis_pid, signal.SIGCONT)
            try:
                pending_seen.append(int(status(r, "bybit_spot")["pending_writes"]))
            except Exception:  # noqa: BLE001 - the status read may miss the window; try next cycle
                pass
            rss_peak = max(rss_peak, rss_kb(pid))
        # Phase 2: Redis frozen for 3 s (connections stay open).
        os.kill(redis_pid, signal.SIGSTOP)
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            rss_peak = max(rss_peak, rss_kb(pid))
            time.sleep(0.1)
        os.kill(redis_pid, signal.SIGCONT)
        t_cont, cont_ms = time.monotonic(), now_ms()
        caught_up = time_until(lambda: fresh(r, KEYS, cont_ms), 2.0, since=t_cont)
        pending_after = int(wait_for(lambda: (s := status(r, "bybit_spot")) and s.get("pending_writes"), 3))
        pending_seen.append(pending_after)

        # Latest value wins: stop the flow; the hash must hold exactly the last price sent.
        sim.rate_hz = 0.01
        time.sleep(0.3)
        bysim = sim.exchanges["bybit"]
        want = {f"bybit_spot:{s}": (i := bysim.instrument("spot", s)).fmt(i.price) for s in SYMBOLS}
        settled = time_until(lambda: all(r.hget(k, "ltp") == v for k, v in want.items()), 2.0)
    stop_ps.set()
    listener.join(2)
    ps.close()

    watch.assert_clean()
    assert not pubsub_errors, pubsub_errors[:3]
    assert pubsub_count[0] > 0
    assert pending_seen and max(pending_seen) <= len(KEYS), f"pending writes {pending_seen} > {len(KEYS)} keys"
    assert sv.info("bybit_spot")["pid"] == pid
    st = status(r, "bybit_spot")
    assert int(st["messages_total"]) > int(st["writes_total"]), "no coalescing happened under a slow Redis"
    figures.record("7 slow Redis", "pending writes, max seen (6 keys, 1200 frames/s)", max(pending_seen), "keys")
    figures.record("7 slow Redis", "frames received / key writes", f"{st['messages_total']} / {st['writes_total']}", "")
    figures.record("7 slow Redis", "RSS before / peak", f"{rss_before // 1024} / {rss_peak // 1024}", "MiB")
    figures.record("7 slow Redis", "Redis resumed -> all keys fresh", caught_up)
    figures.record("7 slow Redis", "flow stopped -> hash holds the last price sent", settled)
    figures.record("7 slow Redis", "backwards timestamps (hash reads / pub/sub msgs)",
                   f"0 of {watch.samples} / 0 of {pubsub_count[0]}", "")
