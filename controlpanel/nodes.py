"""Several supervisord nodes as one: a parallel poll with a per-node timeout, program ownership, routing.

Which node runs a feed is discovered, not configured: each node's getAllProcessInfo. Hosts
often share one supervisord.conf (every feed defined, only some started), so a program
*defined* on several nodes is normal; its owner is, in this order:

1. the node where it is active (RUNNING, STARTING, BACKOFF, STOPPING, FATAL); active on two
   or more is a conflict (two processes of one feed id fight over its keys): the first such
   node in configuration order is shown and controlled, and the status says so;
2. the node where it was last seen active, when that node is down now (its state is unknown,
   not "stopped");
3. the first answering node, in configuration order, that defines it;
4. a down node that may have it (it defined it when it last answered, or never answered):
   unknown again; otherwise no node has it (NO_PROGRAM).

A node that is down costs at most its timeout, in parallel with the others, and never makes
the panel call its feeds dead: `markable` is false for a feed a down node may be running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .node_config import LOCAL, NodesConfig, load_nodes, local_nodes
from .supervisor_client import LOCAL_TIMEOUT_S, SupervisorClient, SupervisorError

ACTIVE_STATES = {"RUNNING", "STARTING", "BACKOFF", "STOPPING", "FATAL"}
WAIT_MARGIN_S = 0.5  # beyond the per-node socket timeout, for thread hand-over

T = TypeVar("T")


@dataclass
class NodeState:
    """One node's answer to one poll."""

    name: str
    url: str
    ok: bool
    error: str = ""
    procs: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "ok": self.ok, "error": self.error,
                "programs": len(self.procs), "elapsed_ms": round(self.elapsed_ms, 1)}


@dataclass
class Owner:
    node: str | None          # None: no node has the program (all answered) or nobody knows (all down)
    proc: dict[str, Any] | None
    node_ok: bool             # the owner answered this poll
    markable: bool            # the panel may call the feed dead (no down node may be running it)
    conflict: list[str] = field(default_factory=list)   # nodes where it is active, when two or more
    defined_on: list[str] = field(default_factory=list)  # answering nodes that define it


@dataclass
class Poll:
    nodes: list[NodeState]
    config_error: str = ""

    @property
    def answered(self) -> list[NodeState]:
        return [n for n in self.nodes if n.ok]

    @property
    def down(self) -> list[NodeState]:
        return [n for n in self.nodes if not n.ok]

    def node(self, name: str | None) -> NodeState | None:
        return next((n for n in self.nodes if n.name == name), None)


