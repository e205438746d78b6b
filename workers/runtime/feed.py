"""Entry point shared by every feed program: config, logging, signals, lifecycle.

`python -m workers <feed_id>` looks the feed's builder up in the registry and calls
run_feed(feed_id, builder); the builder returns the feed's sources for its config.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

import yaml

from workers import registry

from .config import DEFAULT_CONFIG_PATH, DEFAULT_REDIS_URL, ROOT, Config, ConfigError, ServiceConfig, load_config
from .heap import HeapTrimmer
from .model import Update
from .redis_url import SCHEMES as REDIS_URL_SCHEMES
from .redis_url import redact, scheme_of
from .sink import RedisSink
from .stats import SUBSCRIBED, FeedStats
from .status import StatusReporter, report_config_error
from .timefmt import now_ms
from .ws import WsConnection, WsStream

if TYPE_CHECKING:
    from .rest import Rest

STOP_BUDGET_S = 1.8  # supervisord's stop is answered within 2 s
# supervisord counts a start as failed only if the process exits within `startsecs` (2 s) of its
# spawn; a configuration error must be reported and exited before that, with a margin for the reap.
QUICK_EXIT_S = 1.6


class Source(Protocol):
    """Something that produces updates on its own threads (a WebSocket, a REST poller)."""

    # True: the source decides the symbol set (discovery) and reconciles Redis with it at each
    # discovery; False: run_feed reconciles Redis with the configured symbols at start.
    discovers_symbols: bool

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float) -> None: ...


class FeedContext:
    """What a feed's builder gets: its config and the shared runtime pieces."""

    def __init__(self, config: Config, service: ServiceConfig, stats: FeedStats, sink: RedisSink) -> None:
        self.config = config
        self.service = service
        self.stats = stats
        self.sink = sink
        self.log = logging.getLogger(service.service_id)

    def connection(self, stream: WsStream, *, start_delay: float = 0.0) -> WsConnection:
        """One WebSocket connection of this feed, with its configured silence and data windows; its first connect
        waits `start_delay` seconds (spacing a feed's connections under an exchange's connections-per-second limit)."""
        svc = self.service
        return WsConnection(stream, self.sink, self.stats, silence_timeout=svc.silence_timeout, data_timeout=svc.data_timeout,
                            max_connection_age=svc.max_connection_age, start_delay=start_delay)

    def discovered(self, discover: Callable[[Rest], Sequence[str]], connections: Callable[[list[str]], Sequence[Source]]) -> Source:
        """Symbols found over REST every `discovery_interval` (`discover`), followed on the connections
        `connections` makes for them; rebuilt when the set changes, keys of symbols that left removed."""
        from .discovery import DiscoveredWsFeed
        from .rest import Rest

        return DiscoveredWsFeed(self, lambda session: discover(Rest(session)), connections, self.service.discovery_interval)

    def poller(self, name: str, poll: Callable[[Rest], None], interval: float, *, backoff_max: float = 60.0) -> Source:
        """`poll` every `interval` seconds on a thread of its own; errors back off from 1 s to `backoff_max`."""
        from .backoff import Backoff
        from .poll import RestPoller
        from .rest import Rest

        return RestPoller(name, lambda session: poll(Rest(session)), interval, self.stats, backoff=Backoff(1.0, backoff_max))

    def deliver(self, updates: Sequence[Update], recv_ms: int | None = None) -> None:
        """Write a REST poll's updates now, on the caller's thread, and count them like socket frames."""
        if not updates:
            return
        recv_ms = recv_ms if recv_ms is not None else now_ms()
        self.sink.stage(list(updates), recv_ms)
        self.sink.flush()
        self.stats.messages_total += len(updates)
        self.stats.last_message_at = recv_ms / 1000
        self.stats.state = SUBSCRIBED

    def accept_listed(self, wanted: Iterable[str], listed: Collection[str], what: str) -> list[str]:
        """The wanted symbols the exchange lists; each other one is reported once (stats.reject), never subscribed."""
        ok = [sym for sym in wanted if sym in listed]
        self.report_selection(ok, {sym: f"not a {what}" for sym in wanted if sym not in listed})
        return ok

    def report_selection(self, accepted: Iterable[str], refused: Mapping[str, str]) -> None:
        """After a discovery round: accepted symbols leave the status hash's `rejected`; each refused one is
        reported once with its reason, never subscribed (one log line per reason, not one per symbol)."""
        for sym in accepted:
            self.stats.rejected.pop(sym, None)
        by_reason: dict[str, list[str]] = {}
        for sym, reason in refused.items():
            by_reason.setdefault(reason, []).append(sym)
        for reason, symbols in by_reason.items():
            self.stats.reject_many(symbols, f"{reason}; not subscribed")


