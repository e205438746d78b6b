"""Panel settings: where it listens, its token, and the limits that follow from them."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field


class InsecureBindError(RuntimeError):
    """Refusal to serve mutating endpoints on a network address without a token."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) and `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


@dataclass(frozen=True)
class PanelSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    secure_cookie: bool = False   # set behind a TLS-terminating proxy
    rate_burst: int = 10          # mutating requests a client may fire at once...
    rate_per_s: float = 1.0       # ...and how fast that allowance refills
    # Off loopback only: the Host names the panel answers to (Flask's TRUSTED_HOSTS); empty = any.
    trusted_hosts: tuple[str, ...] = ()
    # Serving (waitress): request threads, open connections, seconds an idle or half-sent request may hold one.
    threads: int = 8
    connection_limit: int = 4000
    channel_timeout: int = 30
    # LTP_PANEL_NODES: a YAML file listing supervisord nodes (node_config.py); empty = the local one only.
    nodes_file: str = ""

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def require_auth(self) -> bool:
        """A token is required off loopback; a token set on loopback is honoured too."""
        return not self.loopback or bool(self.token)

    def check(self) -> None:
        if not self.loopback and not self.token:
            raise InsecureBindError(
                f"refusing to listen on {self.host} without a token: set LTP_PANEL_TOKEN "
                "(or bind 127.0.0.1 with LTP_PANEL_HOST)"
            )

    @classmethod
    def from_env(cls, **overrides: object) -> PanelSettings:
        env = os.environ
        values: dict[str, object] = {
            "host": env.get("LTP_PANEL_HOST", "127.0.0.1"),
            "port": int(env.get("LTP_PANEL_PORT", "8080")),
            "token": env.get("LTP_PANEL_TOKEN", ""),
            "secure_cookie": env.get("LTP_PANEL_SECURE_COOKIE", "") in ("1", "true", "yes"),
            "trusted_hosts": tuple(h.strip() for h in env.get("LTP_PANEL_TRUSTED_HOSTS", "").split(",") if h.strip()),
            "nodes_file": env.get("LTP_PANEL_NODES", "").strip(),
        }
        if env.get("LTP_PANEL_SECRET"):
            values["secret_key"] = env["LTP_PANEL_SECRET"]
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
