"""`python -m workers.supervisor_conf [FILE]`: write supervisord's feed programs from the registry.

supervisord.conf is the user's file: only the part between the two marker lines below is rewritten,
one `[program:<feed id>]` per declared feed, the same block for every feed; everything else in the
file (the user's own edits included) stays as it is. `--check` exits 1 when the file differs from
what would be written (tests/unit/test_registry.py runs it on the repository's file).
"""

from __future__ import annotations

import sys
from pathlib import Path

from workers import registry

BEGIN = "; BEGIN generated feeds: `python -m workers.supervisor_conf` rewrites this part from workers/registry.py"
END = "; END generated feeds"
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "supervisord.conf"

# Every feed runs the same way; its name is the feed id. startsecs/startretries: a feed that exits
# within 2 s (a configuration error) is retried 3 times and then left FATAL, not restarted forever.
# -OO: no docstrings (redis-py's command docs alone are megabytes): 3.6 MB less memory per feed process,
# measured (bench/results.md); a feed reads no docstring and asserts nothing it needs.
PROGRAM = """\
[program:{feed_id}]
; {summary}
command=python -OO -m workers %(program_name)s
directory=%(here)s
autostart=false
autorestart=true
startsecs=2
startretries=3
stopsignal=TERM
stopwaitsecs=3
stdout_logfile=%(here)s/logs/%(program_name)s.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=5
redirect_stderr=true
"""


def feed_blocks() -> str:
    """The generated part, markers included."""
    blocks = [PROGRAM.format(feed_id=f.id, summary=f.summary) for ex in registry.exchanges() for f in ex.feeds]
    return "\n".join([BEGIN, *blocks, END])


def rewrite(text: str) -> str:
    """`text` with its generated part replaced; ValueError when the markers are missing or out of order."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the marker lines are missing or out of order; put these two lines where the feeds go:\n{BEGIN}\n{END}")
    return text[:start] + feed_blocks() + text[end + len(END):]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_FILE
    try:
        old = path.read_text()
        new = rewrite(old)
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if check:
        if new != old:
            print(f"{path}: the feed programs differ from workers/registry.py; run `python -m workers.supervisor_conf`",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        path.write_text(new)
        print(f"{path}: feed programs written ({len(registry.feeds())} feeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
