"""The Redis control path: `SET service:control:<id> '{"action":"start"}' EX 60`, and operator accounting.

A thread in the panel process polls those keys (one pipelined GETDEL for all
services, twice a second), carries the action out through XML-RPC and records
the outcome in the service's status hash. GETDEL makes pick-up atomic, so a
command runs once even if two panels watch the same Redis.

Whatever is in a control key is hostile until proven otherwise: it is read as
bytes, refused when larger than MAX_COMMAND_BYTES, not UTF-8, nested deeper than
MAX_JSON_DEPTH or not a JSON object, and a command whose `timestamp` is more
than MAX_CLOCK_SKEW_S away from now is refused (the key's TTL bounds one without
a timestamp). Every refusal is logged and recorded as `control_result`. One bad
key never stops the others, nor the watcher: each key is handled on its own, and
the loop survives any exception.

Operator starts and stops (panel page, API, control key) are counted in
service:operator:<id>, so `restarts` in /api/status counts only the process
starts nobody asked for (snapshot.unexpected_restarts).

Besides commands, the watcher sweeps the feeds every SWEEP_S (snapshot.join,
then deadfeeds.DeadFeedMarker marks the keys of a feed that died without a word
stale, even with no browser open) and logs commands left for ids that are not configured.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis

from workers.runtime.config import Config
from workers.runtime.redis_url import is_cluster
from workers.runtime.status import STARTS_KEY, STATUS_KEY, STOPPED_TTL_S
from workers.runtime.timefmt import iso_ms

from .deadfeeds import DeadFeedMarker
from .nodes import NodeSet
from .snapshot import OPERATOR_KEY, join, text
from .supervisor_client import SupervisorClient, SupervisorError
from .values import age_text

log = logging.getLogger(__name__)

CONTROL_KEY = "service:control:{service_id}"
CONTROL_PATTERN = "service:control:*"
ACTIONS = ("start", "stop", "restart")
POLL_S = 0.5
SWEEP_S = 2.0
UNKNOWN_SCAN_S = 10.0
MAX_COMMAND_BYTES = 4096
MAX_JSON_DEPTH = 8
MAX_CLOCK_SKEW_S = 60.0
MAX_UNKNOWN_REMEMBERED = 1000
# supervisord faults after which the process did run (it exited while starting): still an operator start.
_STARTED_CODES = {"spawn_error", "abnormal_termination"}


class Refused(ValueError):
    """A command that is not carried out; the message says why."""


# -- operator accounting -------------------------------------------------------------------------------

# KEYS: operator hash. ARGV: action, process starts counted before the action ('' if unknown), via, ISO time.
_RECORD_LUA = """
local h = KEYS[1]
if ARGV[1] ~= 'stop' then
  local s0 = tonumber(ARGV[2])
  if s0 then
    local base = tonumber(redis.call('HGET', h, 'base') or '')
    local missed = base and (s0 - base - 1) or (s0 - 1)
    if missed > 0 then redis.call('HINCRBY', h, 'crashes', missed) end
    redis.call('HSET', h, 'base', s0)
  end
  redis.call('HINCRBY', h, 'starts', 1)
else
  redis.call('HINCRBY', h, 'stops', 1)
