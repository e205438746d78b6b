"""Exchange protocol modules are pure: importing one loads no HTTP client (urllib3) and not the
runtime's REST helpers (workers.runtime.poll); an unusable REST reply is their ParseError, which
`poll.get_parsed`/`post_parsed` turn into a RestError."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import workers.exchanges
from tests.harness import ROOT

MODULES = sorted(m.name for m in pkgutil.iter_modules(workers.exchanges.__path__))


def test_every_exchange_module_is_listed():
    assert {"bybit", "coindcx", "delta", "hyperliquid"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_importing_an_exchange_module_loads_no_rest_client(name):
    code = (f"import sys, importlib\nimportlib.import_module('workers.exchanges.{name}')\n"
            "print(sorted(m for m in ('urllib3', 'workers.runtime.poll', 'workers.runtime.paging') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"workers.exchanges.{name} loads {out.strip()}"
