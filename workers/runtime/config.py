"""Load and validate exchanges.yaml into typed settings.

Every error names the offending key path, the value found and what is
allowed, so a typo is fixed from the message alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workers import registry
from workers.runtime.redis_url import ALLOWED as REDIS_URL_FORMS
from workers.runtime.redis_url import check as check_redis_url
from workers.runtime.stream import DEFAULT_DATA_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_PATH = ROOT / "exchanges.yaml"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

__all__ = ["Config", "ConfigError", "ServiceConfig", "load_config", "parse_config"]


class ConfigError(ValueError):
    """A bad configuration value; the message says where and what is allowed."""

    def __init__(self, path: str, problem: str, allowed: str = "", file: str = "exchanges.yaml") -> None:
        super().__init__(path, problem, allowed)
        self.path = path
        self.problem = problem
        self.allowed = allowed
        self.file = file  # load_config names the file it really read (LTP_CONFIG may point elsewhere)

    def __str__(self) -> str:
        msg = f"{self.file}: {self.path}: {self.problem}"
        return f"{msg} (allowed: {self.allowed})" if self.allowed else msg


@dataclass(frozen=True)
class ServiceConfig:
    service_id: str
    exchange: str
    enabled: bool
    redis_prefix: str
    symbols: tuple[str, ...]
    endpoints: Mapping[str, str]
    endpoint: str
    rest_endpoint: str | None
    ping_interval: float
    silence_timeout: float
    stale_after: float
    poll_interval: float
    depth: int
    levels: int
    book_top: bool
    discovery_interval: float
    selection: Mapping[str, Any] = field(default_factory=dict)
    data_timeout: float = DEFAULT_DATA_TIMEOUT_S  # no data frame on a connection this long: resubscribe, then reconnect
    max_connection_age: float | None = None  # replace a connection this old (None: the exchange's own limit, if any)

    @property
    def path(self) -> str:
        """This service's key path in the config file, for error messages."""
        return f"exchanges.{self.exchange}.services.{self.service_id}"

    @property
    def url(self) -> str:
        """The URL of this service's main endpoint."""
        return self.endpoints[self.endpoint]

    @property
    def rest_url(self) -> str:
        """The URL of this service's REST endpoint (discovery, polling); no trailing slash."""
        if self.rest_endpoint is None:
            raise ConfigError(f"exchanges.{self.exchange}.services.{self.service_id}.rest_endpoint", "missing",
                              ", ".join(self.endpoints))
        return self.endpoints[self.rest_endpoint].rstrip("/")


