"""`make run` while ltp already runs says so, instead of supervisord's port error."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def test_second_make_run_says_ltp_is_already_running(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    conf = (ROOT / "supervisord.conf").read_text()
    conf = conf[: conf.index("[program:")]  # supervisord itself only: nothing binds a port or starts a feed
    (tmp_path / "supervisord.conf").write_text(conf)
    (tmp_path / "logs").mkdir()
    (tmp_path / "var").mkdir()
    proc = subprocess.Popen([str(VENV / "bin" / "supervisord"), "-c", str(tmp_path / "supervisord.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "var" / "supervisor.sock").exists(), 15)
        out = subprocess.run(["make", "-s", "not-running", f"VENV={VENV}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert re.search(r"ltp is already running \(see: .*supervisorctl -c supervisord.conf status", out.stdout)
    finally:
        proc.terminate()
        proc.wait(20)
    out = subprocess.run(["make", "-s", "not-running", f"VENV={VENV}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
