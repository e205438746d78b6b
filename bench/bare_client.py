"""Baseline client: websocket-client receive + json.loads and nothing else (no parsing to fields, no Redis).

    python -m bench.bare_client URL SYMBOLS SECONDS [--probe] [--hset REDIS_URL] [--reader ltp]

Prints one JSON line: frames, seconds, rate, CPU per message, and (with --probe) latency percentiles in µs.
--hset adds the naive one-HSET-per-frame write, the design the sink replaces.
--reader ltp receives the way the feeds do (one recv() per 64 KiB, wsframe.FrameDecoder, orjson):
the floor of the feed's own receive path, before fields and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import orjson
import websocket

from workers.runtime.ws import socket_reader
from workers.runtime.wsframe import TEXT, FrameDecoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("symbols", type=int)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--hset")
    ap.add_argument("--reader", choices=("websocket-client", "ltp"), default="websocket-client")
    args = ap.parse_args()
    symbols = [f"SIM{i:03d}USDT" for i in range(args.symbols)]
    r = None
    if args.hset:
        import redis
        r = redis.Redis.from_url(args.hset)
    count = 0
    lat: list[int] = []

    def on_open(ws: websocket.WebSocketApp) -> None:
        topics = [f"tickers.{s}" for s in symbols]
        for i in range(0, len(topics), 10):
            ws.send(json.dumps({"op": "subscribe", "args": topics[i:i + 10]}))

    loads = orjson.loads if args.reader == "ltp" else json.loads

    def on_data(ws: websocket.WebSocketApp, raw: bytes, opcode: int, fin: bool) -> None:
        nonlocal count
        msg = loads(raw)
        if "topic" not in msg:
            return
        count += 1
        if args.probe:
            sent = round(float(msg["data"]["lastPrice"]) * 1000)
            lat.append(((time.time_ns() // 1000) - sent) % 1_000_000_000)
        if r is not None:
            d = msg["data"]
            r.hset(f"bare:{d['symbol']}", mapping={"ltp": d["lastPrice"], "ts": str(msg["ts"])})

    if args.reader == "ltp":
        ws = websocket.create_connection(args.url, skip_utf8_validation=True)
        threading.Thread(target=read_like_the_feeds, args=(ws, on_open, on_data), daemon=True).start()
    else:
        app = websocket.WebSocketApp(args.url, on_open=on_open, on_data=on_data)
        threading.Timer(args.seconds + 1.0, app.close).start()
        threading.Thread(target=lambda: app.run_forever(skip_utf8_validation=True), daemon=True).start()
    time.sleep(1.0)  # warm-up: connect, subscribe, first frames
    lat.clear()
    c0, t0, cpu0 = count, time.perf_counter(), time.process_time()
    time.sleep(args.seconds)
    c1, t1, cpu1 = count, time.perf_counter(), time.process_time()
    out = {"frames": c1 - c0, "seconds": t1 - t0, "rate": (c1 - c0) / (t1 - t0),
           "cpu_us_per_msg": (cpu1 - cpu0) / max(1, c1 - c0) * 1e6}
    if lat:
        lat.sort()
        out["latency_us"] = {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "max": lat[-1], "n": len(lat)}
    print(json.dumps(out), flush=True)
    os._exit(0)


def read_like_the_feeds(ws: websocket.WebSocket, on_open, on_data) -> None:
    on_open(ws)
    sock = ws.sock
    sock.settimeout(None)
    decoder = FrameDecoder(1 << 22)
    read = socket_reader(sock)
    while data := read():
        for opcode, payload in decoder.feed(data):
            if opcode == TEXT:
                on_data(ws, payload, opcode, True)


if __name__ == "__main__":
    main()
