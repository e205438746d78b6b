"""Whole-system memory: PSS per supervisord program with every feed running on the simulator (`make demo`).

    python -m bench.system_memory [--settle 60] [--port 8765]

Starts the demo system under a private supervisord (its own socket, logs and Redis port), waits
`--settle` seconds, and reads each program's proportional set size (PSS) from
/proc/<pid>/smaps_rollup, children included: shared pages (the Python interpreter, libraries)
are split between the processes that map them, so the sum is the memory the system really
uses. The simulator is listed apart and left out of the total. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tests.harness import RedisServer, Supervisor, free_port, wait_for
from tests.sim.demo import demo_config


def pss_kb(pid: int) -> int:
    """PSS of one process and its descendants, in kB (0 if it is gone)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out.append(int(c))
        out.extend(descendants(int(c)))
    return out


def measure(settle: float) -> list[tuple[str, int]]:
    redis_server = RedisServer().start()
    port = free_port()
    config = demo_config(port)
    config["redis"]["url"] = redis_server.url
    sv = Supervisor(config, redis_server.url, env={"LTP_DEMO": "1", "LTP_SIM_PORT": str(port)}).start()
    try:
        rpc = sv.rpc()
        wait_for(lambda: rpc.supervisor.getProcessInfo("simulator")["statename"] == "RUNNING", 30)
        time.sleep(settle)
        rows = [(p["name"], pss_kb(p["pid"])) for p in rpc.supervisor.getAllProcessInfo() if p["pid"]]
        rows.append(("supervisord", pss_kb(sv.proc.pid) - sum(kb for _, kb in rows)))  # its own share
        rows.append(("redis-server", pss_kb(redis_server.proc.pid)))  # type: ignore[union-attr]
        return sorted(rows)
    finally:
        sv.stop()
        redis_server.cleanup()


def table(rows: list[tuple[str, int]]) -> str:
    system = [(n, kb) for n, kb in rows if n != "simulator"]
    lines = ["| program | PSS MB |", "| --- | --- |"]
    lines += [f"| {n} | {kb / 1024:.1f} |" for n, kb in system]
    lines.append(f"| **total (without the simulator)** | **{sum(kb for _, kb in system) / 1024:.1f}** |")
    lines += [f"| simulator (apart) | {kb / 1024:.1f} |" for n, kb in rows if n == "simulator"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--settle", type=float, default=60.0)
    args = ap.parse_args()
    print(f"whole system on the simulator after {args.settle:g} s ({os.cpu_count()} cores)\n")
    print(table(measure(args.settle)))


if __name__ == "__main__":
    main()
