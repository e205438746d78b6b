"""python -m controlpanel: serve the panel with waitress and carry out `service:control:<id>` keys.

Listens on 127.0.0.1:8080 unless LTP_PANEL_HOST / LTP_PANEL_PORT say otherwise.
waitress reads requests on one event-loop thread and hands only complete ones
to a fixed pool of threads, so half-sent requests (slowloris) cost a socket,
not a thread, and are dropped after `channel_timeout` seconds without a byte.
"""

from __future__ import annotations

import logging
import resource
import sys
from typing import Any

import waitress  # type: ignore[import-untyped]  # stubs: types-waitress (not in requirements-dev)

from workers.runtime.feed import die_with_parent

from . import MAX_REQUEST_BYTES, InsecureBindError, PanelSettings, create_app, deps
from .control import ControlWatcher

log = logging.getLogger("controlpanel")

FD_HEADROOM = 64                  # Redis pool, supervisord sockets, logs, the listening socket
MAX_HEADER_BYTES = 32 * 1024      # browsers send a few KiB; bounds memory per connection
CLEANUP_INTERVAL_S = 5            # how often waitress looks for connections past channel_timeout


def connection_limit(wanted: int) -> int:
    """Raise the soft fd limit to fit `wanted` connections if the hard limit allows; else fit the limit to it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning("open-file limit %d allows only %d connections, not %d", soft, soft - FD_HEADROOM, wanted)
        return max(1, soft - FD_HEADROOM)
    return wanted


def server_options(settings: PanelSettings) -> dict[str, Any]:
    """waitress.serve() keywords for these settings."""
    return {
        "host": settings.host.strip("[]"),
        "port": settings.port,
        "threads": settings.threads,
        "connection_limit": connection_limit(settings.connection_limit),
        "channel_timeout": settings.channel_timeout,
        "cleanup_interval": CLEANUP_INTERVAL_S,
        "max_request_header_size": MAX_HEADER_BYTES,
        "max_request_body_size": MAX_REQUEST_BYTES,
        "asyncore_use_poll": True,  # select() stops at fd 1024
        "ident": "ltp-panel",
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    die_with_parent(log)  # a kill -9 of supervisord must not leave the panel holding its port
    settings = PanelSettings.from_env()
    try:
        app = create_app(settings=settings)
    except InsecureBindError as exc:
        print(f"controlpanel: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    d = deps.of(app)
    ControlWatcher(d.config, d.redis, d.supervisor, d.marker).start()
    waitress.serve(app, **server_options(settings))


if __name__ == "__main__":
    main()
