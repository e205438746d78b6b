"""XML-RPC to supervisord over its unix socket (never over TCP)."""

from __future__ import annotations

import os
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

from .config import ROOT


def default_server_url() -> str:
    """supervisord tells its children its URL; outside it, use the repo's socket."""
    return os.environ.get("SUPERVISOR_SERVER_URL") or f"unix://{ROOT / 'var' / 'supervisor.sock'}"


def supervisor_proxy(server_url: str | None = None) -> xmlrpc.client.ServerProxy:
    url = server_url or default_server_url()
    if not url.startswith("unix://"):
        raise ValueError(f"supervisord must be reached over its unix socket, got {url!r}")
    transport = SupervisorTransport(None, None, url)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
