"""supervisord XML-RPC wrapper: faults become `SupervisorError`s with an HTTP status and a plain message."""

from __future__ import annotations

import http.client
import threading
import xmlrpc.client
from typing import Any

from supervisor.xmlrpc import Faults

from workers.runtime.supervisor_rpc import supervisor_proxy

LOG_MAX_BYTES = 64 * 1024  # a log tail never returns more than this

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
    """One proxy per thread (a proxy keeps its socket, and is not thread-safe), rebuilt after an error."""

    def __init__(self, server_url: str | None = None) -> None:
        self.server_url = server_url
        self._local = threading.local()

    def _proxy(self) -> xmlrpc.client.ServerProxy:
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = self._local.proxy = supervisor_proxy(self.server_url)
        return proxy

    def _call(self, method: str, *args: Any, name: str = "") -> Any:
        try:
            return getattr(self._proxy().supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            status, code, template = _FAULTS.get(fault.faultCode, (500, "fault", "supervisord: {detail}"))
            raise SupervisorError(status, code, template.format(name=name, detail=fault.faultString)) from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            self._local.proxy = None  # the socket may be half-closed: reconnect next time
            raise SupervisorUnavailable(str(exc) or type(exc).__name__) from None

    def processes(self) -> dict[str, dict[str, Any]]:
        """Program name -> supervisord's process info."""
        return {p["name"]: p for p in self._call("getAllProcessInfo")}

    def info(self, name: str) -> dict[str, Any]:
        return self._call("getProcessInfo", name, name=name)

    def start(self, name: str, wait: bool = True) -> None:
        self._call("startProcess", name, wait, name=name)

    def stop(self, name: str, wait: bool = True) -> None:
        self._call("stopProcess", name, wait, name=name)

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
