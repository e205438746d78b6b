"""The feed registry is the one place feed ids live: config, supervisord and `python -m workers` follow it."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from workers import registry, supervisor_conf
from workers.runtime import config

FEEDS = registry.feeds()

ROOT = Path(__file__).resolve().parents[2]
UNIFORM = {
    "command": "python -OO -m workers %(program_name)s",
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
    for ex in registry.exchanges():
        for feed in ex.feeds:
            assert registry.feed(feed.id) is feed and feed.exchange == ex.name and registry.exchange_of(feed.id) == ex.name
    with pytest.raises(config.ConfigError, match=r"unknown service for exchange 'bybit'.*allowed: bybit_spot, "):
        config.parse_config({"exchanges": {"bybit": {"endpoints": {"ws": "wss://x"},
                                                     "services": {"bybit_spott": {"endpoint": "ws", "redis_prefix": "s"}}}}})


@pytest.mark.parametrize("feed_id", sorted(FEEDS))
def test_every_feed_has_a_uniform_supervisord_program(feed_id):
    block = programs().get(feed_id)
    assert block is not None, f"supervisord.conf has no [program:{feed_id}]; run `python -m workers.supervisor_conf`"
    assert {k: block.get(k) for k in UNIFORM} == UNIFORM


def test_supervisord_runs_no_feed_the_registry_does_not_know():
    helpers = {"redis", "autostart", "controlpanel", "simulator"}
    assert set(programs()) - helpers == set(FEEDS)


@pytest.mark.parametrize("feed_id", sorted(FEEDS))
def test_every_builder_resolves(feed_id):
    assert callable(FEEDS[feed_id].build)


def test_supervisord_conf_feed_programs_are_generated_from_the_registry():
    """The repository's file matches what the generator writes (run `python -m workers.supervisor_conf` after
    adding a feed); the generator keeps everything outside its markers."""
    out = subprocess.run([sys.executable, "-m", "workers.supervisor_conf", "--check"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    text = (ROOT / "supervisord.conf").read_text()
    edited = text.replace("[program:controlpanel]", "; my own note\n[program:controlpanel]")
    drifted = supervisor_conf.rewrite(edited.replace("[program:bybit_spot]\n", "[program:bybit_spot]\nstartsecs=9\n"))
    assert drifted == edited and "; my own note" in drifted


def test_supervisord_conf_generator_refuses_a_file_without_markers(tmp_path):
    path = tmp_path / "supervisord.conf"
    path.write_text("[supervisord]\n")
    out = subprocess.run([sys.executable, "-m", "workers.supervisor_conf", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "BEGIN generated feeds" in out.stderr and path.read_text() == "[supervisord]\n"


def test_a_feed_process_loads_only_its_own_exchange():
    code = ("import sys\nfrom workers import registry\nfrom workers.runtime.config import load_config\n"
            "assert registry.feed('delta_spot').exchange == 'delta'\nload_config(checked=['delta'])\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('workers.exchanges.') and m != 'workers.exchanges.common')\n"
            "assert loaded == ['workers.exchanges.delta'], loaded\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


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
