"""ltp benchmark: throughput, added latency, CPU per message, memory, order book, panel.

    python -m bench.bench [--quick] [--only tls|paced|feeds] [--out bench/results.md]

Starts a private redis-server, the exchange simulator and one real feed process
(`python -m workers bybit_spot`), and prints a table. Every figure has a
baseline measured in the same run (these machines are noisy): the bare
websocket-client receive + json.loads rate of the same frames, redis-benchmark,
a naive one-HSET-per-frame loop. The wss:// rows run the feed against a sender of
pre-built frames (`serve_frames`, a test CA made at run time) over ws:// and wss://
in alternating rounds: the same frames, ws:// is the baseline. The paced rows send the same
pre-built frames one per ms (`--rate`), with bare and the receive floor on the same sender; the
other feeds' rows run Delta, Hyperliquid and CoinDCX programs on the simulator.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import hiredis
import orjson
import redis
import requests
import yaml

from tests.harness import ROOT, RedisServer, free_port, wait_for

PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sim:
    def __init__(self) -> None:
        self.port_file = Path(tempfile.mkdtemp(prefix="ltp-bench-")) / "sim.port"
        self.proc = subprocess.Popen([PY, "-m", "tests.sim", "--port", "0", "--port-file", str(self.port_file)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL)
        self.port = int(wait_for(lambda: self.port_file.exists() and self.port_file.read_text(), 15))
        self.ws = f"ws://127.0.0.1:{self.port}/bybit/v5/public/spot"

    def set(self, **kw) -> None:
        requests.post(f"http://127.0.0.1:{self.port}/_sim/fault", json={"exchange": "bybit", **kw}, timeout=5).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def symbols(n: int) -> list[str]:
    return [f"SIM{i:03d}USDT" for i in range(n)]


class Feed:
    """The real bybit_spot program, configured for the simulator (or for `url`, with `env` added)."""

    def __init__(self, sim: Sim | None, redis_url: str, n_symbols: int, url: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        url = url or (sim.ws if sim else "")
        cfg = {"redis": {"url": redis_url, "history_len": 60}, "exchanges": {"bybit": {
            "endpoints": {"spot_ws": url}, "services": {"bybit_spot": {
                "endpoint": "spot_ws", "redis_prefix": "bybit_spot", "book_top": False, "symbols": symbols(n_symbols)}}}}}
        path = Path(tempfile.mkdtemp(prefix="ltp-bench-")) / "exchanges.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.redis.delete("service:status:bybit_spot")
        self.proc = subprocess.Popen([PY, "-m", "workers", "bybit_spot"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     env={**os.environ, "LTP_CONFIG": str(path), "LTP_LOG_LEVEL": "WARNING", **(env or {})})
        wait_for(lambda: int(self.status().get("messages_total", 0)) > 0, 20)

    def status(self) -> dict:
        return self.redis.hgetall("service:status:bybit_spot")

    def sample(self) -> tuple[int, float, float]:
        """(messages_total, status time, cpu seconds), the first two from one status snapshot."""
        before = self.status().get("updated_at")
        st = wait_for(lambda: (s := self.status()).get("updated_at") != before and s, 5)
        stamp = dt.datetime.fromisoformat(st["updated_at"].replace("Z", "+00:00")).timestamp()
        return int(st["messages_total"]), stamp, proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def bare(sim: Sim | str, n: int, seconds: float, *extra: str, env: dict[str, str] | None = None) -> dict:
    url = sim if isinstance(sim, str) else sim.ws
    out = subprocess.run([PY, "-m", "bench.bare_client", url, str(n), str(seconds), *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=seconds + 30, env={**os.environ, **(env or {})})
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"bench.bare_client {url} {' '.join(extra)} printed nothing (exit {out.returncode}): "
                           f"{out.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


WAKE_PROBE = """
import time
for _ in range(20):
    time.sleep(0.01)
c = time.process_time()
for _ in range(300):
    time.sleep(0.01)
