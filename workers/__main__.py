"""`python -m workers <feed_id>`: run one feed (supervisord's command for every feed program);
`python -m workers` alone lists the feeds."""

from __future__ import annotations

import sys

from workers import registry


def main(argv: list[str]) -> None:
    if not argv:
        for ex in registry.exchanges():
            for f in ex.feeds:
                print(f"{f.id:28} {ex.display:12} {f.kind:10} {f.summary}")
        return
    spec = registry.feed(argv[0]) if len(argv) == 1 else None
    if spec is None:
        got = f"unknown feed {argv[0]!r}" if len(argv) == 1 else "expected one feed id"
        print(f"python -m workers: {got} (allowed: {', '.join(registry.feeds())})", file=sys.stderr)
        sys.exit(2)
    from workers.runtime.feed import run_feed

    run_feed(spec.id, spec.build)


if __name__ == "__main__":
    main(sys.argv[1:])
