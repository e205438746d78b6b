from __future__ import annotations

import pytest
import yaml

from workers import registry
from workers.registry import feeds
from workers.runtime.config import ConfigError, load_config, parse_config


def base() -> dict:
    return {
        "exchanges": {
            "bybit": {
                "endpoints": {"spot_ws": "wss://stream.bybit.com/v5/public/spot"},
                "services": {"bybit_spot": {"endpoint": "spot_ws", "redis_prefix": "bybit_spot", "symbols": ["BTCUSDT"]}},
            }
        }
    }


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return str(exc.value)


def test_repo_config_is_valid_and_every_service_is_a_known_feed():
    cfg = load_config()
    assert cfg.services, "exchanges.yaml configures no service"
    for sid, svc in cfg.services.items():
        assert feeds()[sid].exchange == svc.exchange
        assert svc.url


def test_defaults_apply_and_services_override_them():
    data = base()
    data["defaults"] = {"silence_timeout": 12}
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["ping_interval"] = 5
    svc = parse_config(data).service("bybit_spot")
    assert (svc.silence_timeout, svc.ping_interval, svc.enabled) == (12.0, 5.0, True)


def test_unknown_key_names_the_path_and_the_allowed_keys():
    data = base()
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["symbol"] = ["BTCUSDT"]
    msg = error_of(data)
    assert "exchanges.bybit.services.bybit_spot.symbol: unknown key" in msg
    assert "symbols" in msg and "redis_prefix" in msg


def test_wrong_type_names_key_value_and_allowed():
    data = base()
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["ping_interval"] = "fast"
    msg = error_of(data)
    assert "bybit_spot.ping_interval" in msg and "'fast'" in msg and "1 to 3600 seconds" in msg


def test_unknown_service_and_exchange_list_what_is_allowed():
    data = base()
    data["exchanges"]["bybit"]["services"]["bybit_spott"] = data["exchanges"]["bybit"]["services"]["bybit_spot"]
    assert "bybit_spot, bybit_futures_orderbook" in error_of(data)
    data = base()
    data["exchanges"]["kraken"] = {}
    msg = error_of(data)
    assert "exchanges.kraken: unknown exchange" in msg and ", ".join(sorted(registry.EXCHANGES)) in msg


def test_endpoint_must_name_a_defined_endpoint():
    data = base()
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["endpoint"] = "linear_ws"
    msg = error_of(data)
    assert "bybit_spot.endpoint" in msg and "spot_ws" in msg


def test_bad_symbols_and_duplicate_prefixes_are_refused():
    data = base()
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["symbols"] = ["BTCUSDT", "BTCUSDT"]
    assert "duplicate symbols ['BTCUSDT']" in error_of(data)
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["symbols"] = ["BTC USDT"]
    assert "symbols[0]" in error_of(data)
    data = base()
    svc = dict(data["exchanges"]["bybit"]["services"]["bybit_spot"])
    data["exchanges"]["bybit"]["services"]["bybit_spot_testnet_spot"] = svc
    assert "used by more than one service" in error_of(data)


def test_bad_url_and_bad_bool():
    data = base()
    data["exchanges"]["bybit"]["endpoints"]["spot_ws"] = "stream.bybit.com"
    assert "endpoints.spot_ws: expected a URL" in error_of(data)
    data = base()
    data["exchanges"]["bybit"]["enabled"] = "yes"
    assert "exchanges.bybit.enabled" in error_of(data) and "true, false" in error_of(data)


def test_disabled_exchange_disables_its_services():
    data = base()
    data["exchanges"]["bybit"]["enabled"] = False
    assert parse_config(data).service("bybit_spot").enabled is False


def test_env_overrides_file_location_and_redis_url(tmp_path, monkeypatch):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(base()))
    monkeypatch.setenv("LTP_CONFIG", str(path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6400/3")
    cfg = load_config()
    assert cfg.path == path and cfg.redis_url == "redis://127.0.0.1:6400/3"


def test_missing_file_and_bad_yaml_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*LTP_CONFIG"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("exchanges: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_unknown_service_lookup_lists_configured_ones():
    with pytest.raises(ConfigError, match="no service 'delta_spot' is configured.*bybit_spot"):
        parse_config(base()).service("delta_spot")


def test_max_connection_age_is_optional_and_bounded():
    assert parse_config(base()).service("bybit_spot").max_connection_age is None
    data = base()
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["max_connection_age"] = 2
    assert parse_config(data).service("bybit_spot").max_connection_age == 2.0
    data["exchanges"]["bybit"]["services"]["bybit_spot"]["max_connection_age"] = 0
    assert "bybit_spot.max_connection_age" in error_of(data)
