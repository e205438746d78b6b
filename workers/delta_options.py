"""Feed `delta_options`: Delta options with Greeks; the chain follows the selection rule."""

from __future__ import annotations

from workers.exchanges import delta
from workers.runtime.feed import run_feed


def main() -> None:
    run_feed("delta_options", delta.build_options)


if __name__ == "__main__":
    main()
