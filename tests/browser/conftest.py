"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) and a screenshot folder for the browser tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright import sync_api

    sync_api.expect.set_options(timeout=15_000)  # a loaded 2-core box can take more than the 5 s default
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield b
        b.close()


@pytest.fixture
def shots() -> Path:
    path = Path(os.environ.get("LTP_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="ltp-shots-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {path}")
    return path
