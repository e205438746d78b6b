"""Feed `bybit_spot_testnet_spot`: the spot feed against Bybit's testnet (config differs, code is shared)."""

from __future__ import annotations

from workers.bybit_spot import build
from workers.runtime.feed import run_feed


def main() -> None:
    run_feed("bybit_spot_testnet_spot", build)


if __name__ == "__main__":
    main()
