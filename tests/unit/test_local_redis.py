"""The supervisord `redis` helper honours the password in REDIS_URL, asking and serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def run_helper(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workers.local_redis"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_password_in_redis_url_is_required_by_the_started_server_and_used_to_ask(tmp_path):
    port = free_port()
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    cfg = tmp_path / "ltp.yaml"
    cfg.write_text("redis: {url: redis://127.0.0.1:1/0}\n")
    env = {**os.environ, "REDIS_URL": url, "LTP_CONFIG": str(cfg), "LTP_VAR": str(tmp_path / "var")}
    server = run_helper(env)
    try:
        wait_for(lambda: redis.Redis.from_url(url).ping(), 10)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert oct((tmp_path / "var" / "redis" / "ltp-redis.conf").stat().st_mode & 0o777) == "0o600"
        # A second helper sees the server with the URL's password and reuses it (it used to ping without
        # the password, take the refusal for "no server" and fail to start a second one on the taken port).
        again = run_helper(env)
        out, _ = again.communicate(timeout=20)
        assert again.returncode == 0 and "already answers" in out
        # Wrong credentials: say so, exit non-zero, start nothing.
        wrong = run_helper({**env, "REDIS_URL": f"redis://:nope@127.0.0.1:{port}/0"})
        out, _ = wrong.communicate(timeout=20)
        assert wrong.returncode == 1 and "refused the credentials" in out
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0", "unix:///tmp/x.sock",
                                 "rediss://127.0.0.1:6380/0"])
def test_non_local_url_forms_start_no_server_and_do_not_crash(tmp_path, url):
    cfg = tmp_path / "ltp.yaml"
    cfg.write_text("redis: {url: redis://127.0.0.1:1/0}\n")
    env = {**os.environ, "REDIS_URL": url, "LTP_CONFIG": str(cfg), "LTP_VAR": str(tmp_path / "var")}
    out, _ = run_helper(env).communicate(timeout=20)
    assert "not starting a local redis-server" in out and "Traceback" not in out
