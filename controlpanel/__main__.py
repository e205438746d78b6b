"""python -m controlpanel: serve the panel (127.0.0.1:8080 unless LTP_PANEL_HOST/LTP_PANEL_PORT say otherwise)."""

from __future__ import annotations

import os

from . import create_app


def main() -> None:
    host = os.environ.get("LTP_PANEL_HOST", "127.0.0.1")
    port = int(os.environ.get("LTP_PANEL_PORT", "8080"))
    create_app().run(host=host, port=port, threaded=True)


if __name__ == "__main__":
    main()
