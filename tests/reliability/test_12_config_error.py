"""Fault 12c: a bad value in exchanges.yaml.

The feed must not be retried forever with nothing to show: supervisord gives up after a few
attempts (FATAL, not running, not retrying), and the status hash holds `state=config_error` and
the message naming the file, the key and the allowed values, for the panel and /api/status. Its
keys left from an earlier run are marked `config_error`. A feed that crashes after running is
still restarted every time (startretries only counts starts that fail within startsecs).

supervisord counts a failed start only when the process exits within startsecs (2 s); on a
machine so loaded that the error is found later, the feed has supervisord stop it (STOPPED):
terminal as well. Reproduced here by pausing the process right after its spawn.
"""

from __future__ import annotations

import configparser
import os
import signal
import threading
import time

from tests.harness import ROOT, wait_for
from tests.reliability.util import fresh, now_ms, status, time_until
from workers.registry import feeds

FEEDS = feeds()

TERMINAL = ("FATAL", "STOPPED")


def test_every_feed_program_gives_up_after_a_few_failed_starts_but_restarts_after_crashes():
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    for feed in FEEDS:
        block = parser[f"program:{feed}"]
        assert block["autorestart"] == "true" and block["startsecs"] == "2", feed
        assert 1 <= int(block["startretries"]) <= 5, f"{feed}: startretries={block['startretries']} retries a config error forever"


def test_bad_config_value_ends_fatal_with_the_message_in_the_status_hash(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"ping_interval": "fast"}})
    r = redis_server.client()
    r.hset("bybit_spot:BTCUSDT", mapping={"ltp": "1", "recv_ts": "1"})  # left by an earlier run
    r.sadd("ltp:symbols:bybit_spot", "BTCUSDT")
    t0 = time.monotonic()
    out = sv.ctl("start", "bybit_spot")
    fatal = time_until(lambda: sv.info("bybit_spot")["statename"] in TERMINAL, 30, since=t0)
    assert "ERROR" in out or "stopped" in out, out
    time.sleep(4)  # longer than supervisord's next backoff step: no further attempt
    info = sv.info("bybit_spot")
    assert info["statename"] in TERMINAL and info["pid"] == 0, info
    assert info["statename"] in sv.ctl("status", "bybit_spot")
    attempts = sv.log("bybit_spot").count("ping_interval: expected a number of seconds")
    # FATAL after 1 + startretries attempts; STOPPED earlier only if an attempt found the error late.
    assert attempts == 4 if info["statename"] == "FATAL" else 1 <= attempts <= 4, (info["statename"], attempts)

    st = status(r, "bybit_spot")
    assert st["state"] == "config_error", st
    msg = st["last_error"]
    assert msg.startswith(f"{sv.config_path}: exchanges.bybit.services.bybit_spot.ping_interval:"), msg
    assert "'fast'" in msg and "allowed: 1 to 3600 seconds" in msg, msg
    assert r.ttl("service:status:bybit_spot") > 3600
    assert r.hget("bybit_spot:BTCUSDT", "stale").startswith("config_error ")
    figures.record("12 config error (bybit_spot)",
                   f"start with a bad value -> {info['statename']}, no more retries ({attempts} attempts)", fatal)


def test_a_config_error_found_after_startsecs_still_ends_the_retries(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"ping_interval": "fast"}})
    r = redis_server.client()
    threading.Thread(target=sv.ctl, args=("start", "bybit_spot"), daemon=True).start()
    pid = wait_for(lambda: sv.info("bybit_spot")["pid"], 5, interval=0.005)
    os.kill(pid, signal.SIGSTOP)  # a loaded machine: the error is found only after startsecs
    time.sleep(2.5)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    took = time_until(lambda: sv.info("bybit_spot")["statename"] == "STOPPED", 10, since=t0)
    time.sleep(3)
    info = sv.info("bybit_spot")
    assert info["statename"] == "STOPPED" and info["pid"] == 0, info
    assert sv.log("bybit_spot").count("ping_interval: expected a number of seconds") == 1
    assert "too late for supervisord to count a failed start" in sv.log("bybit_spot")
    assert status(r, "bybit_spot")["state"] == "config_error"
    figures.record("12 config error (bybit_spot)", "error found after startsecs -> STOPPED through supervisord, not retried",
                   took)


def test_a_running_feed_killed_again_and_again_is_always_restarted(redis_server, sim, make_supervisor, figures):
    sv = make_supervisor(overrides={"bybit_spot": {"symbols": ["BTCUSDT"]}})
    r = redis_server.client()
    sv.ctl("start", "bybit_spot")
    kills = 5  # more than startretries
    for _ in range(kills):
        wait_for(lambda: sv.info("bybit_spot")["statename"] == "RUNNING", 10)  # ran past startsecs
        pid = sv.info("bybit_spot")["pid"]
        killed_at = now_ms()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda pid=pid: sv.info("bybit_spot")["pid"] not in (0, pid), 10)
        wait_for(lambda killed_at=killed_at: fresh(r, ["bybit_spot:BTCUSDT"], killed_at), 10)
    wait_for(lambda: sv.info("bybit_spot")["statename"] == "RUNNING", 10)
    figures.record("12 config error", f"kill -9 of a running feed x{kills} (> startretries) -> restarted every time", "yes", "")
