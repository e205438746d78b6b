"""The Redis control path: `SET service:control:<id> '{"action":"start"}' EX 60`.

A thread in the panel process polls those keys (one pipelined GETDEL for all
services, twice a second), carries the action out through XML-RPC and records
the outcome in the service's status hash. GETDEL makes pick-up atomic, so a
command runs once even if two panels watch the same Redis.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis

from workers.runtime.config import Config
from workers.runtime.status import STATUS_KEY, STOPPED_TTL_S
from workers.runtime.timefmt import iso_ms

from .supervisor_client import SupervisorClient, SupervisorError

log = logging.getLogger(__name__)

CONTROL_KEY = "service:control:{service_id}"
ACTIONS = ("start", "stop", "restart")
POLL_S = 0.5


class ControlWatcher:
    def __init__(self, config: Config, client: redis.Redis, supervisor: SupervisorClient) -> None:
        self.config = config
        self.client = client
        self.supervisor = supervisor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(POLL_S):
            try:
                self.poll_once()
                failing = False
            except redis.RedisError as exc:
                if not failing:  # say it once per outage, not twice a second
                    log.warning("control keys unreadable: %s", exc)
                failing = True

    def poll_once(self) -> list[tuple[str, str]]:
        """Carry out pending commands; returns (service_id, result) pairs."""
        ids = list(self.config.services)
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.getdel(CONTROL_KEY.format(service_id=sid))
        done = []
        for sid, raw in zip(ids, pipe.execute(), strict=True):
            if raw is not None:
                action, result = self._execute(sid, raw)
                self._record(sid, action, result)
                done.append((sid, result))
        return done

    def _execute(self, sid: str, raw: str) -> tuple[str, str]:
        try:
            action = json.loads(raw).get("action")
        except (ValueError, AttributeError):
            return "", f"error: not a JSON object like {{\"action\": \"start\"}}: {raw[:80]!r}"
        if action not in ACTIONS:
            return str(action)[:20], f"error: unknown action {action!r} (allowed: {', '.join(ACTIONS)})"
        try:
            self.supervisor.act(sid, action)
        except SupervisorError as exc:
            result = f"error: {exc.code}: {exc.message}"
        else:
            result = "ok"
        log.info("control key: %s %s -> %s", action, sid, result)
        return action, result

    def _record(self, sid: str, action: str, result: str) -> None:
        key = STATUS_KEY.format(service_id=sid)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping={"control_action": action, "control_result": result,
                                "control_at": iso_ms(int(time.time() * 1000))})
        pipe.ttl(key)
        _, ttl = pipe.execute()
        if ttl == -1:  # we created the hash: give it the lifetime a stopped feed's hash has
            self.client.expire(key, STOPPED_TTL_S)
