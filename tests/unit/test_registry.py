"""The feed registry is the one place feed ids live: config, supervisord and `python -m workers` follow it."""

from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from workers.registry import FEEDS, KNOWN_FEEDS
from workers.runtime import config

ROOT = Path(__file__).resolve().parents[2]
UNIFORM = {
    "command": "python -m workers %(program_name)s",
    "directory": "%(here)s",
    "autostart": "false",
    "stdout_logfile": "%(here)s/logs/%(program_name)s.log",
    "redirect_stderr": "true",
}


def programs() -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    return {s.split(":", 1)[1]: dict(parser[s]) for s in parser.sections() if s.startswith("program:")}


def test_config_knows_exactly_the_registered_feeds():
    assert config.KNOWN_FEEDS is KNOWN_FEEDS
    assert KNOWN_FEEDS == {fid: spec.exchange for fid, spec in FEEDS.items()}


@pytest.mark.parametrize("feed_id", sorted(FEEDS))
def test_every_feed_has_a_uniform_supervisord_program(feed_id):
    block = programs().get(feed_id)
    assert block is not None, f"supervisord.conf has no [program:{feed_id}]; copy another feed's block, changing only the name"
    assert {k: block.get(k) for k in UNIFORM} == UNIFORM


def test_supervisord_runs_no_feed_the_registry_does_not_know():
    helpers = {"redis", "autostart", "controlpanel", "simulator"}
    assert set(programs()) - helpers == set(FEEDS)


@pytest.mark.parametrize("feed_id", sorted(FEEDS))
def test_every_builder_resolves(feed_id):
    module, _, function = FEEDS[feed_id].builder.partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_default_config_configures_every_feed():
    assert set(config.load_config(ROOT / "exchanges.yaml").services) == set(FEEDS)


def test_unknown_feed_id_exits_2_naming_the_allowed_ones():
    out = subprocess.run([sys.executable, "-m", "workers", "bybit_spott"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "bybit_spott" in out.stderr and "bybit_spot, " in out.stderr


def test_rest_feeds_need_a_rest_endpoint():
    data = {"exchanges": {"delta": {"endpoints": {"india_ws": "wss://x", "india_rest": "https://y"},
                                    "services": {"delta_spot": {"endpoint": "india_ws", "redis_prefix": "d"}}}}}
    with pytest.raises(config.ConfigError, match=r"delta_spot\.rest_endpoint.*allowed: india_rest"):
        config.parse_config(data)


def test_config_errors_name_the_file_really_read(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("redis: {publish: maybe}\n")
    with pytest.raises(config.ConfigError) as err:
        config.load_config(path)
    assert str(err.value).startswith(f"{path}: redis.publish")


@pytest.mark.parametrize("value", [0.000000001, float("inf"), float("nan"), 10**9])
def test_absurd_intervals_are_refused(value):
    data = {"defaults": {"silence_timeout": value}}
    with pytest.raises(config.ConfigError, match="defaults.silence_timeout"):
        config.parse_config(data)


def test_data_timeout_is_configured_per_feed_and_reaches_its_connections(tmp_path):
    from workers.exchanges import bybit
    from workers.runtime.feed import FeedContext
    from workers.runtime.sink import RedisSink
    from workers.runtime.stats import FeedStats

    data = {"defaults": {"data_timeout": 600},
            "exchanges": {"bybit": {"endpoints": {"spot_ws": "wss://x"},
                                    "services": {"bybit_spot": {"endpoint": "spot_ws", "redis_prefix": "s", "data_timeout": 30}}}}}
    cfg = config.parse_config(data)
    svc = cfg.service("bybit_spot")
    assert svc.data_timeout == 30.0
    stats = FeedStats("bybit_spot")
    ctx = FeedContext(cfg, svc, stats, RedisSink("redis://127.0.0.1:1/0", "s", stats))
    conn = ctx.connection(bybit.SpotStream("s#0", "wss://x", ["BTCUSDT"]))
    assert conn.data_timeout == 30.0 and conn.silence_timeout == svc.silence_timeout
    with pytest.raises(config.ConfigError, match="data_timeout"):
        config.parse_config({"defaults": {"data_timeout": 0.1}})
