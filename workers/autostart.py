"""supervisord program `autostart`: start the feeds that exchanges.yaml enables, then exit.

Feeds are declared with autostart=false so that a disabled feed can still be
started by hand; this one-shot applies the `enabled` flags at boot.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import xmlrpc.client

from workers.runtime.config import ConfigError, load_config
from workers.runtime.supervisor_rpc import supervisor_proxy


def start_simulator(rpc: xmlrpc.client.ServerProxy) -> None:
    """Demo mode: the local simulator first, so feeds connect at once instead of backing off."""
    try:
        rpc.supervisor.startProcess("simulator", True)
    except xmlrpc.client.Fault as fault:
        print(f"simulator: {fault.faultString}", flush=True)
        return
    port = int(os.environ.get("LTP_SIM_PORT") or 8765)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            print(f"simulator: listening on 127.0.0.1:{port}", flush=True)
            return
        except OSError:
            time.sleep(0.1)
    print(f"simulator: not listening on 127.0.0.1:{port} after 15 s; see logs/simulator.log", flush=True)


def main() -> None:
    try:
        config = load_config()
    except ConfigError as exc:
        print(exc, flush=True)
        sys.exit(2)
    rpc = supervisor_proxy()
    processes: list[dict] = rpc.supervisor.getAllProcessInfo()  # type: ignore[assignment]  # XML-RPC is untyped
    known = {p["name"] for p in processes}
    if os.environ.get("LTP_DEMO") == "1" and "simulator" in known:
        start_simulator(rpc)
    for sid, svc in config.services.items():
        if not svc.enabled:
            print(f"{sid}: disabled in {config.path}; start it by hand with `supervisorctl start {sid}`", flush=True)
            continue
        if sid not in known:
            print(f"{sid}: enabled but supervisord.conf has no [program:{sid}]", flush=True)
            continue
        try:
            rpc.supervisor.startProcess(sid, False)
            print(f"{sid}: started", flush=True)
        except xmlrpc.client.Fault as fault:
            print(f"{sid}: {fault.faultString}", flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
