"""Whole-system memory: PSS per supervisord program with every feed running on the simulator (`make demo`).

    python -m bench.system_memory [--settle 60] [--modules DIR] [--env NAME=VALUE ...]

Starts the demo system under a private supervisord (its own socket, logs and Redis port), waits
`--settle` seconds, and reads each program's proportional set size (PSS) from
/proc/<pid>/smaps_rollup, children included: shared pages (the Python interpreter, libraries)
are split between the processes that map them, so the sum is the memory the system really
uses. The simulator is listed apart and left out of the total. Prints a Markdown table.

--modules DIR: every Python program also writes the names in its `sys.modules` after the settle
time to DIR/<pid>.modules (a `sitecustomize` on PYTHONPATH), to find what a feed imports and never
uses. --env: extra environment for supervisord and so every program (A/B runs, e.g. an allocator
setting), recorded in the table's heading.
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


SITECUSTOMIZE = """
import os, sys, threading, time
def _dump():
    time.sleep({after})
    with open(os.path.join({out!r}, f"{{os.getpid()}}.modules"), "w") as f:
        f.write(" ".join(sys.argv) + "\\n" + "\\n".join(sorted(sys.modules)) + "\\n")
threading.Thread(target=_dump, daemon=True, name="ltp-bench-modules").start()
"""


def measure(settle: float, modules_dir: Path | None = None, extra_env: dict[str, str] | None = None
            ) -> list[tuple[str, int]]:
    redis_server = RedisServer().start()
    port = free_port()
    config = demo_config(port)
    config["redis"]["url"] = redis_server.url
    env = {"LTP_DEMO": "1", "LTP_SIM_PORT": str(port), **(extra_env or {})}
    if modules_dir is not None:  # diagnostics only: the extra thread and file are not in the figures' runs
        modules_dir.mkdir(parents=True, exist_ok=True)
        (modules_dir / "sitecustomize.py").write_text(SITECUSTOMIZE.format(after=settle * 0.8, out=str(modules_dir)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(modules_dir), os.environ.get("PYTHONPATH")]))
    sv = Supervisor(config, redis_server.url, env=env).start()
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
    ap.add_argument("--modules", type=Path, help="write each program's sys.modules to DIR/<pid>.modules")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment (repeatable)")
    args = ap.parse_args()
    extra = dict(e.split("=", 1) for e in args.env)
    with_env = f", env {' '.join(args.env)}" if extra else ""
    print(f"whole system on the simulator after {args.settle:g} s ({os.cpu_count()} cores{with_env})\n")
    print(table(measure(args.settle, args.modules, extra)))


if __name__ == "__main__":
    main()
