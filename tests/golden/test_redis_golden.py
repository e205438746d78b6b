"""Golden test of the Redis output: every feed of the registry on the simulator's fixed script, its
hashes dumped (volatile fields masked) and compared with `redis_golden.json`, recorded before the
runtime and panel refactors (issue 23: "Redis output unchanged").

Determinism: the simulator runs in script mode (`Simulator(script=N)`, tests/sim/server.py): each
subscribed topic gets exactly N updates whose values depend on the seed, the symbol and the update's
number only, REST answers are constant, option chains are listed on a fixed date. The feeds run as
plain processes (`python -m workers <feed>`, the command supervisord runs) on the repo's
exchanges.yaml pointed at the simulator and a private redis-server; the dump is taken once every
feed is subscribed, every symbol it follows has its key, the script has played and the dump has not
changed for QUIET_S.

Re-record (only after an intended change of what the feeds write; say why in the commit):

    LTP_GOLDEN_RECORD=1 python -m pytest tests/golden
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.harness import ROOT, RedisServer, sim_config
from tests.sim import Simulator
from workers.registry import feeds

FEEDS = feeds()

pytestmark = pytest.mark.e2e

GOLDEN = Path(__file__).with_name("redis_golden.json")
SCRIPT_UPDATES = 5   # updates per topic: enough for order-book deltas on top of the snapshot
RATE_HZ = 20.0       # the script plays in SCRIPT_UPDATES / RATE_HZ s once a topic is subscribed
QUIET_S = 1.5        # no change of the (masked) dump for this long after the script has played
DEADLINE_S = 45.0    # start of the feeds -> quiescence, at most

# Fields whose value depends on when the test runs, not on what the simulator sent; the dump keeps
# their presence and replaces the value with MASK.
VOLATILE = {
    "timestamp": "the exchange's event time: the simulator stamps frames with the wall clock",
    "recv_ts": "when the feed received the frame (wall clock)",
    "next_funding_time": "Bybit: from the frame's wall-clock ts; Hyperliquid: the next hour after now",
    "funding_timestamp": "CoinDCX: the RT reply's funding refresh time (wall clock)",
}
MASK = "<masked>"
# Fields left out entirely: whether they are there at all depends on timing.
DROPPED = {
    "stale": "liveness mark: set while a connection is down or silent, removed by the next write",
}
# service:status:<feed> holds counters and times; only these fields are what the feed decided to follow.
STATUS_FIELDS = ("symbols", "rejected")


def _prefixes(config: dict) -> dict[str, str]:
    """feed id -> redis_prefix, for every feed of the registry."""
    services = {sid: svc for ex in config["exchanges"].values() for sid, svc in ex.get("services", {}).items()}
    missing = sorted(set(FEEDS) - set(services))
    assert not missing, f"feeds of workers/registry.py without a service in exchanges.yaml: {missing}"
    return {feed: services[feed]["redis_prefix"] for feed in FEEDS}


def _masked(fields: dict[str, str]) -> dict[str, str]:
    return {k: MASK if k in VOLATILE else v for k, v in fields.items() if k not in DROPPED}


def dump(r: redis.Redis, prefixes: dict[str, str]) -> dict[str, Any]:
    """Every `<prefix>:*` hash of every feed (masked), its symbol index and its status' stable fields."""
    out: dict[str, Any] = {}
    for feed, prefix in prefixes.items():
        hashes = {}
        for key in r.scan_iter(match=f"{prefix}:*", count=1000):
            if r.type(key) == "hash":
                hashes[key.removeprefix(f"{prefix}:")] = _masked(r.hgetall(key))  # type: ignore[arg-type]
        status = r.hgetall(f"service:status:{feed}")
        out[feed] = {
            "hashes": hashes,
            "index": sorted(r.smembers(f"ltp:symbols:{prefix}")),  # type: ignore[arg-type]
            "status": {f: status.get(f) for f in STATUS_FIELDS},  # type: ignore[union-attr]
        }
    return out


