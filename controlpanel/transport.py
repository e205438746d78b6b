"""XML-RPC to one supervisord node with a timeout on every socket operation.

supervisor's own transport (workers/runtime/supervisor_rpc.py) has no timeout: an unreachable
http node, or a hung supervisord, would hold a panel thread (and /api/status) forever. Here each
call opens its own connection with `timeout` seconds for the connect and for every read or
write, and closes it after the answer: no half-closed keep-alive socket survives an error.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import xmlrpc.client
from urllib.parse import urlsplit

from .node_config import NodeConfig


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # the Host header; the socket is `path`
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class NodeTransport(xmlrpc.client.Transport):
    def __init__(self, node: NodeConfig, timeout: float) -> None:
        headers: list[tuple[str, str]] = []
        if node.username:
            token = base64.b64encode(f"{node.username}:{node.password}".encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {token}"))
        super().__init__(headers=headers)
        self.node = node
        self.timeout = timeout

    def make_connection(self, host: tuple[str, dict[str, str]] | str) -> http.client.HTTPConnection:
        if self._connection[1] is not None:
            return self._connection[1]
        node = self.node
        conn: http.client.HTTPConnection
        if node.scheme == "unix":
            conn = _UnixHTTPConnection(node.url.removeprefix("unix://"), self.timeout)
        else:
            parts = urlsplit(node.url)
            host_name, port = parts.hostname or "", parts.port
            if node.scheme == "https":
                context = ssl.create_default_context(cafile=node.ca_file or None)
                conn = http.client.HTTPSConnection(host_name, port, timeout=self.timeout, context=context)
            else:
                conn = http.client.HTTPConnection(host_name, port, timeout=self.timeout)
        self._connection = (host, conn)
        return conn


def node_proxy(node: NodeConfig, timeout: float) -> xmlrpc.client.ServerProxy:
    """A proxy for one call (use it in a `with`: that closes its connection)."""
    handler = "/RPC2"
    return xmlrpc.client.ServerProxy(f"http://{node.name}{handler}", transport=NodeTransport(node, timeout))
