"""The sink's writing connections: packed commands sent without waiting, replies read when they are there.

`Wire` is one connection (a single Redis, or the master a Sentinel names). `ClusterWire` is one
`Wire` per Redis Cluster master: each command goes to the master owning its key's slot, so a batch
costs one send per master. Replies are read through a hiredis Reader; an error reply is handed to
`on_error` (the sink rewrites every key's full state: the reply does not say which write failed).
A MOVED/ASK/CLUSTERDOWN reply, or a master that went away, makes the cluster wire re-read the
slot map before its next send.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from .redis_url import ClusterClient

SOCKET_TIMEOUT_S = 5
MAX_UNREAD_REPLIES = 20_000  # replies outstanding before a send waits for Redis to catch up

ErrorHandler = Callable[[str], None]

# Commands are packed by hiredis (C) and sent as one buffer: redis-py's Pipeline costs ~3x the CPU
# per key. hiredis's stub types the argument as a one-element tuple; it takes any number of arguments.
pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


def kernel_timeouts(sock: socket.socket | None, seconds: int) -> None:
    """Blocking socket with kernel send/receive timeouts.

    A Python-level timeout makes every recv a poll()+recv pair (measured: ~15 µs more CPU
    per batch); SO_RCVTIMEO/SO_SNDTIMEO still turn a hung Redis into an error (EAGAIN).
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return
    sock.settimeout(None)
    tv = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def _recv_nowait(sock: socket.socket) -> bytes:
    """What has arrived, without waiting (BlockingIOError if nothing). A TLS socket takes no recv
    flags: it is switched to non-blocking for the one read (the kernel timeouts stay set)."""
    if not isinstance(sock, ssl.SSLSocket):
        return sock.recv(65536, socket.MSG_DONTWAIT)
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError from None
    finally:
        sock.setblocking(True)