class NodeSet:
    """The panel's supervisord nodes; quacks like a SupervisorClient (act, info, tail_log, processes)."""

    def __init__(self, config: NodesConfig) -> None:
        self.config = config
        self.clients = [SupervisorClient(node=n, timeout=config.timeout) for n in config.nodes]
        self.timeout = config.timeout
        self._lock = threading.Lock()
        self._last_active: dict[str, str] = {}        # program -> node it was last seen active on
        self._inventory: dict[str, set[str]] = {}     # node -> programs it defined when it last answered
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def single(cls, client: SupervisorClient) -> NodeSet:
        nodes = cls(NodesConfig(nodes=(), timeout=client.timeout))
        nodes.clients = [client]
        return nodes

    @classmethod
    def build(cls, nodes_file: str, server_url: str | None) -> NodeSet:
        """From LTP_PANEL_NODES's file, else the one local node (today's panel)."""
        if nodes_file:
            return cls(load_nodes(nodes_file))
        local = SupervisorClient(server_url, timeout=LOCAL_TIMEOUT_S)
        return cls(local_nodes(local.server_url, LOCAL_TIMEOUT_S))

    @property
    def multi(self) -> bool:
        return len(self.clients) > 1

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.clients]

    # -- polling -------------------------------------------------------------------------------------

    def _ask(self, client: SupervisorClient) -> NodeState:
        t0 = time.perf_counter()
        try:
            procs = client.processes()
        except SupervisorError as exc:
            return NodeState(client.name, client.server_url, False, exc.message, elapsed_ms=(time.perf_counter() - t0) * 1000)
        return NodeState(client.name, client.server_url, True, procs=procs, elapsed_ms=(time.perf_counter() - t0) * 1000)

    def _parallel(self, fn: Callable[[SupervisorClient], T], fallback: Callable[[SupervisorClient], T]) -> list[T]:
        """fn on every node at once; a node past its timeout gets `fallback` (its thread ends at its socket timeout)."""
        if len(self.clients) == 1:
            return [fn(self.clients[0])]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2 * len(self.clients) + 2, thread_name_prefix="node-poll")
            pool = self._pool
        futures: list[Future[T]] = [pool.submit(fn, c) for c in self.clients]
        wait_futures(futures, timeout=self.timeout + WAIT_MARGIN_S)
        return [f.result() if f.done() else fallback(c) for f, c in zip(futures, self.clients, strict=True)]

    def poll(self) -> Poll:
        if self.config.error:
            return Poll([], config_error=self.config.error)
        states = self._parallel(self._ask, lambda c: NodeState(c.name, c.server_url, False,
                                                               f"supervisord is not reachable: no answer within {self.timeout:g} s"))
        with self._lock:
            for st in states:
                if st.ok:
                    self._inventory[st.name] = set(st.procs)
                    for prog, info in st.procs.items():
                        if info.get("statename") in ACTIVE_STATES:
                            self._last_active[prog] = st.name
        return Poll(states)

    def owner(self, poll: Poll, program: str) -> Owner:
        answered, down = poll.answered, poll.down
        defined = [n.name for n in answered if program in n.procs]
        active = [n for n in answered if n.procs.get(program, {}).get("statename") in ACTIVE_STATES]
        with self._lock:
            last = self._last_active.get(program)
            # A down node may run it unless it answered before without defining it.
            maybe_there = [n.name for n in down if program in self._inventory.get(n.name, {program})]
        conflict = [n.name for n in active] if len(active) > 1 else []
        if active:
            return Owner(active[0].name, active[0].procs[program], True, True, conflict, defined)
        if last is not None and last in maybe_there:
            return Owner(last, None, False, False, [], defined)
        if defined:
            node = poll.node(defined[0])
            return Owner(defined[0], node.procs[program] if node else None, True, not maybe_there, [], defined)
        if maybe_there:
            return Owner(maybe_there[0], None, False, False, [], [])
        # No node has it (any down node answered before without it): NO_PROGRAM, unless none answers now.
        return Owner(None, None, bool(answered), bool(answered), [], [])

    def known_programs(self, node: str) -> set[str]:
        """The programs `node` defined when it last answered (empty if it never did)."""
        with self._lock:
            return set(self._inventory.get(node, ()))

    # -- SupervisorClient's interface, routed ------------------------------------------------------------

    def processes(self) -> dict[str, dict[str, Any]]:
        """Every program of every answering node (owner's info for a program on several), tagged `node`."""
        poll = self.poll()
        if not poll.answered:
            raise self._unavailable(poll, "")
        out: dict[str, dict[str, Any]] = {}
        for st in poll.answered:
            for prog in st.procs:
                if prog not in out:
                    o = self.owner(poll, prog)
                    if o.proc is not None:
                        out[prog] = {**o.proc, "node": o.node}
        return out

    def _unavailable(self, poll: Poll, program: str) -> SupervisorError:
        if poll.config_error:
            return SupervisorError(503, "supervisor_unavailable", f"node configuration unusable: {poll.config_error}")
        if not self.multi:
            return SupervisorError(503, "supervisor_unavailable", poll.nodes[0].error)
        down = "; ".join(f"node {n.name} ({n.url}): {n.error}" for n in poll.down)
        what = f"no reachable supervisord node has a program named {program!r}" if program else "no supervisord node answered"
        return SupervisorError(503, "supervisor_unavailable", f"{what}; down: {down}")

    def client_for(self, program: str) -> SupervisorClient:
        """The node that has `program`; raises SupervisorError (404 none has it, 503 its node is down)."""
        if self.config.error:
            raise self._unavailable(Poll([], config_error=self.config.error), program)
        if not self.multi:
            return self.clients[0]
        poll = self.poll()
        o = self.owner(poll, program)
        if o.node is not None and o.node_ok:
            return next(c for c in self.clients if c.name == o.node)
        st = poll.node(o.node)
        if st is not None:
            raise SupervisorError(503, "supervisor_unavailable", f"{program} is on node {st.name} ({st.url}), "
                                                                 f"which is down: {st.error}")
        if poll.down:
            raise self._unavailable(poll, program)
        raise SupervisorError(404, "bad_name", f"no supervisord node has a program named {program!r} "
                                               f"(nodes: {', '.join(self.names)})")

    def _routed(self, program: str, fn: Callable[[SupervisorClient], T]) -> T:
        client = self.client_for(program)
        try:
            return fn(client)
        except SupervisorError as exc:
            if self.multi:
                exc.message = f"{exc.message} (node {client.name})"
                exc.args = (exc.message,)
            raise

    def act(self, name: str, action: str) -> None:
        self._routed(name, lambda c: c.act(name, action))

    def info(self, name: str) -> dict[str, Any]:
        return self._routed(name, lambda c: {**c.info(name), "node": c.name})

    def tail_log(self, name: str, nbytes: int) -> str:
        return self._routed(name, lambda c: c.tail_log(name, nbytes))


__all__ = ["LOCAL", "NodeSet", "NodeState", "Owner", "Poll"]