end
redis.call('HSET', h, 'last_action', ARGV[1], 'last_via', ARGV[3], 'last_at', ARGV[4])
return 1
"""


def _process_starts(client: redis.Redis, sid: str) -> str:
    raw = text(client.execute_command("GET", STARTS_KEY.format(service_id=sid), NEVER_DECODE=True))
    return raw if raw.isascii() and raw.isdigit() else "0"


def operator_act(client: redis.Redis, supervisor: SupervisorClient | NodeSet, sid: str, action: str, via: str) -> None:
    """Carry out an operator's start / stop / restart through supervisord (the node that has `sid`) and count
    it as an operator action.

    The count needs Redis; the action does not: with Redis away it is carried out and only logged."""
    try:
        before = _process_starts(client, sid) if action != "stop" else ""
    except redis.RedisError as exc:
        log.warning("operator %s of %s not counted: Redis: %s", action, sid, exc)
        before = None
    try:
        supervisor.act(sid, action)
    except SupervisorError as exc:
        if action != "stop" and exc.code in _STARTED_CODES and before is not None:
            _record_operator(client, sid, action, before, via)
        raise
    if before is not None:
        _record_operator(client, sid, action, before, via)


def _record_operator(client: redis.Redis, sid: str, action: str, before: str, via: str) -> None:
    try:
        client.eval(_RECORD_LUA, 1, OPERATOR_KEY.format(service_id=sid), action, before, via,
                    iso_ms(int(time.time() * 1000)))
    except redis.RedisError as exc:
        log.warning("operator %s of %s not counted: Redis: %s", action, sid, exc)


# -- reading a command ----------------------------------------------------------------------------------

def json_depth(doc: str) -> int:
    """How deeply arrays and objects nest in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in doc:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def command_time(value: Any) -> float:
    """A command's `timestamp` as epoch seconds: ISO-8601 (`2025-10-19T12:00:00Z`; no zone = UTC), or epoch
    seconds / milliseconds as a number. Raises Refused for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Refused(f"timestamp must be ISO-8601 text or epoch seconds, got {type(value).__name__}")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Refused(f"timestamp {value[:40]!r} is not ISO-8601 (e.g. 2025-10-19T12:00:00Z)") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    seconds = float(value)
    if not math.isfinite(seconds):
        raise Refused("timestamp is not a finite number")
    return seconds / 1000 if abs(seconds) > 1e11 else seconds  # milliseconds from 1973 on


def parse_command(raw: bytes, now: float) -> tuple[str, dict[str, Any]]:
    """The action of a control key's value, or Refused with the reason."""
    if len(raw) > MAX_COMMAND_BYTES:
        raise Refused(f"command is {len(raw)} bytes (at most {MAX_COMMAND_BYTES})")
    try:
        doc = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"command is not UTF-8 text: {raw[:40]!r}") from None
    if json_depth(doc) > MAX_JSON_DEPTH:
        raise Refused(f"command nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        cmd = json.loads(doc)
    except (ValueError, RecursionError):
        raise Refused(f'not a JSON object like {{"action": "start"}}: {doc[:80]!r}') from None
    if not isinstance(cmd, dict):
        raise Refused(f'not a JSON object like {{"action": "start"}}: {doc[:80]!r}')
    action = cmd.get("action")
    if "timestamp" in cmd:
        at = command_time(cmd["timestamp"])
        skew = now - at
        if skew > MAX_CLOCK_SKEW_S:
            raise Refused(f"command timestamp {str(cmd['timestamp'])[:40]} is {age_text(skew)} old "
                          f"(commands more than {MAX_CLOCK_SKEW_S:.0f} s old are ignored)")
        if skew < -MAX_CLOCK_SKEW_S:
            raise Refused(f"command timestamp {str(cmd['timestamp'])[:40]} is {age_text(-skew)} in the future "
                          f"(more than {MAX_CLOCK_SKEW_S:.0f} s ahead of the panel's clock)")
    if action not in ACTIONS:
        raise Refused(f"unknown action {str(action)[:40]!r} (allowed: {', '.join(ACTIONS)})")
    return str(action), cmd


class ControlWatcher:
    def __init__(self, config: Config, client: redis.Redis, supervisor: SupervisorClient | NodeSet,
                 marker: DeadFeedMarker | None = None) -> None:
        self.config = config
        self.client = client
        self.supervisor = supervisor
        self.marker = marker or DeadFeedMarker(client)  # the app's (deps.Deps.marker), so both share one memo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-watcher", daemon=True)
        self._unknown_logged: set[bytes] = set()
        self._failing: set[str] = set()  # what has failed, logged once until it works again

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _guarded(self, what: str, fn: Any) -> None:
        """Run one job of the loop; nothing it raises may end the watcher. Failures are logged once per outage."""
        try:
            fn()
        except redis.RedisError as exc:
            if what not in self._failing:
                log.warning("%s: Redis: %s", what, exc)
            self._failing.add(what)
        except Exception:  # noqa: BLE001 - the watcher must outlive any bug or hostile input
            if what not in self._failing:
                log.exception("%s failed; the watcher carries on", what)
            self._failing.add(what)
        else:
            self._failing.discard(what)

    def _run(self) -> None:
        next_sweep = next_scan = 0.0
        while not self._stop.wait(POLL_S):
            self._guarded("control keys", self.poll_once)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + SWEEP_S
                self._guarded("feed sweep", self.sweep)
            if now >= next_scan:
                next_scan = now + UNKNOWN_SCAN_S
                self._guarded("unknown control keys", self.scan_unknown)

    def sweep(self) -> list[str]:
        """Mark the keys of feeds that died without a word; returns the ids marked now."""
        return self.marker.mark(join(self.config, self.client, self.supervisor))

    def poll_once(self) -> list[tuple[str, str]]:
        """Carry out pending commands; returns (service_id, result) pairs."""
        ids = list(self.config.services)
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.execute_command("GETDEL", CONTROL_KEY.format(service_id=sid), NEVER_DECODE=True)
        done = []
        for sid, raw in zip(ids, pipe.execute(raise_on_error=False), strict=True):
            if raw is None:
                continue
            try:
                action, result = self._handle(sid, raw)
                self._record(sid, action, result)
            except redis.RedisError:
                raise
            except Exception:  # noqa: BLE001 - one key's trouble must not block the others
                log.exception("control key of %s could not be handled", sid)
                continue
            done.append((sid, result))
        return done

    def _handle(self, sid: str, raw: Any) -> tuple[str, str]:
        if isinstance(raw, redis.ResponseError):  # not a string (a hash, a list...): drop it, say why
            self.client.delete(CONTROL_KEY.format(service_id=sid))
            result = f"refused: {CONTROL_KEY.format(service_id=sid)} is not a string key ({raw}); removed"
            log.warning("control key: %s -> %s", sid, result)
            return "", result
        return self._execute(sid, raw if isinstance(raw, bytes) else str(raw).encode())

    def _execute(self, sid: str, raw: bytes) -> tuple[str, str]:
        try:
            action, _cmd = parse_command(raw, time.time())
        except Refused as exc:
            result = f"refused: {exc}"
            log.warning("control key: %s -> %s", sid, result)
            return self._action_hint(raw), result
        try:
            operator_act(self.client, self.supervisor, sid, action, "control key")
        except SupervisorError as exc:
            result = f"error: {exc.code}: {exc.message}"
        else:
            result = "ok"
        log.info("control key: %s %s -> %s", action, sid, result)
        return action, result

    @staticmethod
    def _action_hint(raw: bytes) -> str:
        """The action a refused command asked for, when it can be read cheaply and safely."""
        if len(raw) > MAX_COMMAND_BYTES:
            return ""
        doc = raw.decode("utf-8", "replace")
        for action in ACTIONS:
            if f'"{action}"' in doc:
                return action
        return ""

    def _record(self, sid: str, action: str, result: str) -> None:
        key = STATUS_KEY.format(service_id=sid)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping={"control_action": action, "control_result": result[:500],
                                "control_at": iso_ms(int(time.time() * 1000))})
        pipe.ttl(key)
        _, ttl = pipe.execute()
        if ttl == -1:  # we created the hash: give it the lifetime a stopped feed's hash has
            self.client.expire(key, STOPPED_TTL_S)

    def scan_unknown(self) -> list[str]:
        """Log (once per key) commands left for ids that are not configured; they expire with their TTL."""
        configured = {CONTROL_KEY.format(service_id=sid).encode() for sid in self.config.services}
        found: set[bytes] = set()
        cursor: Any = 0
        if is_cluster(self.client):  # SCAN's cursor is per node: redis-py's cluster scan_iter walks every master
            for key in self.client.scan_iter(match=CONTROL_PATTERN, count=1000):
                if (raw := str(key).encode()) not in configured:
                    found.add(raw)
                if len(found) > MAX_UNKNOWN_REMEMBERED:
                    break
            cursor = None
        while cursor is not None:
            cursor, keys = self.client.execute_command("SCAN", cursor, "MATCH", CONTROL_PATTERN, "COUNT", 1000,
                                                       NEVER_DECODE=True)
            found.update(k for k in keys if k not in configured)
            if int(cursor) == 0 or len(found) > MAX_UNKNOWN_REMEMBERED:
                break
        new = sorted(found - self._unknown_logged)
        for key in new:
            sid = key.decode("utf-8", "replace").removeprefix("service:control:")
            log.warning("control key %r names no configured service; ignored (configured: %s)",
                        sid[:80], ", ".join(self.config.services))
        self._unknown_logged = set(sorted(found)[:MAX_UNKNOWN_REMEMBERED])
        return [k.decode("utf-8", "replace") for k in new]
