"""Feed `delta_spot`: Delta spot markets, or the pair's spot index where Delta has no spot market."""

from __future__ import annotations

from workers.exchanges import delta
from workers.runtime.feed import run_feed


def main() -> None:
    run_feed("delta_spot", delta.build_spot)


if __name__ == "__main__":
    main()