def _not_ready(r: redis.Redis, prefixes: dict[str, str]) -> list[str]:
    """What keeps the feeds from being settled: not subscribed, or a followed symbol without its key."""
    problems = []
    for feed, prefix in prefixes.items():
        status = r.hgetall(f"service:status:{feed}")
        if status.get("state") != "subscribed":  # type: ignore[union-attr]
            problems.append(f"{feed}: state {status.get('state')!r}")  # type: ignore[union-attr]
            continue
        symbols = [s for s in status.get("symbols", "").split(",") if s]  # type: ignore[union-attr]
        missing = [s for s in symbols if not r.exists(f"{prefix}:{s}")]
        if not symbols or missing:
            problems.append(f"{feed}: no key yet for {missing[:5] or 'any symbol'}")
    return problems


def _script_pending(sim: Simulator) -> int:
    async def pending() -> int:  # on the simulator's loop: its sessions change there
        return sum(ex.stats()["script_pending"] for ex in sim.exchanges.values())
    return int(sim.call(pending))


def wait_settled(r: redis.Redis, prefixes: dict[str, str], sim: Simulator, logs: Path) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    last: dict[str, Any] | None = None
    since = time.monotonic()
    while True:
        now = time.monotonic()
        problems = _not_ready(r, prefixes)
        pending = _script_pending(sim)
        snap = dump(r, prefixes)
        if problems or pending or snap != last:
            last, since = snap, now
        elif now - since >= QUIET_S:
            return snap
        if now > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(logs.glob("*.log")))
            pytest.fail(f"feeds not settled within {DEADLINE_S:g}s: {problems}, {pending} topic(s) still "
                        f"playing their script\n{tails}")
        time.sleep(0.2)


@pytest.fixture
def script_sim() -> Iterator[Simulator]:
    sim = Simulator(rate_hz=RATE_HZ, script=SCRIPT_UPDATES).start()
    yield sim
    sim.stop()


@pytest.fixture
def redis_private() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def _start_feeds(config_path: Path, redis_url: str, tmp: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "LTP_CONFIG": str(config_path), "REDIS_URL": redis_url, "LTP_VAR": str(tmp / "var")}
    procs = []
    for feed in FEEDS:
        with open(tmp / f"{feed}.log", "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "workers", feed], env=env, cwd=ROOT,
                                          stdout=log, stderr=subprocess.STDOUT))
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def differences(want: Any, got: Any, path: str = "") -> list[str]:
    """One line per difference, named by its path (feed / section / symbol / field)."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in sorted(want.keys() | got.keys()):
            where = f"{path} / {key}" if path else key
            if key not in got:
                out.append(f"{where}: missing (recorded {json.dumps(want[key])[:120]})")
            elif key not in want:
                out.append(f"{where}: new (now {json.dumps(got[key])[:120]})")
            else:
                out += differences(want[key], got[key], where)
        return out
    if want != got:
        return [f"{path}: recorded {json.dumps(want)[:200]}, now {json.dumps(got)[:200]}"]
    return []


def test_every_feed_writes_what_it_wrote_before(redis_private: RedisServer, script_sim: Simulator, tmp_path: Path) -> None:
    config = sim_config(redis_private.url, script_sim.port, enabled=True)
    prefixes = _prefixes(config)
    config_path = tmp_path / "exchanges.yaml"
    config_path.write_text(yaml.safe_dump(config))
    procs = _start_feeds(config_path, redis_private.url, tmp_path)
    try:
        got = wait_settled(redis_private.client(), prefixes, script_sim, tmp_path)
    finally:
        _stop(procs)

    if os.environ.get("LTP_GOLDEN_RECORD"):
        GOLDEN.write_text(_text(got))
        print(f"recorded {GOLDEN} ({sum(len(f['hashes']) for f in got.values())} hashes)")
        return
    assert GOLDEN.exists(), f"no {GOLDEN.name}: record it with LTP_GOLDEN_RECORD=1 python -m pytest tests/golden"
    diff = differences(json.loads(GOLDEN.read_text()), got)
    if diff:
        shown = "\n".join(diff[:100]) + (f"\n... and {len(diff) - 100} more" if len(diff) > 100 else "")
        pytest.fail(f"the feeds' Redis output differs from {GOLDEN.name} in {len(diff)} place(s):\n{shown}", pytrace=False)
