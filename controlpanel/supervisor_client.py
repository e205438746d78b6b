"""supervisord XML-RPC wrapper for one node: faults become `SupervisorError`s with an HTTP status and a plain message.

Every call has a timeout (transport.py): reads take the node's timeout, start/stop (which wait
for supervisord's startsecs / stopwaitsecs) ACTION_TIMEOUT_S.
"""

from __future__ import annotations

import http.client
import xmlrpc.client
from typing import Any

from supervisor.xmlrpc import Faults

from workers.runtime.supervisor_rpc import default_server_url

from .node_config import LOCAL, NodeConfig
from .transport import node_proxy

LOG_MAX_BYTES = 64 * 1024  # a log tail never returns more than this
LOCAL_TIMEOUT_S = 5.0      # the implicit single node: no other node to keep waiting, so more patience
ACTION_TIMEOUT_S = 60.0    # start/stop wait for startsecs / stopwaitsecs (and startretries) on the node

# fault code -> (HTTP status, short code, message template)
_FAULTS: dict[int, tuple[int, str, str]] = {
    Faults.BAD_NAME: (404, "bad_name", "supervisord has no program named {name!r}"),
    Faults.ALREADY_STARTED: (409, "already_started", "{name} is already running"),
    Faults.NOT_RUNNING: (409, "not_running", "{name} is not running"),
    Faults.SPAWN_ERROR: (500, "spawn_error", "{name} could not be started (it exited during startup); see its log"),
    Faults.ABNORMAL_TERMINATION: (500, "abnormal_termination", "{name} exited while starting; see its log"),
    Faults.NO_FILE: (500, "no_file", "the command of {name} was not found"),
    Faults.NOT_EXECUTABLE: (500, "not_executable", "the command of {name} is not executable"),
    Faults.SHUTDOWN_STATE: (503, "shutting_down", "supervisord is shutting down"),
}


class SupervisorError(Exception):
    """A failed supervisord call, ready to be returned as JSON."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class SupervisorUnavailable(SupervisorError):
    def __init__(self, detail: str) -> None:
        super().__init__(503, "supervisor_unavailable", f"supervisord is not reachable: {detail}")


class SupervisorClient:
    """One supervisord node. Each call opens its own connection (transport.py), so it is thread-safe."""

    def __init__(self, server_url: str | None = None, *, node: NodeConfig | None = None,
                 timeout: float = LOCAL_TIMEOUT_S) -> None:
        self.node = node or NodeConfig(LOCAL, server_url or default_server_url())
        self.server_url = self.node.url
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.node.name

    def _call(self, method: str, *args: Any, name: str = "", timeout: float | None = None) -> Any:
        try:
            with node_proxy(self.node, timeout or self.timeout) as proxy:
                return getattr(proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            status, code, template = _FAULTS.get(fault.faultCode, (500, "fault", "supervisord: {detail}"))
            raise SupervisorError(status, code, template.format(name=name, detail=fault.faultString)) from None
        except TimeoutError:
            raise SupervisorUnavailable(f"no answer within {timeout or self.timeout:g} s") from None
        except xmlrpc.client.ProtocolError as exc:  # 401 from a node whose username/password is wrong, a proxy's 502
            raise SupervisorUnavailable(f"HTTP {exc.errcode} {exc.errmsg}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise SupervisorUnavailable(str(exc) or type(exc).__name__) from None

    def processes(self) -> dict[str, dict[str, Any]]:
        """Program name -> supervisord's process info."""
        return {p["name"]: p for p in self._call("getAllProcessInfo")}

    def info(self, name: str) -> dict[str, Any]:
        return self._call("getProcessInfo", name, name=name)

    def start(self, name: str, wait: bool = True) -> None:
        self._call("startProcess", name, wait, name=name, timeout=ACTION_TIMEOUT_S)

    def stop(self, name: str, wait: bool = True) -> None:
        self._call("stopProcess", name, wait, name=name, timeout=ACTION_TIMEOUT_S)

    def restart(self, name: str) -> None:
        """Stop if running, then start; a stopped program simply starts."""
        try:
            self.stop(name)
        except SupervisorError as exc:
            if exc.code != "not_running":
                raise
        self.start(name)

    def act(self, name: str, action: str) -> None:
        {"start": self.start, "stop": self.stop, "restart": self.restart}[action](name)

    def tail_log(self, name: str, nbytes: int) -> str:
        nbytes = max(1, min(nbytes, LOG_MAX_BYTES))
        text, _offset, _overflow = self._call("tailProcessStdoutLog", name, 0, nbytes, name=name)
        return text
