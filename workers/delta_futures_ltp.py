"""Feed `delta_futures_ltp`: Delta perpetuals/futures: LTP, mark, index, funding, OI, 24 h stats."""

from __future__ import annotations

from workers.exchanges import delta
from workers.runtime.feed import run_feed


def main() -> None:
    run_feed("delta_futures_ltp", delta.build_futures)


if __name__ == "__main__":
    main()