print((time.process_time() - c) / 300 * 1e6)
"""


def wake_cost_us() -> float:
    """CPU a process is charged per wake-up after 10 ms asleep: the floor under any per-frame
    cost at 1k frames/s in 100 bursts/s (on nested VMs this alone can be tens of µs)."""
    return float(subprocess.run([PY, "-c", WAKE_PROBE], capture_output=True, text=True, timeout=60).stdout)


def redis_benchmark(port: int) -> dict:
    def run(*args: str) -> float:
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", "100000", *args, "hset", "bench:k", "f", "v"],
                             capture_output=True, text=True, timeout=120).stdout
        return float(out.strip().split("requests per second")[0].split()[-1].replace(",", ""))
    return {"hset_per_s": run(), "hset_pipelined16_per_s": run("-P", "16")}


def bench_throughput(sim: Sim, redis_url: str, n: int, seconds: float) -> dict:
    sim.set(rate_hz=0, probe=False)
    base = bare(sim, n, seconds)
    floor = bare(sim, n, seconds, "--reader", "ltp")
    feed = Feed(sim, redis_url, n)
    try:
        time.sleep(1.0)
        m0, t0, c0 = feed.sample()
        time.sleep(seconds)
        m1, t1, c1 = feed.sample()
        last = feed.redis.hgetall(f"bybit_spot:{symbols(n)[-1]}")
        assert last.get("ltp"), "the feed wrote nothing"
        rate = (m1 - m0) / (t1 - t0)
        return {"symbols": n, "bare_rate": base["rate"], "worker_rate": rate, "ratio": rate / base["rate"],
                "floor_rate": floor["rate"], "floor_ratio": rate / floor["rate"],
                "cpu_us_per_msg": (c1 - c0) / max(1, m1 - m0) * 1e6, "bare_cpu_us_per_msg": base["cpu_us_per_msg"],
                "rss_mb": proc_rss_mb(feed.proc.pid)}
    finally:
        feed.stop()
        sim.set(rate_hz=5)


class PubSubProbe:
    """A minimal pattern subscriber (raw socket, hiredis Reader, messages decoded after the window),
    so the measuring client adds as little as it can to the latency it measures."""

    def __init__(self, redis_url: str, pattern: str) -> None:
        u = urllib.parse.urlparse(redis_url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379))
        self.sock.settimeout(2.0)
        self.sock.sendall(hiredis.pack_command(("PSUBSCRIBE", pattern)))
        self.reader = hiredis.Reader()

    def read_for(self, seconds: float) -> list[tuple[int, bytes]]:
        """(receive time in µs, payload) of every pmessage for `seconds`."""
        out: list[tuple[int, bytes]] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            data = self.sock.recv(65536)
            now_us = time.time_ns() // 1000
            self.reader.feed(data)
            while (msg := self.reader.gets()) is not False:
                if msg[0] == b"pmessage":
                    out.append((now_us, msg[3]))
        return out

    def close(self) -> None:
        self.sock.close()


def bench_latency(sim: Sim, redis_url: str, seconds: float, cork: bool = False) -> dict:
    """10 symbols x 100 Hz = 1k frames/s, prices carry their send time; latency to the pub/sub message.

    cork: each tick's 10 frames leave the simulator together (as from a fast exchange server)
    instead of one segment per Python send ~100 µs apart."""
    sim.set(rate_hz=100, probe=True, cork_bursts=cork)
    base = bare(sim, 10, seconds, "--probe")
    floor = bare(sim, 10, seconds, "--probe", "--reader", "ltp")
    feed = Feed(sim, redis_url, 10)
    probe = PubSubProbe(redis_url, "bybit_spot:*")
    try:
        time.sleep(1.0)
        m0, t0, c0 = feed.sample()
        probe.read_for(0.2)  # what queued up meanwhile is not this window's latency
        lat = [(now_us - round(float(orjson.loads(data)["ltp"]) * 1000)) % 1_000_000_000
               for now_us, data in probe.read_for(seconds)]
        m1, t1, c1 = feed.sample()
        lat.sort()
        pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] / 1000  # noqa: E731 - ms
        return {"frames_per_s": (m1 - m0) / (t1 - t0), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": lat[-1] / 1000,
                "samples": len(lat), "bare_p50_ms": base["latency_us"]["p50"] / 1000,
                "bare_p99_ms": base["latency_us"]["p99"] / 1000, "bare_cpu_us_per_msg": base["cpu_us_per_msg"],
                "floor_cpu_us_per_msg": floor["cpu_us_per_msg"], "floor_p99_ms": floor["latency_us"]["p99"] / 1000,
                "cpu_us_per_msg": (c1 - c0) / max(1, m1 - m0) * 1e6}
    finally:
        probe.close()
        feed.stop()
        sim.set(rate_hz=5, probe=False, cork_bursts=False)


def bench_memory(sim: Sim, redis_url: str, seconds: float) -> dict:
    """500 symbols x 2 Hz = 1k frames/s for `seconds`; RSS at start, end and peak."""
    sim.set(rate_hz=2)
    feed = Feed(sim, redis_url, 500)
    try:
        time.sleep(5)
        start = proc_rss_mb(feed.proc.pid)
        peak = start
        end_at = time.monotonic() + seconds
        while time.monotonic() < end_at:
            time.sleep(5)
            peak = max(peak, proc_rss_mb(feed.proc.pid))
        end = proc_rss_mb(feed.proc.pid)
        return {"seconds": seconds, "rss_start_mb": start, "rss_end_mb": end, "rss_peak_mb": peak,
                "growth_mb": end - start, "messages": int(feed.status()["messages_total"])}
    finally:
        feed.stop()
        sim.set(rate_hz=5)


# -- ws:// against wss:// on the same pre-built frames ---------------------------------------------


def prebuilt_frames(n_symbols: int, rounds: int = 64) -> list[bytes]:
    """Bybit spot ticker snapshots as complete server frames (header + JSON), `rounds` per symbol."""
    out = []
    ts = int(time.time() * 1000)
    for r in range(rounds):
        for i, sym in enumerate(symbols(n_symbols)):
            price = 100.0 + i + r * 0.01
            payload = json.dumps({"topic": f"tickers.{sym}", "ts": ts, "type": "snapshot", "cs": r, "data": {
                "symbol": sym, "lastPrice": f"{price:.2f}", "highPrice24h": f"{price * 1.02:.2f}",
                "lowPrice24h": f"{price * 0.98:.2f}", "prevPrice24h": f"{price * 0.99:.2f}", "volume24h": "5865.470182",
                "turnover24h": "95949815.680875", "price24hPcnt": "0.0101", "usdIndexPrice": f"{price:.2f}"}}).encode()
            n = len(payload)
            head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
            out.append(head + payload)
    return out


def serve_frames(port_file: Path, n_symbols: int, cert: str | None, key: str | None, rate: float = 0.0) -> None:
    """A WebSocket server that answers the upgrade, then sends pre-built frames as fast as the client reads.

    ws://: the whole pre-built block per sendall(). wss://: one TLS record per frame, as exchange servers
    write them (the worst case for the reader: one SSL read per record), encrypted into a memory BIO and
    sent in one sendall() per block so the sender's own syscalls stay few. What the client sends is never
    read. Runs until killed (`python -m bench.bench --serve-frames PORT_FILE [--tls-cert C --tls-key K]`).

    rate > 0 (ws:// only, `--rate`): one frame per sendall() every 1/rate s, evenly spaced on absolute
    deadlines (a late frame leaves at once, the schedule is kept): the low-rate mode, a wake-up per frame."""
    frames = prebuilt_frames(n_symbols)
    block = b"".join(frames)
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port_file.write_text(str(listener.getsockname()[1]))

    def serve(conn: socket.socket) -> None:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_side=True) if ctx else None

        def recv_plain() -> bytes:
            if tls is not None:
                try:  # the request may have come with the client's last handshake message: already in `inc`
                    return tls.read(65536)
                except ssl.SSLWantReadError:
                    pass
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("client left")
            if tls is None:
                return data
            inc.write(data)
            return b""

        try:
            if tls is not None:
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        if out.pending:
                            conn.sendall(out.read())
                        data = conn.recv(65536)
                        if not data:
                            return
                        inc.write(data)
                if out.pending:
                    conn.sendall(out.read())
            request = b""
            while b"\r\n\r\n" not in request:
                request += recv_plain()
            key_line = next(line for line in request.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key_line.split(b":", 1)[1].strip()
                                                   + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            if tls is None:
                conn.sendall(answer)
                if rate > 0:
                    paced(conn, frames, rate)
                while True:
                    conn.sendall(block)
            tls.write(answer)
            conn.sendall(out.read())
            write, read_out, sendall = tls.write, out.read, conn.sendall
            while True:
                for f in frames:
                    write(f)
                sendall(read_out())
        except (OSError, StopIteration, ssl.SSLError):
            pass
        finally:
            conn.close()

    accept_forever(listener, serve)


def accept_forever(listener: socket.socket, handle: Any) -> None:
    """Each accepted connection (Nagle off: frames leave as written) served on a thread of its own."""
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def paced(conn: socket.socket, frames: list[bytes], rate: float) -> None:
    """Send `frames` round and round, one per sendall(), evenly spaced at `rate` frames/s."""
    period = 1.0 / rate
    sendall, clock, sleep = conn.sendall, time.monotonic, time.sleep
    due = clock()
    while True:
        for f in frames:
            due += period
            wait = due - clock()
            if wait > 0:
                sleep(wait)
            sendall(f)


class FrameServer:
    """`serve_frames` in its own process, at a higher priority when allowed (nice -10): like a remote
    exchange, the sender should not be what limits the rate on a busy 2-core box (its CPU is reported)."""

    def __init__(self, n_symbols: int, certs: Any = None, rate: float = 0.0) -> None:
        self.port_file = Path(tempfile.mkdtemp(prefix="ltp-bench-")) / "frames.port"
        tls = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)] if certs else []
        tls += ["--rate", str(rate)] if rate else []

        def raise_priority() -> None:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, -10)
            except OSError:
                pass  # not root: same priority as the feed

        self.proc = subprocess.Popen([PY, "-m", "bench.bench", "--serve-frames", str(self.port_file),
                                      "--symbols", str(n_symbols), *tls], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     preexec_fn=raise_priority)
        port = int(wait_for(lambda: self.port_file.exists() and self.port_file.read_text(), 15))
        self.url = f"{'wss' if certs else 'ws'}://127.0.0.1:{port}/v5/public/spot"

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bench_tls(redis_url: str, seconds: float, n_symbols: int = 10, rounds: int = 3) -> dict:
    """The bybit_spot program on the same pre-built frames over ws:// and wss://, rounds alternating;
    the feeds' own receive path without fields or Redis (floor) over both; sender CPU per frame."""
    from tests.harness import TlsCerts

    certs = TlsCerts()
    env = {"SSL_CERT_FILE": str(certs.ca_cert)}  # what a user sets for a private CA (websocket-client honours it)
    servers = {"ws": FrameServer(n_symbols), "wss": FrameServer(n_symbols, certs)}
    runs: dict[str, list[dict]] = {"ws": [], "wss": []}
    floors: dict[str, list[dict]] = {"ws": [], "wss": []}
    try:
        for _ in range(rounds):
            for scheme, server in servers.items():
                feed = Feed(None, redis_url, n_symbols, url=server.url, env=env)
                try:
                    time.sleep(1.0)
                    m0, t0, c0 = feed.sample()
                    s0 = server.cpu_s()
                    time.sleep(seconds)
                    m1, t1, c1 = feed.sample()
                    s1 = server.cpu_s()
                    n = max(1, m1 - m0)
                    runs[scheme].append({"rate": n / (t1 - t0), "cpu_us_per_msg": (c1 - c0) / n * 1e6,
                                         "sender_cpu_us_per_msg": (s1 - s0) / n * 1e6})
                finally:
                    feed.stop()
                floors[scheme].append(bare(server.url, n_symbols, seconds, "--reader", "ltp", env=env))
    finally:
        for server in servers.values():
            server.stop()
        certs.cleanup()

    def mean(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    out: dict = {"symbols": n_symbols, "rounds": rounds, "runs": runs, "floors": floors}
    for scheme in ("ws", "wss"):
        out[scheme] = {"rate": mean(runs[scheme], "rate"), "cpu_us_per_msg": mean(runs[scheme], "cpu_us_per_msg"),
                       "sender_cpu_us_per_msg": mean(runs[scheme], "sender_cpu_us_per_msg"),
                       "floor_rate": mean(floors[scheme], "rate"),
                       "floor_cpu_us_per_msg": mean(floors[scheme], "cpu_us_per_msg")}
    out["rate_ratio"] = out["wss"]["rate"] / out["ws"]["rate"]
    out["cpu_ratio"] = out["wss"]["cpu_us_per_msg"] / out["ws"]["cpu_us_per_msg"]
    out["floor_rate_ratio"] = out["wss"]["floor_rate"] / out["ws"]["floor_rate"]
    out["round_ratios"] = [(w["rate"] / p["rate"], w["cpu_us_per_msg"] / p["cpu_us_per_msg"])
                           for p, w in zip(runs["ws"], runs["wss"], strict=True)]
    return out


def bench_paced(redis_url: str, seconds: float, rate: float = 1000.0, n_symbols: int = 10, rounds: int = 3) -> dict:
    """1,000 frames/s evenly spaced (one Bybit ticker frame per ms, `n_symbols` symbols, pre-built): CPU per
    message of the bybit_spot program, of bare (websocket-client's receive loop + json.loads) and of the
    feeds' receive floor (no fields, no Redis) on the same sender, in alternating rounds."""
    server = FrameServer(n_symbols, rate=rate)
    runs: dict[str, list[dict]] = {"feed": [], "bare": [], "floor": []}
    try:
        for _ in range(rounds):
            feed = Feed(None, redis_url, n_symbols, url=server.url)
            try:
                time.sleep(1.0)
                m0, t0, c0 = feed.sample()
                time.sleep(seconds)
                m1, t1, c1 = feed.sample()
                n = max(1, m1 - m0)
                runs["feed"].append({"rate": n / (t1 - t0), "cpu_us_per_msg": (c1 - c0) / n * 1e6,
                                     "rss_mb": proc_rss_mb(feed.proc.pid)})
            finally:
                feed.stop()
            runs["bare"].append(bare(server.url, n_symbols, seconds))
            runs["floor"].append(bare(server.url, n_symbols, seconds, "--reader", "ltp"))
    finally:
        server.stop()
    out: dict = {"symbols": n_symbols, "rate_target": rate, "rounds": rounds, "runs": runs}
    for kind, rows in runs.items():
        out[kind] = {k: sum(r[k] for r in rows) / len(rows) for k in ("rate", "cpu_us_per_msg")}
    out["ratio"] = out["feed"]["cpu_us_per_msg"] / out["bare"]["cpu_us_per_msg"]
    out["round_ratios"] = [f["cpu_us_per_msg"] / b["cpu_us_per_msg"] for f, b in zip(runs["feed"], runs["bare"], strict=True)]
    return out


def render_paced(t: dict) -> list[str]:
    rounds = ", ".join(f"{r:.2f}" for r in t["round_ratios"])
    return [f"| CPU per message at {t['feed']['rate']:,.0f} frames/s evenly spaced (one frame per ms, {t['symbols']} symbols, "
            f"pre-built frames) | {t['feed']['cpu_us_per_msg']:.1f} µs | bare {t['bare']['cpu_us_per_msg']:.1f} µs "
            f"({t['bare']['rate']:,.0f} frames/s); floor {t['floor']['cpu_us_per_msg']:.1f} µs | {t['ratio']:.2f} of bare "
            f"(rounds {rounds}) | ≤ 1.6 of bare |"]


OTHER_FEEDS = ("delta_futures_ltp", "hyperliquid_perpetual", "coindcx_futures_rest")


def bench_feeds(sim: Sim, redis_url: str, seconds: float, rate_hz: float = 50.0) -> dict:
    """Delta, Hyperliquid and CoinDCX programs on the simulator, each alone, as configured in exchanges.yaml
    (endpoints pointed at the simulator, which publishes `rate_hz` updates per topic: Delta ticker + trades,
    Hyperliquid trades/bbo/ctx; CoinDCX futures is polled every poll_interval, its RT reply holding every
    instrument). Messages are the feed's own count (frames, or REST replies); CPU per message; RSS. Plus the
    in-process parse time of one full CoinDCX RT reply against json.loads of it (same run)."""
    from tests.harness import sim_config

    sim.set(rate_hz=rate_hz)
    path = Path(tempfile.mkdtemp(prefix="ltp-bench-")) / "exchanges.yaml"
    path.write_text(yaml.safe_dump(sim_config(redis_url, sim.port, enabled=True)))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    out: dict = {"rate_hz": rate_hz, "feeds": {}, "wake_us": wake_cost_us()}
    poll_s = yaml.safe_load(path.read_text())["exchanges"]["coindcx"]["services"]["coindcx_futures_rest"]["poll_interval"]
    try:
        for feed_id in OTHER_FEEDS:
            key = f"service:status:{feed_id}"
            r.delete(key)
            proc = subprocess.Popen([PY, "-m", "workers", feed_id], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    env={**os.environ, "LTP_CONFIG": str(path), "LTP_LOG_LEVEL": "WARNING"})
            try:
                wait_for(lambda k=key: int(r.hget(k, "messages_total") or 0) > 0, 30)
                time.sleep(2.0)

                def sample(k: str = key, pid: int = proc.pid) -> tuple[int, float, float]:
                    before = r.hget(k, "updated_at")
                    st = wait_for(lambda: (x := r.hgetall(k)).get("updated_at") != before and x, 5)
                    stamp = dt.datetime.fromisoformat(st["updated_at"].replace("Z", "+00:00")).timestamp()
                    return int(st["messages_total"]), stamp, proc_cpu_s(pid)

                m0, t0, c0 = sample()
                time.sleep(seconds if feed_id != "coindcx_futures_rest" else max(seconds, 30.0))  # 10 ms CPU ticks
                m1, t1, c1 = sample()
                n = max(1, m1 - m0)
                out["feeds"][feed_id] = {"rate": n / (t1 - t0), "cpu_us_per_msg": (c1 - c0) / n * 1e6,
                                         "cpu_pct": (c1 - c0) / (t1 - t0) * 100, "rss_mb": proc_rss_mb(proc.pid),
                                         "symbols": len([s for s in (r.hget(key, "symbols") or "").split(",") if s])}
                if feed_id == "coindcx_futures_rest":  # messages are updates (changed instruments): CPU per poll
                    out["feeds"][feed_id].update(polls_per_s=1 / poll_s, cpu_ms_per_poll=(c1 - c0) / (t1 - t0) * poll_s * 1e3)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
        out["coindcx_rt"] = coindcx_rt_parse(sim)
    finally:
        sim.set(rate_hz=5)
    return out


def coindcx_rt_parse(sim: Sim, rounds: int = 200) -> dict:
    """Parse time of one full CoinDCX futures RT reply (every instrument the simulator lists) for the
    configured instruments, best of `rounds`, against orjson.loads of the same body."""
    from workers.exchanges.coindcx import FuturesPrices

    cfg = yaml.safe_load((ROOT / "exchanges.yaml").read_text())["exchanges"]["coindcx"]["services"]["coindcx_futures_rest"]
    body = requests.get(f"http://127.0.0.1:{sim.port}/coindcx/market_data/v3/current_prices/futures/rt", timeout=5).content
    best_parse = best_loads = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        FuturesPrices(cfg["symbols"]).parse(orjson.loads(body))  # a fresh parser: every instrument is "changed"
        best_parse = min(best_parse, time.perf_counter() - t0)
        t0 = time.perf_counter()
        orjson.loads(body)
        best_loads = min(best_loads, time.perf_counter() - t0)
    return {"bytes": len(body), "instruments": len(orjson.loads(body).get("prices", {})), "followed": len(cfg["symbols"]),
            "parse_us": best_parse * 1e6, "loads_us": best_loads * 1e6}


def render_feeds(t: dict) -> list[str]:
    what = {"delta_futures_ltp": "Delta futures (ticker + trades frames)",
            "hyperliquid_perpetual": "Hyperliquid perpetual (trades / bbo / activeAssetCtx frames)",
            "coindcx_futures_rest": "CoinDCX futures (REST polls of the all-instruments RT reply)"}
    lines = []
    wake = t["wake_us"]
    for feed_id, f in t["feeds"].items():
        if "cpu_ms_per_poll" in f:
            figure = (f"{f['polls_per_s']:g} polls/s ({f['rate']:,.1f} updates/s), {f['cpu_ms_per_poll']:.2f} ms CPU per poll "
                      f"(status reporting included; {f['cpu_pct']:.2f} % CPU), RSS {f['rss_mb']:.1f} MB")
            ratio = f"{f['cpu_ms_per_poll'] * 1e3 / wake:.0f} wake-ups per poll"
        else:
            figure = (f"{f['rate']:,.0f} frames/s, {f['cpu_us_per_msg']:.0f} µs CPU per frame ({f['cpu_pct']:.1f} % CPU), "
                      f"RSS {f['rss_mb']:.1f} MB")
            ratio = f"{f['cpu_us_per_msg'] / wake:.2f} of a wake-up"
        lines.append(f"| {what.get(feed_id, feed_id)}, simulator at {t['rate_hz']:g} Hz per topic, {f['symbols']} symbols | "
                     f"{figure} | wake-up charge {wake:.0f} µs | {ratio} | — |")
    c = t.get("coindcx_rt")
    if c:
        lines.append(f"| CoinDCX RT reply parse ({c['bytes']:,} bytes, {c['instruments']} instruments, {c['followed']} followed) | "
                     f"{c['parse_us']:.0f} µs (orjson.loads included) | orjson.loads alone {c['loads_us']:.0f} µs | "
                     f"{c['parse_us'] / c['loads_us']:.2f} of loads | — |")
    return lines


def bench_book(n_deltas: int = 20000) -> dict:
    """Deltas per second for a 50-level book through LinearStream.parse, and json.loads alone as baseline."""
    from tests.sim.bybit import _Book
    from tests.sim.market import Instrument
    from workers.exchanges.bybit import LinearStream

    inst, sim_book = Instrument("BTCUSDT"), _Book(50)
    frames = []
    for i in range(n_deltas + 1):
        bids, asks = sim_book.next(inst)
        if i == 0:
            b, a, kind = list(map(list, bids.items())), list(map(list, asks.items())), "snapshot"
        else:
            b, a, kind = _Book.diff(sim_book.bids, bids), _Book.diff(sim_book.asks, asks), "delta"
        sim_book.bids, sim_book.asks = bids, asks
        frames.append(json.dumps({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1, "data": {
            "s": "BTCUSDT", "b": b, "a": a, "u": i + 1, "seq": i + 1}}).encode())
    ticker = json.dumps({"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1,
                         "data": {"symbol": "BTCUSDT", "lastPrice": "1"}}).encode()
    parse_s = json_s = float("inf")
    for _ in range(5):  # best of 5 rounds, alternating: a noisy neighbour spoils a round, not the figure
        stream = LinearStream("bench", "ws://x", ["BTCUSDT"], depth=50, levels=10)
        stream.on_connect()
        stream.parse(ticker)
        t0 = time.perf_counter()
        for f in frames:
            out = stream.parse(f)
            assert isinstance(out, list), out
        parse_s = min(parse_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in frames:
            json.loads(f)
        json_s = min(json_s, time.perf_counter() - t0)
    levels = sum(len(json.loads(f)["data"]["b"]) + len(json.loads(f)["data"]["a"]) for f in frames[1:101]) / 100
    return {"deltas_per_s": len(frames) / parse_s, "json_only_per_s": len(frames) / json_s,
            "ratio": json_s / parse_s, "levels_per_delta": levels}


def bench_panel() -> dict:
    """/api/status with 11 programs and 50k keys (bench/panel_status.py, its own Redis and supervisord)."""
    from bench import panel_status

    return panel_status.measure()


def system_rss(redis_url: str, sim: Sim) -> dict:
    """All feeds, panel and supervisord at rest (simulator at 5 Hz per topic), summed RSS."""
    from tests.harness import Supervisor, sim_config

    sv = Supervisor(sim_config(redis_url, sim.port, enabled=True), redis_url).start()
    try:
        time.sleep(15)
        rpc = sv.rpc()
        pids = [p["pid"] for p in rpc.supervisor.getAllProcessInfo() if p["pid"]]
        per = {p["name"]: round(proc_rss_mb(p["pid"]), 1) for p in rpc.supervisor.getAllProcessInfo() if p["pid"]}
        total = sum(proc_rss_mb(pid) for pid in pids) + proc_rss_mb(sv.proc.pid)
        redis_pid = int(redis.Redis.from_url(redis_url).info("server")["process_id"])
        return {"programs": len(pids), "total_mb": total + proc_rss_mb(redis_pid), "per_program_mb": per,
                "supervisord_mb": proc_rss_mb(sv.proc.pid), "redis_mb": proc_rss_mb(redis_pid)}
    finally:
        sv.stop()


def render_tls(t: dict) -> list[str]:
    ws, wss = t["ws"], t["wss"]
    rounds = ", ".join(f"{r:.2f}" for r, _ in t["round_ratios"])
    cpu_rounds = ", ".join(f"{c:.2f}" for _, c in t["round_ratios"])
    return [
        f"| throughput over wss:// (one TLS record per frame), {t['symbols']} symbols, frames/s | {wss['rate']:,.0f} | "
        f"ws:// {ws['rate']:,.0f}, same frames, {t['rounds']} alternating rounds | {t['rate_ratio']:.2f} of ws:// "
        f"(rounds {rounds}) | ≥ 0.70 of ws:// |",
        f"| CPU per message at full speed over wss://, {t['symbols']} symbols | {wss['cpu_us_per_msg']:.1f} µs | "
        f"ws:// {ws['cpu_us_per_msg']:.1f} µs | {t['cpu_ratio']:.2f} of ws:// (rounds {cpu_rounds}) | ≤ 1.6 of ws:// |",
        f"| receive floor over wss:// (wsframe + orjson, no fields, no Redis), frames/s | {wss['floor_rate']:,.0f} "
        f"({wss['floor_cpu_us_per_msg']:.1f} µs/msg) | ws:// floor {ws['floor_rate']:,.0f} ({ws['floor_cpu_us_per_msg']:.1f} µs/msg) | "
        f"{t['floor_rate_ratio']:.2f} of ws:// | — |",
        f"| sender CPU per frame (pre-built frames; wss:// encrypts a record per frame) | wss:// "
        f"{wss['sender_cpu_us_per_msg']:.1f} µs | ws:// {ws['sender_cpu_us_per_msg']:.1f} µs | — | — |",
    ]


def render(res: dict) -> str:
    if "redis" not in res:  # --only tls / paced
        only = [k for k in ("tls", "paced", "feeds") if k in res]
        rows = [*(render_tls(res["tls"]) if "tls" in res else []), *(render_paced(res["paced"]) if "paced" in res else []),
                *(render_feeds(res["feeds"]) if "feeds" in res else [])]
        return "\n".join([f"## {res['date']} — {res['machine']} (only: `--only {' '.join(only)}`)", "",
                          "| figure | ltp | baseline (same run) | ratio | target |", "| --- | --- | --- | --- | --- |",
                          *rows]) + "\n"
    lines = [
        f"## {res['date']} — {res['machine']}",
        "",
        f"Baselines: redis-benchmark HSET {res['redis']['hset_per_s']:,.0f}/s "
        f"({res['redis']['hset_pipelined16_per_s']:,.0f}/s pipelined x16); naive one-HSET-per-frame loop "
        f"{res['naive']['rate']:,.0f} frames/s; CPU charged per wake-up after 10 ms asleep "
        f"{res['wake_us']:.0f} µs.",
        "",
        "Throughput baselines: *bare* is websocket-client's receive loop + json.loads of the same frames; "
        "*floor* is the feeds' own receive path (64 KiB recv, wsframe decoder, orjson) with no fields and no Redis.",
        "",
        "| figure | ltp | baseline (same run) | ratio | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in res["throughput"]:
        lines.append(f"| throughput, {t['symbols']} symbol(s), frames/s | {t['worker_rate']:,.0f} | bare "
                     f"{t['bare_rate']:,.0f}; floor {t['floor_rate']:,.0f} | {t['ratio']:.2f} of bare; "
                     f"{t['floor_ratio']:.2f} of floor | ≥ 0.50 of bare |")
    for t in res["throughput"]:
        if t["symbols"] == 10:
            lines.append(f"| CPU per message at full speed, 10 symbols | {t['cpu_us_per_msg']:.1f} µs | bare "
                         f"{t['bare_cpu_us_per_msg']:.1f} µs | {t['cpu_us_per_msg'] / t['bare_cpu_us_per_msg']:.2f} | — |")
    lat = res["latency"]
    lines += [
        f"| added latency p50 / p99 / max at {lat['frames_per_s']:,.0f} frames/s (sim send → pub/sub) | "
        f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} / {lat['max_ms']:.2f} ms | bare receive {lat['bare_p50_ms']:.2f} / "
        f"{lat['bare_p99_ms']:.2f} ms; floor p99 {lat['floor_p99_ms']:.2f} ms | p99 − bare p99 = "
        f"{lat['p99_ms'] - lat['bare_p99_ms']:.2f} ms | p99 < 2 ms |",
        f"| CPU per message at 1k frames/s (worker process) | {lat['cpu_us_per_msg']:.1f} µs | bare "
        f"{lat['bare_cpu_us_per_msg']:.1f} µs; floor {lat['floor_cpu_us_per_msg']:.1f} µs | "
        f"{lat['cpu_us_per_msg'] / lat['bare_cpu_us_per_msg']:.2f} of bare | < 25 µs |",
    ]
    if res.get("latency_corked"):
        c = res["latency_corked"]
        lines.append(
            f"| CPU per message at 1k frames/s, each tick's 10 frames sent together (p50 / p99 {c['p50_ms']:.2f} / "
            f"{c['p99_ms']:.2f} ms) | {c['cpu_us_per_msg']:.1f} µs | bare {c['bare_cpu_us_per_msg']:.1f} µs; floor "
            f"{c['floor_cpu_us_per_msg']:.1f} µs | {c['cpu_us_per_msg'] / c['bare_cpu_us_per_msg']:.2f} of bare | — |")
    mem = res["memory"]
    lines.append(f"| worker RSS after {mem['seconds']:.0f} s at 1k frames/s, 500 symbols | {mem['rss_end_mb']:.1f} MB "
                 f"(start {mem['rss_start_mb']:.1f}, peak {mem['rss_peak_mb']:.1f}) | — | growth {mem['growth_mb']:+.1f} MB | "
                 "< 40 MB, no growth |")
    if res.get("system"):
        s = res["system"]
        lines.append(f"| whole system RSS at rest ({s['programs']} programs + supervisord + redis) | {s['total_mb']:.0f} MB | "
                     f"— | — | — |")
    if res.get("tls"):
        lines += render_tls(res["tls"])
    if res.get("paced"):
        lines += render_paced(res["paced"])
    if res.get("feeds"):
        lines += render_feeds(res["feeds"])
    b = res["book"]
    lines.append(f"| order book deltas/s, 50 levels (~{b['levels_per_delta']:.0f} levels/delta) | {b['deltas_per_s']:,.0f} | "
                 f"json.loads alone {b['json_only_per_s']:,.0f} | {b['ratio']:.2f} | — |")
    if res.get("panel"):
        p = res["panel"]
        lines.append(f"| panel /api/status, {p.get('programs', 11)} programs, {p.get('keys', 50000):,} keys | "
                     f"median {p['median_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms | {p.get('baseline', '—')} | — | median < 20 ms |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short windows (memory 60 s instead of 300 s)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    ap.add_argument("--seconds", type=float, default=8.0, help="measurement window per throughput/latency figure")
    ap.add_argument("--only", choices=("tls", "paced", "feeds"),
                    help="run only these figures (tls: ws:// against wss://; paced: 1k frames/s evenly spaced; "
                         "feeds: Delta, Hyperliquid, CoinDCX on the simulator)")
    ap.add_argument("--serve-frames", type=Path, help=argparse.SUPPRESS)  # internal: the pre-built frame sender
    ap.add_argument("--symbols", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--tls-cert", help=argparse.SUPPRESS)
    ap.add_argument("--tls-key", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_frames:
        serve_frames(args.serve_frames, args.symbols, args.tls_cert, args.tls_key, args.rate)
        return

    server = RedisServer(free_port()).start()
    if args.only:
        res0: dict = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                      "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"}
        try:
            if args.only == "tls":
                res0["tls"] = bench_tls(server.url, args.seconds)
            elif args.only == "paced":
                res0["paced"] = bench_paced(server.url, args.seconds)
            else:
                sim0 = Sim()
                try:
                    res0["feeds"] = bench_feeds(sim0, server.url, args.seconds)
                finally:
                    sim0.stop()
        finally:
            server.cleanup()
        write_results(args.out, res0)
        return
    sim = Sim()
    res: dict = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                 "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"}
    try:
        res["wake_us"] = wake_cost_us()
        res["redis"] = redis_benchmark(server.port)
        sim.set(rate_hz=0)
        res["naive"] = bare(sim, 10, args.seconds, "--hset", server.url)
        res["throughput"] = [bench_throughput(sim, server.url, n, args.seconds) for n in (1, 10, 500)]
        res["latency"] = bench_latency(sim, server.url, args.seconds * 1.5)
        res["latency_corked"] = bench_latency(sim, server.url, args.seconds * 1.5, cork=True)
        res["tls"] = bench_tls(server.url, args.seconds)
        res["paced"] = bench_paced(server.url, args.seconds)
        res["feeds"] = bench_feeds(sim, server.url, args.seconds)
        res["memory"] = bench_memory(sim, server.url, 60 if args.quick else 300)
        res["book"] = bench_book()
        res["system"] = system_rss(server.url, sim)
        res["panel"] = bench_panel()
    finally:
        sim.stop()
        server.cleanup()
    write_results(args.out, res)


def write_results(out: Path, res: dict) -> None:
    table = render(res)
    print(table)
    print(json.dumps(res, indent=1, default=str))
    header = "# Benchmark results\n\nProduced by `make bench` (`python -m bench.bench`). Newest first.\n\n"
    old = out.read_text() if out.exists() else ""
    older = old[len(header):] if old.startswith(header) else ""
    out.write_text(header + table + "\n" + older)


if __name__ == "__main__":
    main()