@dataclass(frozen=True)
class Config:
    path: Path
    redis_url: str
    publish: bool
    history_len: int
    services: Mapping[str, ServiceConfig]
    error: str = ""  # set only by Config.unusable: the file could not be used, and why

    @classmethod
    def unusable(cls, exc: ConfigError, redis_url: str | None = None) -> Config:
        """No services, and the reason: what the panel runs on when the file is bad, so it can say so."""
        return cls(path=Path(exc.file), redis_url=redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
                   publish=True, history_len=0, services={}, error=str(exc))

    def service(self, service_id: str) -> ServiceConfig:
        try:
            return self.services[service_id]
        except KeyError:
            raise ConfigError(
                "exchanges", f"no service {service_id!r} is configured",
                ", ".join(sorted(self.services)) or "none configured",
            ) from None


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _bool(path: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(path, f"expected true or false, got {_describe(value)}", "true, false")


def _seconds(lo: float, hi: float) -> Callable[[str, Any], float]:
    """A duration within sane bounds: 1e-9 s would spin a reconnect loop, .inf would turn a watchdog off."""
    def check(path: str, value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi:
            return float(value)
        raise ConfigError(path, f"expected a number of seconds in {lo:g}..{hi:g}, got {_describe(value)}",
                          f"{lo:g} to {hi:g} seconds")
    return check


def _int_range(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return value
        raise ConfigError(path, f"expected an integer in {lo}..{hi}, got {_describe(value)}", f"{lo}..{hi}")
    return check


def _name(path: str, value: Any) -> str:
    if isinstance(value, str) and value and all(c.isalnum() or c in "_-." for c in value):
        return value
    raise ConfigError(path, f"expected a non-empty name of letters, digits, '_', '-' or '.', got {_describe(value)}")


def _symbols(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of symbols, got {_describe(value)}", "e.g. [BTCUSDT, ETHUSDT]")
    out = []
    for i, sym in enumerate(value):
        if not isinstance(sym, str) or not sym.strip() or any(c.isspace() for c in sym):
            raise ConfigError(f"{path}[{i}]", f"expected a symbol string without spaces, got {_describe(sym)}")
        out.append(sym)
    if len(set(out)) != len(out):
        dupes = sorted({s for s in out if out.count(s) > 1})
        raise ConfigError(path, f"duplicate symbols {dupes}")
    return tuple(out)


def _url(path: str, value: Any) -> str:
    if isinstance(value, str) and value.split("://", 1)[0] in ("ws", "wss", "http", "https"):
        return value
    raise ConfigError(path, f"expected a URL, got {_describe(value)}", "ws://, wss://, http://, https:// URLs")


def _mapping(path: str, value: Any) -> dict:
    if isinstance(value, dict):
        return value
    raise ConfigError(path, f"expected a mapping, got {_describe(value)}")


# key -> (validator, default). Defaults can also come from the top-level `defaults:`.
SERVICE_KEYS: dict[str, tuple[Callable[[str, Any], Any], Any]] = {
    "enabled": (_bool, True),
    "redis_prefix": (_name, None),
    "symbols": (_symbols, ()),
    "endpoint": (_name, None),
    "rest_endpoint": (_name, None),
    "ping_interval": (_seconds(1, 3600), 20.0),
    "silence_timeout": (_seconds(0.5, 3600), 30.0),
    "stale_after": (_seconds(1, 86400), 60.0),
    "poll_interval": (_seconds(0.1, 86400), 2.0),
    "depth": (_int_range(1, 1000), 50),
    "levels": (_int_range(1, 200), 10),
    "book_top": (_bool, True),
    "discovery_interval": (_seconds(0.5, 86400), 300.0),
    "data_timeout": (_seconds(1, 86400), DEFAULT_DATA_TIMEOUT_S),
    "selection": (_mapping, {}),
    "max_connection_age": (_seconds(1, 7 * 86400), None),
}
DEFAULTABLE = ("ping_interval", "silence_timeout", "stale_after", "poll_interval", "discovery_interval", "data_timeout")


def _check_keys(path: str, data: dict, allowed: list[str] | tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}" if path else str(key), "unknown key", ", ".join(allowed))


def _check_service_id(ex_name: str, sid: str, svc_path: str, declared: bool) -> bool:
    """Is `sid` a feed of exchange `ex_name`? Checked against the exchange's declaration when `declared`,
    else by the `<exchange>_` rule only (a feed process does not load other exchanges' modules).
    Returns whether the feed uses REST (False when not checked)."""
    if declared:
        spec = registry.exchange(ex_name).feed_by_id.get(sid)
        if spec is None:
            allowed = list(registry.exchange(ex_name).feed_by_id)
            raise ConfigError(svc_path, f"unknown service for exchange {ex_name!r}", ", ".join(allowed))
        return spec.uses_rest
    if registry.exchange_of(sid) != ex_name:
        raise ConfigError(svc_path, f"unknown service for exchange {ex_name!r}", f"feed ids of the form {ex_name}_<name>")
    return False


def parse_config(data: Any, path: Path = DEFAULT_CONFIG_PATH, redis_url: str | None = None,
                 checked: Collection[str] | None = None) -> Config:
    """Validate the parsed YAML document and build typed settings. `checked`: the exchanges whose services
    are checked against their declared feeds (None: every exchange; a feed process checks its own)."""
    data = _mapping("(top level)", data if data is not None else {})
    _check_keys("", data, ["redis", "defaults", "exchanges"])
    url, publish, history_len = _redis_settings(data, redis_url)
    defaults = _mapping("defaults", data.get("defaults") or {})
    _check_keys("defaults", defaults, list(DEFAULTABLE))
    defaults = {k: SERVICE_KEYS[k][0](f"defaults.{k}", v) for k, v in defaults.items()}
    services: dict[str, ServiceConfig] = {}
    for ex_name, ex in _mapping("exchanges", data.get("exchanges") or {}).items():
        for svc in _exchange_services(ex_name, ex, defaults, checked is None or ex_name in checked):
            if svc.service_id in services:
                raise ConfigError(svc.path, "service configured twice")
            services[svc.service_id] = svc
    _check_unique_prefixes(services)
    return Config(path=path, redis_url=url, publish=publish, history_len=history_len, services=services)


def _redis_settings(data: dict, redis_url: str | None) -> tuple[str, bool, int]:
    """`redis:` (url, publish, history_len); `redis_url` (REDIS_URL) overrides the file's url."""
    redis_cfg = _mapping("redis", data.get("redis") or {})
    _check_keys("redis", redis_cfg, ["url", "publish", "history_len"])
    publish = _bool("redis.publish", redis_cfg.get("publish", True))
    history_len = _int_range(0, 10_000)("redis.history_len", redis_cfg.get("history_len", 60))
    url = redis_url or redis_cfg.get("url") or DEFAULT_REDIS_URL
    try:
        check_redis_url(url)
    except ValueError as exc:
        raise ConfigError("redis.url", str(exc), REDIS_URL_FORMS) from None
    return url, publish, history_len


def _exchange_services(ex_name: str, ex: Any, defaults: Mapping[str, Any], declared: bool) -> list[ServiceConfig]:
    """The services of `exchanges.<ex_name>`, each checked against its exchange's endpoints (and, when
    `declared`, against the exchange's declared feeds)."""
    ex_path = f"exchanges.{ex_name}"
    if ex_name not in registry.EXCHANGES:
        raise ConfigError(ex_path, "unknown exchange", ", ".join(sorted(registry.EXCHANGES)))
    ex = _mapping(ex_path, ex)
    _check_keys(ex_path, ex, ["enabled", "endpoints", "services"])
    ex_enabled = _bool(f"{ex_path}.enabled", ex.get("enabled", True))
    endpoints_raw = _mapping(f"{ex_path}.endpoints", ex.get("endpoints") or {})
    endpoints = {
        _name(f"{ex_path}.endpoints", k): _url(f"{ex_path}.endpoints.{k}", v)
        for k, v in endpoints_raw.items()
    }
    out: list[ServiceConfig] = []
    for sid, svc in _mapping(f"{ex_path}.services", ex.get("services") or {}).items():
        svc_path = f"{ex_path}.services.{sid}"
        uses_rest = _check_service_id(ex_name, sid, svc_path, declared)
        values = _service_values(sid, svc_path, _mapping(svc_path, svc), defaults)
        _check_service_endpoints(sid, svc_path, ex_path, values, endpoints, uses_rest)
        out.append(ServiceConfig(
            service_id=sid,
            exchange=ex_name,
            enabled=ex_enabled and values.pop("enabled"),
            endpoints=endpoints,
            **{k: v for k, v in values.items() if k != "enabled"},
        ))
    return out


def _service_values(sid: str, svc_path: str, svc: dict, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Every SERVICE_KEYS value of one service: its own, else the top-level default, else the built-in one."""
    _check_keys(svc_path, svc, list(SERVICE_KEYS))
    values: dict[str, Any] = {}
    for key, (check, default) in SERVICE_KEYS.items():
        if key in svc:
            values[key] = check(f"{svc_path}.{key}", svc[key])
        else:
            values[key] = defaults.get(key, default)
    if values["redis_prefix"] is None:
        raise ConfigError(f"{svc_path}.redis_prefix", "missing", "a key prefix such as " + sid)
    return values


def _check_service_endpoints(sid: str, svc_path: str, ex_path: str, values: Mapping[str, Any],
                             endpoints: Mapping[str, str], uses_rest: bool) -> None:
    """The service's `endpoint` (and `rest_endpoint`, required for feeds using REST) name endpoints of its exchange."""
    if values["endpoint"] is None:
        raise ConfigError(f"{svc_path}.endpoint", "missing", ", ".join(endpoints) or "define exchanges.<name>.endpoints first")
    if values["endpoint"] not in endpoints:
        raise ConfigError(
            f"{svc_path}.endpoint", f"{values['endpoint']!r} is not one of {ex_path}.endpoints",
            ", ".join(endpoints) or "none defined",
        )
    rest = values["rest_endpoint"]
    if rest is None and uses_rest:
        raise ConfigError(f"{svc_path}.rest_endpoint", f"missing: {sid} discovers or polls over REST",
                          ", ".join(k for k, v in endpoints.items() if v.startswith("http")) or "an http(s) endpoint")
    if rest is not None and rest not in endpoints:
        raise ConfigError(f"{svc_path}.rest_endpoint", f"{rest!r} is not one of {ex_path}.endpoints",
                          ", ".join(endpoints))


def _check_unique_prefixes(services: Mapping[str, ServiceConfig]) -> None:
    prefixes = [s.redis_prefix for s in services.values()]
    for s in services.values():
        if prefixes.count(s.redis_prefix) > 1:
            raise ConfigError(f"{s.path}.redis_prefix", f"prefix {s.redis_prefix!r} is used by more than one service")


def load_config(path: str | os.PathLike | None = None, checked: Collection[str] | None = None) -> Config:
    """Read the config file (LTP_CONFIG or ./exchanges.yaml); REDIS_URL overrides redis.url.
    `checked` as parse_config's."""
    cfg_path = Path(path or os.environ.get("LTP_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = cfg_path.read_text()
    except OSError as exc:
        raise ConfigError("(file)", f"cannot read it: {exc.strerror}", "set LTP_CONFIG to the file's path",
                          file=str(cfg_path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"not valid YAML: {exc}", file=str(cfg_path)) from None
    try:
        return parse_config(data, cfg_path, redis_url=os.environ.get("REDIS_URL") or None, checked=checked)
    except ConfigError as exc:
        exc.file = str(cfg_path)
        raise
