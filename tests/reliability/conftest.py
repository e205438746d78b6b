"""Fault-injection suite: fixtures and the measured-figures collector.

Every test records what it measured with `figures.record(...)`; the figures are
printed in pytest's terminal summary and written as JSON to
`$LTP_RELIABILITY_JSON` (default: `<pytest basetemp>/reliability-figures.json`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_FIGURES: list[dict] = []
_JSON_PATH: list[Path] = []


class Figures:
    """Collects (fault, figure, value, unit) rows for the terminal summary and the JSON file."""

    def record(self, fault: str, figure: str, value: float | int | str, unit: str = "s", **extra: object) -> None:
        if isinstance(value, float):
            value = round(value, 3)
        _FIGURES.append({"fault": fault, "figure": figure, "value": value, "unit": unit, **extra})


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Figures:
    path = Path(os.environ.get("LTP_RELIABILITY_JSON") or tmp_path_factory.getbasetemp() / "reliability-figures.json")
    _JSON_PATH[:] = [path]
    yield Figures()
    path.write_text(json.dumps(_FIGURES, indent=2))


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook signature
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section("reliability figures (measured in this run)")
    width = max(len(f"{f['fault']}: {f['figure']}") for f in _FIGURES)
    for f in _FIGURES:
        label = f"{f['fault']}: {f['figure']}"
        tr.write_line(f"{label:<{width}}  {f['value']} {f['unit']}".rstrip())
    if _JSON_PATH:
        tr.write_line(f"written to {_JSON_PATH[0]}")
