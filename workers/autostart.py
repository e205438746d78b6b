"""supervisord program `autostart`: start the feeds that exchanges.yaml enables, then exit.

Feeds are declared with autostart=false so that a disabled feed can still be
started by hand; this one-shot applies the `enabled` flags at boot.
"""

from __future__ import annotations

import sys
import time
import xmlrpc.client

from workers.runtime.config import ConfigError, load_config
from workers.runtime.supervisor_rpc import supervisor_proxy


def main() -> None:
    try:
        config = load_config()
    except ConfigError as exc:
        print(exc, flush=True)
        sys.exit(2)
    rpc = supervisor_proxy()
    processes: list[dict] = rpc.supervisor.getAllProcessInfo()  # type: ignore[assignment]  # XML-RPC is untyped
    known = {p["name"] for p in processes}
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
