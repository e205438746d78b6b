"""Helpers for the fault-injection tests: process probes, fresh-data checks, frame injection."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

import redis

from tests.harness import wait_for


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def fresh(r: redis.Redis, keys: Iterable[str], since_ms: int) -> bool:
    """Every key has been written (recv_ts) at or after `since_ms`."""
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.hget(k, "recv_ts")
    return all(v is not None and int(v) >= since_ms for v in pipe.execute())


def time_until(predicate: Callable[[], object], timeout: float, since: float | None = None, interval: float = 0.02) -> float:
    """Seconds from `since` (monotonic; default now) until `predicate()` holds; fails after `timeout`."""
    start = time.monotonic() if since is None else since
    wait_for(predicate, timeout - (time.monotonic() - start), interval)
    return time.monotonic() - start


def inject(sim, exchange: str, frames: list[str | bytes]) -> int:
    """Send raw frames (text or binary) on every open simulator connection of `exchange`; returns how many connections."""
    ex = sim.exchanges[exchange]

    async def send() -> int:
        conns = list(ex.connections)
        for ws in conns:
            for frame in frames:
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
        return len(conns)

    return sim.call(send)


def status(r: redis.Redis, sid: str) -> dict[str, str]:
    return r.hgetall(f"service:status:{sid}")


def parse_errors(r: redis.Redis, sid: str) -> int:
    return int(status(r, sid).get("parse_errors") or 0)


class Watcher:
    """Poll something on a thread until stopped; collect what `check` returns (violations are raised at stop)."""

    def __init__(self, check: Callable[[], None], interval: float = 0.02) -> None:
        self.check = check
        self.interval = interval
        self.samples = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
                self.samples += 1
            except AssertionError as exc:
                self.errors.append(str(exc))
            except redis.RedisError:
                pass  # Redis may be slowed or away on purpose
            self._stop.wait(self.interval)

    def assert_clean(self) -> None:
        assert self.samples > 0, "the watcher never got a sample"
        assert not self.errors, f"{len(self.errors)} violation(s), first: {self.errors[:3]}"


def stale_of(r: redis.Redis, keys: Iterable[str]) -> list[str | None]:
    """Each key's `stale` marker (None: the key looks live)."""
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.hget(k, "stale")
    return pipe.execute()


def all_marked(r: redis.Redis, keys: Iterable[str], cause: str) -> bool:
    """Every key carries `stale` = "<cause> <time>"."""
    return all(v is not None and v.startswith(f"{cause} ") for v in stale_of(r, keys))


def none_marked(r: redis.Redis, keys: Iterable[str]) -> bool:
    """Every key exists and carries no `stale` marker."""
    keys = list(keys)
    return r.exists(*keys) == len(keys) and not any(stale_of(r, keys))


class SinkProducer:
    """A thread that stages a new value (`seq`) for every symbol every 5 ms and flushes, as a busy
    feed's socket thread does; `seq` is the newest value staged."""

    def __init__(self, sink, symbols: list[str]) -> None:  # sink: workers.runtime.sink.RedisSink
        self.sink = sink
        self.symbols = symbols
        self.seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from workers.runtime.model import Update

        while not self._stop.is_set():
            self.seq += 1
            now = now_ms()
            self.sink.stage([Update(s, {"ltp": str(self.seq)}, now) for s in self.symbols], now)
            self.sink.flush()
            time.sleep(0.005)

    def start(self) -> SinkProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def state_back_after_failover(reader: redis.Redis, prefix: str, symbols: list[str], at_kill: int, t_kill: float,
                              t_switch: float, figures, fault: str, switch_figure: str, back_figure: str) -> None:
    """Wait until every key holds a value staged at or after the kill (SinkProducer's `seq`), record the
    switch and the state-back times, and hold the promise: state back within the switch + 2 s."""

    def all_back() -> bool:
        values = [reader.hget(f"{prefix}:{s}", "ltp") for s in symbols]
        return all(v is not None and int(v) >= at_kill for v in values)

    wait_for(all_back, 30, 0.02)
    t_back = time.monotonic() - t_kill
    figures.record(fault, switch_figure, t_switch)
    figures.record(fault, back_figure, t_back)
    figures.record(fault, "state back after the switch", t_back - t_switch)
    assert t_back <= t_switch + 2.0, f"state back {t_back:.2f} s after the kill; failover took {t_switch:.2f} s"