SourceBuilder = Callable[[FeedContext], Sequence[Source]]


def setup_logging(service_id: str) -> None:
    logging.basicConfig(
        level=os.environ.get("LTP_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s {service_id} %(name)s: %(message)s",
        stream=sys.stdout,
    )
    logging.Formatter.converter = time.gmtime
    # websocket-client logs every disconnect as an error of its own; ours is clearer.
    logging.getLogger("websocket").setLevel(logging.CRITICAL)


def run_feed(service_id: str, build_sources: SourceBuilder) -> None:
    """Run one feed until SIGTERM/SIGINT, then stop cleanly and exit 0."""
    setup_logging(service_id)
    log = logging.getLogger(service_id)
    config, service = _load_config_or_exit(service_id)
    die_with_parent(log)
    _single_instance(service_id, log)
    parent = os.getppid()

    stats = FeedStats(service_id, service.symbols, log)
    sink = RedisSink(
        config.redis_url, service.redis_prefix, stats,
        publish=config.publish, history_len=config.history_len,
    )
    stop = _stop_on_signals(log)
    try:
        sources = list(build_sources(FeedContext(config, service, stats, sink)))
    except ConfigError as exc:
        _config_error(service_id, exc, config.redis_url, service.redis_prefix)
    status = StatusReporter(config.redis_url, stats, sink, stale_after=service.stale_after)
    log.info(
        "starting %s: %d source(s), %d symbol(s), prefix %r, Redis %s",
        service_id, len(sources), len(stats.symbols), service.redis_prefix, redact(config.redis_url),
    )
    if not service.enabled:
        log.warning("%s is disabled in %s but was started by hand; running anyway", service_id, config.path)
    # Redis as this process finds it: keys no longer configured removed, keys left from the previous
    # run marked stale until rewritten. Feeds that discover their set reconcile at each discovery.
    discovers = any(src.discovers_symbols for src in sources)
    sink.reconcile(None if discovers else service.symbols)
    sink.start()
    status.start()  # its first publish happens on its own thread: start does not wait for Redis
    for src in sources:
        src.start()
    _wait_for_stop(stop, parent, log)
    _stop_and_exit(sources, sink, status, stats, log)


def _load_config_or_exit(service_id: str) -> tuple[Config, ServiceConfig]:
    """The configuration and this feed's service in it; a bad one is reported and the process exits 2."""
    try:
        config = load_config(checked=[registry.exchange_of(service_id) or ""])  # its own exchange's feeds; not every module
        return config, config.service(service_id)
    except ConfigError as exc:
        _config_error(service_id, exc, *_hints_of_unchecked_config(service_id))


def _stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _wait_for_stop(stop: threading.Event, parent: int, log: logging.Logger) -> None:
    """The main thread's loop while the sources run: heap trimming, and an eye on the parent process."""
    trimmer = HeapTrimmer(time.monotonic())
    while not stop.wait(0.5):
        trimmer.tick(time.monotonic())
        if os.getppid() != parent:  # the supervisor died (PR_SET_PDEATHSIG covers Linux; this, the rest)
            log.error("parent process %d (supervisord) is gone; stopping", parent)
            break


def _stop_and_exit(sources: Sequence[Source], sink: RedisSink, status: StatusReporter, stats: FeedStats,
                   log: logging.Logger) -> NoReturn:
    """Stop within STOP_BUDGET_S: sources, then the sink's last writes, then the `stopped` marks; exit 0."""
    deadline = time.monotonic() + STOP_BUDGET_S
    status.halt()  # no liveness marks from here on: the last one is `stopped`
    for src in sources:
        src.stop()
    for src in sources:
        src.join(max(0.0, deadline - time.monotonic() - 0.8))
    sink.close(max(0.1, deadline - time.monotonic() - 0.3))

    def final_writes() -> None:
        if sink.connected:
            sink.mark_prefix_stale("stopped")  # every key of the prefix: nothing writes them any more
        status.stop()

    # A hung Redis (accepts, never answers) must not hold the exit past the budget.
    last = threading.Thread(target=final_writes, name="final-writes", daemon=True)
    last.start()
    last.join(max(0.2, deadline - time.monotonic()))
    if last.is_alive():
        log.warning("Redis did not take the final writes within the stop budget; exiting without them")
    log.info("stopped after %d messages", stats.messages_total)
    logging.shutdown()
    os._exit(0)  # daemon threads blocked in a socket call must not delay the exit


PR_SET_PDEATHSIG = 1
_lock_fd: int | None = None  # held for the process's lifetime: the single-instance lock


def die_with_parent(log: logging.Logger) -> None:
    """SIGTERM this process when its parent (supervisord) dies, even by `kill -9`: no orphan feeds
    under pid 1 writing the same keys as the next supervisord's, no orphan panel holding its port.
    Linux only; elsewhere a feed's main loop checks its parent pid every 0.5 s."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)


def lock_path(service_id: str) -> Path:
    return Path(os.environ.get("LTP_VAR") or ROOT / "var") / "locks" / f"{service_id}.lock"


def _single_instance(service_id: str, log: logging.Logger) -> None:
    """Refuse to run a second instance of a feed on this host: an exclusive `flock` on
    `$LTP_VAR/locks/<feed>.lock`, held until the process ends (the kernel drops it, even on kill -9).
    The file holds the owner's pid, named in the refusal."""
    global _lock_fd
    path = lock_path(service_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        log.warning("no single-instance lock (%s: %s); running without it", path, exc.strerror or exc)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        except OSError:
            holder = "unknown"
        log.error("another instance of %s is already running (pid %s holds %s); refusing to start",
                  service_id, holder, path)
        logging.shutdown()
        os._exit(3)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _lock_fd = fd


def _config_error(service_id: str, exc: ConfigError, redis_url: str, prefix: str | None) -> NoReturn:
    """Refuse to start: the message in the log and in the status hash (`state=config_error`), the
    feed's keys marked stale, exit 2.

    Exiting within supervisord's `startsecs` makes each attempt a failed start, so after
    `startretries` the program stays FATAL instead of being retried forever; the Redis report
    gets only the time left for that. On a machine so loaded that the error is found after that
    (supervisord would count the start as good and restart with a fresh retry budget), the feed
    asks supervisord to stop it instead: the program ends STOPPED, not retried either."""
    log = logging.getLogger(service_id)
    log.error("%s", exc)
    reporter = threading.Thread(target=report_config_error, args=(redis_url, service_id, str(exc), prefix), daemon=True)
    reporter.start()
    age = _process_age()
    if age < QUICK_EXIT_S:
        reporter.join(QUICK_EXIT_S - age)
    else:
        reporter.join(3.0)
        _stop_through_supervisord(log, age)
    logging.shutdown()
    os._exit(2)  # at once: no interpreter teardown eating into startsecs


def _process_age() -> float:
    """Seconds since this process was spawned (Linux /proc); 0.0 where that can't be read."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def _stop_through_supervisord(log: logging.Logger, age: float) -> None:
    """Ask supervisord (the server it told this process about) to stop this program; wait for its SIGTERM."""
    name, url = os.environ.get("SUPERVISOR_PROCESS_NAME"), os.environ.get("SUPERVISOR_SERVER_URL")
    if not name or not url:
        return
    log.error("the error was found %.1fs after start, too late for supervisord to count a failed start; "
              "asking it to stop %s so that it is not restarted", age, name)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # supervisord's SIGTERM ends the process
    try:
        from .supervisor_rpc import supervisor_proxy

        supervisor_proxy(url).supervisor.stopProcess(name, False)
    except Exception as exc:  # noqa: BLE001 - supervisord unreachable or refusing: exit and let it retry
        log.warning("could not ask supervisord to stop %s: %s", name, exc)
        return
    time.sleep(5)


def _hints_of_unchecked_config(service_id: str) -> tuple[str, str | None]:
    """Where to report a configuration that did not validate: REDIS_URL, else the file's `redis.url`
    if it reads as one, else the default; and the service's `redis_prefix` if the file names one."""
    url = os.environ.get("REDIS_URL") or ""
    prefix = None
    try:
        data = yaml.safe_load(Path(os.environ.get("LTP_CONFIG") or DEFAULT_CONFIG_PATH).read_text())
        raw_url = data.get("redis", {}).get("url")
        if not url and isinstance(raw_url, str) and scheme_of(raw_url) in REDIS_URL_SCHEMES:
            url = raw_url
        for ex in (data.get("exchanges") or {}).values():
            svc = ((ex or {}).get("services") or {}).get(service_id)
            if isinstance(svc, dict) and isinstance(svc.get("redis_prefix"), str) and svc["redis_prefix"]:
                prefix = svc["redis_prefix"]
    except Exception:  # noqa: BLE001 - a file too broken to read has no hints; the defaults stand
        pass
    return url or DEFAULT_REDIS_URL, prefix

