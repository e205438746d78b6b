"""The fault-injection suite's measured-figures collector (a plugin: tests/conftest.py loads it, so its
hooks run in pytest-xdist's controller, which loads no conftest below tests/).

Every test of tests/reliability/ records what it measured with `figures.record(...)`; the figures are
printed in pytest's terminal summary and written as JSON to
`$LTP_RELIABILITY_JSON` (default: `<pytest basetemp>/reliability-figures.json`).
Under pytest-xdist each worker sends its figures to the controller, which prints and writes them all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_FIGURES: list[dict] = []
_WORKER_KEY = "ltp_reliability_figures"


class Figures:
    """Collects (fault, figure, value, unit) rows for the terminal summary and the JSON file."""

    def record(self, fault: str, figure: str, value: float | int | str, unit: str = "s", **extra: object) -> None:
        if isinstance(value, float):
            value = round(value, 3)
        _FIGURES.append({"fault": fault, "figure": figure, "value": value, "unit": unit, **extra})


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


def _json_path(config: pytest.Config) -> Path:
    return Path(os.environ.get("LTP_RELIABILITY_JSON") or config._tmp_path_factory.getbasetemp() / "reliability-figures.json")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:  # noqa: ARG001 - pytest hook signature
    config = session.config
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller writes the file
        config.workeroutput[_WORKER_KEY] = json.dumps(_FIGURES)
    elif _FIGURES:
        _json_path(config).write_text(json.dumps(_FIGURES, indent=2))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ARG001 - xdist hook signature
    _FIGURES.extend(json.loads(getattr(node, "workeroutput", {}).get(_WORKER_KEY, "[]")))


def _fault_number(figure: dict) -> int:
    """The fault's row number in the README's table ("12 config error (bybit_spot)" -> 12)."""
    head = str(figure["fault"]).split(" ", 1)[0]
    return int(head) if head.isdigit() else 1_000


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook signature
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section("reliability figures (measured in this run)")
    width = max(len(f"{f['fault']}: {f['figure']}") for f in _FIGURES)
    for f in sorted(_FIGURES, key=_fault_number):  # xdist workers report in any order
        label = f"{f['fault']}: {f['figure']}"
        tr.write_line(f"{label:<{width}}  {f['value']} {f['unit']}".rstrip())
    tr.write_line(f"written to {_json_path(config)}")
