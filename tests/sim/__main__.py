"""python -m tests.sim --port 0 --port-file sim.port: serve every simulated exchange until killed."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from .server import Simulator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("LTP_SIM_PORT") or 0),
                    help="0 picks a free port (default: $LTP_SIM_PORT, as `make demo` sets it)")
    ap.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    ap.add_argument("--rate", type=float, default=5.0, help="updates per second per subscribed topic")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sim = Simulator(args.host, args.port, rate_hz=args.rate, seed=args.seed)

    async def run() -> None:
        await sim.serve()
        if args.port_file:
            args.port_file.write_text(str(sim.port))
        print(f"simulator listening on {args.host}:{sim.port}; bybit spot at {sim.ws_url('bybit', 'v5/public/spot')}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
