"""python -m controlpanel: serve the panel (127.0.0.1:8080 unless LTP_PANEL_HOST/LTP_PANEL_PORT say otherwise)."""

from __future__ import annotations

import logging
import sys

from . import InsecureBindError, PanelSettings, create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The dashboard polls every 2 s: per-request access lines would only fill the log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = PanelSettings.from_env(watch_control=True)
    try:
        app = create_app(settings=settings)
    except InsecureBindError as exc:
        print(f"controlpanel: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    app.run(host=settings.host, port=settings.port, threaded=True)


if __name__ == "__main__":
    main()
