"""The one OpenAPI description of the panel's API: /openapi.json serves it and /docs renders it.

The document is data, openapi.yaml next to this module (it ships with the package, read relative to
this file), parsed once on first use.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).with_name("openapi.yaml")


@functools.cache
def openapi_spec() -> dict[str, Any]:
    """The parsed document; one object shared by every caller, so nobody may change it."""
    with SPEC_PATH.open(encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec
