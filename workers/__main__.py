"""`python -m workers <feed_id>`: run one feed (supervisord's command for every feed program)."""

from __future__ import annotations

import importlib
import sys

from workers.registry import FEEDS


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in FEEDS:
        got = f"unknown feed {argv[0]!r}" if len(argv) == 1 else "expected one feed id"
        print(f"python -m workers: {got} (allowed: {', '.join(FEEDS)})", file=sys.stderr)
        sys.exit(2)
    feed_id = argv[0]
    module_name, _, function = FEEDS[feed_id].builder.partition(":")
    from workers.runtime.feed import run_feed

    run_feed(feed_id, getattr(importlib.import_module(module_name), function))


if __name__ == "__main__":
    main(sys.argv[1:])
