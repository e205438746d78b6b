"""The real panel program (`python -m controlpanel` under supervisord) serves with waitress.

Half-sent requests (slowloris) hold a socket each, not a thread: the panel keeps
answering and its thread count does not move. Loopback only; the test's own
sockets are bounded in number and closed within seconds.
"""

from __future__ import annotations

import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from controlpanel import PanelSettings
from tests.harness import wait_for

pytestmark = pytest.mark.e2e

HALF_OPEN = 300


@pytest.fixture
def panel(make_supervisor):
    sv = make_supervisor()
    url = f"http://127.0.0.1:{sv.panel_port}"
    wait_for(lambda: requests.get(f"{url}/api/status", timeout=2).ok, 15)
    return sv, url, sv.info("controlpanel")["pid"]


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def _timed_status(session: requests.Session, url: str) -> float:
    t0 = time.perf_counter()
    resp = session.get(f"{url}/api/status", timeout=1)
    elapsed = time.perf_counter() - t0
    assert resp.status_code == 200 and resp.json()["redis"]["ok"] and resp.json()["supervisor"]["ok"]
    return elapsed


def test_served_by_waitress_with_json_errors(panel):
    _sv, url, _pid = panel
    resp = requests.get(f"{url}/api/status", timeout=2)
    assert resp.headers["Server"] == "ltp-panel"
    bad = requests.post(f"{url}/api/service/bybit_spot/explode", timeout=2)
    assert bad.status_code == 404 and bad.json()["error"] == "not_found"


@pytest.mark.timing
def test_half_open_connections_do_not_starve_the_panel(panel):
    _sv, url, pid = panel
    port = int(url.rsplit(":", 1)[1])
    session = requests.Session()
    _timed_status(session, url)
    threads_before = _threads(pid)
    fds_before = len(os.listdir(f"/proc/{pid}/fd"))
    socks: list[socket.socket] = []
    try:
        for i in range(HALF_OPEN):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            # Half a request line, or a request line and headers that never end.
            s.sendall(b"GET /api/sta" if i % 2 else b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        # The panel has accepted them (each is an open fd in its process), not left them in the backlog.
        wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= fds_before + HALF_OPEN, 5)
        fresh = [_timed_status(requests.Session(), url) for _ in range(5)]  # new connections
        kept = [_timed_status(session, url) for _ in range(5)]              # a keep-alive one
        assert max(fresh + kept) < 1.0, (fresh, kept)
        threads_during = _threads(pid)
        assert threads_during <= threads_before, (threads_before, threads_during)
        assert threads_during <= PanelSettings().threads + 4  # request threads + event loop + control watcher + spare
    finally:
        for s in socks:
            s.close()
    assert _timed_status(session, url) < 1.0


def test_concurrent_requests_queue_instead_of_failing(panel):
    """More concurrent clients than threads and Redis connections: every request is answered, none errors."""
    _sv, url, pid = panel

    def one(_: int) -> tuple[int, bool]:
        r = requests.get(f"{url}/api/status", timeout=10)
        return r.status_code, r.json()["redis"]["ok"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(300)))
    assert results == [(200, True)] * 300
    assert _threads(pid) <= PanelSettings().threads + 4