class Wire:
    """One writing connection, taken from a redis-py pool (which knows TLS, AUTH, SELECT, Sentinel)."""

    def __init__(self, pool: redis.ConnectionPool, on_error: ErrorHandler) -> None:
        self._pool = pool
        self._on_error = on_error
        self._conn: Any = None  # redis.connection.AbstractConnection
        self._sock: socket.socket | None = None  # the tuned socket of the current connection
        self._reader = hiredis.Reader()
        self._unread = 0  # replies sent for but not yet read
        self._answered_at = 0.0  # when Redis last answered, or the first unanswered batch was sent

    def send(self, cmds: list[bytes]) -> None:
        """Send a batch without waiting for its replies; a dropped connection raises ConnectionError.

        Replies are read when they have arrived, at the next send (a non-blocking read): waiting
        for them would park this thread once per batch, and on these machines a wake-up costs more
        CPU than writing ten keys. Nothing is lost by not waiting: after any error every key's full
        last state is rewritten. A slow Redis stalls a send only once MAX_UNREAD_REPLIES are
        outstanding; one that has answered nothing for SOCKET_TIMEOUT_S is waited for once more,
        then treated as down."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._pool.get_connection()
        try:
            if conn._sock is None:
                conn.connect()
            sock = conn._sock
            if sock is None:
                raise redis.ConnectionError("no socket after connect()")
            if sock is not self._sock:  # a new socket after every (re)connect
                kernel_timeouts(sock, SOCKET_TIMEOUT_S)
                self._sock, self._reader, self._unread = sock, hiredis.Reader(), 0
            if self._unread:
                if time.monotonic() - self._answered_at > SOCKET_TIMEOUT_S:
                    # Redis has answered nothing for a while: hung, not slow. One more reply within
                    # the socket timeout, or this raises and the writer thread takes over.
                    self._read(sock, True, self._unread - 1)
                else:
                    wait = self._unread > MAX_UNREAD_REPLIES
                    self._read(sock, wait, MAX_UNREAD_REPLIES // 2 if wait else 0)
            else:
                self._answered_at = time.monotonic()
            sock.sendall(cmds[0] if len(cmds) == 1 else b"".join(cmds))
            self._unread += len(cmds)
        except (redis.RedisError, OSError) as exc:
            self.drop()
            raise redis.ConnectionError(str(exc) or type(exc).__name__) from None

    def read_ready(self) -> None:
        """Read the replies that have arrived (an idle feed's error replies are seen too)."""
        if self._sock is None or not self._unread:
            return
        try:
            self._read(self._sock, False)
        except (redis.RedisError, OSError):
            pass  # the next send finds the broken connection and reports it

    def settle(self) -> None:
        """Wait for every outstanding reply (before exit: closing with unread replies resets the connection)."""
        if self._sock is not None and self._unread:
            self._read(self._sock, True)

    @property
    def unread(self) -> int:
        return self._unread

    def drop(self) -> None:
        """Close the connection; the next send opens a new one (to the current master, under Sentinel)."""
        if self._conn is not None:
            self._conn.disconnect()
        self._sock = None

    def _read(self, sock: socket.socket, wait: bool, down_to: int = 0) -> None:
        """Replies into a hiredis Reader (redis-py's per-reply path costs ~2 µs each): those already
        here, or with `wait` until at most `down_to` are outstanding. An error reply (e.g. WRONGTYPE)
        goes to on_error: the data is wrong, the link is fine."""
        reader = self._reader
        while self._unread > down_to:
            try:
                data = sock.recv(65536) if wait else _recv_nowait(sock)
            except BlockingIOError:
                if wait:
                    raise redis.TimeoutError(f"Redis did not answer within {SOCKET_TIMEOUT_S} s") from None
                return
            if not data:
                raise redis.ConnectionError("Redis closed the connection")
            reader.feed(data)
            self._answered_at = time.monotonic()
            while (reply := reader.gets()) is not False:
                self._unread -= 1
                if isinstance(reply, hiredis.ReplyError):
                    self._on_error(str(reply))


_HEAD = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n\$(\d+)\r\n")


def command_key(cmd: bytes) -> bytes:
    """The key a packed command routes by: its first argument (EVAL/EVALSHA: the first key).

    Packed form: `*<n>\\r\\n$<len>\\r\\n<NAME>\\r\\n$<len>\\r\\n<arg>\\r\\n...`."""
    head = _HEAD.match(cmd)
    if head is None:
        raise ValueError(f"not a packed command: {cmd[:40]!r}")
    start = head.end()
    if head.group(1).upper() not in (b"EVAL", b"EVALSHA"):
        return cmd[start:start + int(head.group(2))]
    pos = start + int(head.group(2)) + 2  # past the script: numkeys, then the first key
    for _ in range(2):
        end = cmd.index(b"\r\n", pos)
        size = int(cmd[pos + 1:end])
        arg, pos = cmd[end + 2:end + 2 + size], end + 4 + size
    return arg


_REROUTE = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN")


class ClusterWire:
    """One Wire per master of a Redis Cluster (redis-py's RedisCluster keeps the slot map).

    Commands are grouped by the master that owns their key's slot, in order within each master:
    a key's HSET and HDEL of the same batch still arrive in order. PUBLISH routes by its channel,
    which is the key's name; classic PUBLISH reaches subscribers on every node."""

    def __init__(self, client: ClusterClient, on_error: ErrorHandler) -> None:
        self._client = client  # builds the RedisCluster when a node first answers
        self._on_error = on_error
        self._wires: dict[str, Wire] = {}  # node name "host:port" -> its wire
        self._slot_node: dict[int, str] = {}  # cache of the cluster's slot map
        self._key_wire: dict[bytes, Wire] = {}  # key -> its master's wire (bounded by the instruments)
        self._refresh = False

    def _error(self, message: str) -> None:
        if message.startswith(_REROUTE):
            self._refresh = True  # the slot map moved (resharding, failover): re-read it before the next send
        self._on_error(message)

    def _node_wire(self, slot: int) -> Wire:
        name = self._slot_node.get(slot)
        if name is None or name not in self._wires:
            cluster = self._client.cluster
            node = cluster.nodes_manager.get_node_from_slot(slot)
            name = self._slot_node[slot] = node.name
            if name not in self._wires:
                conn = cluster.get_redis_connection(node)
                self._wires[name] = Wire(conn.connection_pool, self._error)
        return self._wires[name]

    def send(self, cmds: list[bytes]) -> None:
        if self._refresh:
            self._refresh = False
            self._slot_node.clear()
            self._key_wire.clear()
            for wire in self._wires.values():
                wire.read_ready()
            try:
                self._client.cluster.nodes_manager.initialize()
            except (redis.RedisError, RedisClusterException, OSError) as exc:
                self._refresh = True
                raise redis.ConnectionError(f"could not read the cluster's slot map: {exc}") from None
        groups: dict[int, list[bytes]] = {}
        wires: dict[int, Wire] = {}
        key_wire = self._key_wire
        try:
            for cmd in cmds:
                key = command_key(cmd)
                found = key_wire.get(key)
                wire = found if found is not None else key_wire.setdefault(key, self._node_wire(key_slot(key)))
                group = groups.get(id(wire))
                if group is None:
                    group = groups[id(wire)] = []
                    wires[id(wire)] = wire
                group.append(cmd)
            for ident, group in groups.items():
                wires[ident].send(group)
        except (redis.RedisError, RedisClusterException, OSError) as exc:
            self._refresh = True  # a master went away: a replica may have taken its slots
            raise redis.ConnectionError(str(exc) or type(exc).__name__) from None

    def read_ready(self) -> None:
        for wire in list(self._wires.values()):
            wire.read_ready()

    def settle(self) -> None:
        for wire in list(self._wires.values()):
            wire.settle()

    @property
    def unread(self) -> int:
        return sum(w.unread for w in self._wires.values())

    def drop(self) -> None:
        for wire in self._wires.values():
            wire.drop()
        self._refresh = True
