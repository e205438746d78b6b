"""Real servers for tests: a private redis-server, a private supervisord, the simulator.

Nothing here touches a server the tests did not start: every port is picked
free, every socket and log lives in a temp dir.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.sim.demo import point_at_simulator
from workers.runtime.supervisor_rpc import supervisor_proxy

ROOT = Path(__file__).resolve().parents[1]


# Ports handed to servers the tests start come from below Linux's ephemeral range (32768-60999), so no
# outgoing connection's source port can take one between free_port() and the server's bind; under
# pytest-xdist each worker draws from its own slice, so two workers never pick the same port.
PORT_RANGE = (20000, 32000)


def _port_slice() -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest-xdist
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    index = int(worker[2:]) if worker.startswith("gw") else 0
    size = (PORT_RANGE[1] - PORT_RANGE[0]) // max(count, 1)
    return PORT_RANGE[0] + index * size, PORT_RANGE[0] + (index + 1) * size


_PORT_SLICE = _port_slice()
# A random start: two pytest runs at once (two worktrees) rarely walk the same ports in step.
_next_port = itertools.count(random.randrange(_PORT_SLICE[1] - _PORT_SLICE[0]))


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on; one process walks its whole slice before it hands a port out
    again (a test may rely on a port staying closed)."""
    lo, hi = _PORT_SLICE
    for _ in range(hi - lo):
        port = lo + next(_next_port) % (hi - lo)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; return its value or raise with what was last seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling through transient errors
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="ltp-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.client().ping(), 10)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def sim_config(redis_url: str, sim_port: int, *, enabled: bool = False, overrides: dict | None = None,
               tls: bool = False) -> dict:
    """exchanges.yaml with every endpoint pointed at the simulator; services enabled or not.

    tls: wss:// and https:// URLs, for a simulator started with an ssl_context (`TlsCerts`)."""
    data = yaml.safe_load((ROOT / "exchanges.yaml").read_text())
    data["redis"]["url"] = redis_url
    point_at_simulator(data, sim_port, tls=tls)
    for ex in data["exchanges"].values():
        for svc in ex.get("services", {}).values():
            svc["enabled"] = enabled
    for service_id, values in (overrides or {}).items():
        for ex in data["exchanges"].values():
            if service_id in ex.get("services", {}):
                ex["services"][service_id].update(values)
    return data


class Supervisor:
    """A private supervisord running the repo's supervisord.conf with temp logs and socket."""

    def __init__(self, config: dict, redis_url: str, env: dict[str, str] | None = None, root: Path = ROOT) -> None:
        self.root = root  # the tree whose supervisord.conf and programs run (a copy, in the toy-exchange test)
        self.dir = Path(tempfile.mkdtemp(prefix="ltp-sv-"))
        (self.dir / "logs").mkdir()
        (self.dir / "var").mkdir()
        self.config_path = self.dir / "exchanges.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        conf = (root / "supervisord.conf").read_text()
        conf = conf.replace("%(here)s/logs", str(self.dir / "logs")).replace("%(here)s/var", str(self.dir / "var"))
        conf = conf.replace("%(here)s", str(root))
        self.conf_path = self.dir / "supervisord.conf"
        self.conf_path.write_text(conf)
        self.panel_port = free_port()
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "LTP_CONFIG": str(self.config_path),
            "REDIS_URL": redis_url,
            "LTP_PANEL_PORT": str(self.panel_port),
            "LTP_VAR": str(self.dir / "var"),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def server_url(self) -> str:
        return f"unix://{self.dir / 'var' / 'supervisor.sock'}"

    def rpc(self) -> xmlrpc.client.ServerProxy:
        return supervisor_proxy(self.server_url)

    def start(self) -> Supervisor:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_path)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.root,
        )
        wait_for(lambda: self.rpc().supervisor.getState()["statename"] == "RUNNING", 15)
        return self

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf_path), *args],
            env=self.env, capture_output=True, text=True, timeout=30,
        )
        return out.stdout + out.stderr

    def info(self, name: str) -> dict:
        return self.rpc().supervisor.getProcessInfo(name)

    def log(self, name: str) -> str:
        path = self.dir / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.rpc().supervisor.shutdown()
            except (OSError, xmlrpc.client.Error):
                self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- TLS: one private CA for every TLS test ------------------------------------------------------

TRUST_ENV_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "WEBSOCKET_CLIENT_CA_BUNDLE")


class TlsCerts:
    """A throw-away CA with a server and a client certificate, generated at test time (cryptography).

    Files (PEM) in `dir`: `ca.pem`, `server.pem` + `server.key` (SAN 127.0.0.1, ::1, localhost),
    `client.pem` + `client.key` (for servers that check clients, as redis-server's TLS does by
    default). The same object serves the simulator's TLS mode, raw TLS test servers and, with
    `tls-cert-file`/`tls-key-file`/`tls-ca-cert-file`, a TLS redis-server.
    """

    def __init__(self, directory: str | Path | None = None, name: str = "ltp test CA") -> None:
        import datetime as dt
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="ltp-tls-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        valid = (now - dt.timedelta(days=1), now + dt.timedelta(days=30))

        def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
            return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(valid[0]).not_valid_after(valid[1])
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))

        def leaf(cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[bytes, bytes]:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).issuer_name(ca_name)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(valid[0]).not_valid_after(valid[1])
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            cert = builder.sign(ca_key, hashes.SHA256())
            return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

        server_cert, server_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, [
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))])
        client_cert, client_key = leaf("ltp test client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
        self.ca_cert = self.dir / "ca.pem"
        self.server_cert = self.dir / "server.pem"
        self.server_key = self.dir / "server.key"
        self.client_cert = self.dir / "client.pem"
        self.client_key = self.dir / "client.key"
        self.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.server_cert.write_bytes(server_cert)
        self.server_key.write_bytes(server_key)
        self.client_cert.write_bytes(client_cert)
        self.client_key.write_bytes(client_key)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Trusts this CA only (and presents the client certificate, for servers that ask)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx

    def redis_client_options(self) -> dict[str, Any]:
        """redis-py's options (and ltp's rediss:// query options, but `ssl`) for a client of a TLS Redis
        that checks client certificates: this CA, the client certificate and key."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca_cert), "ssl_certfile": str(self.client_cert),
                "ssl_keyfile": str(self.client_key)}

    def trust_env(self, *names: str) -> dict[str, str]:
        """Environment that makes the feeds trust this CA: every variable of TRUST_ENV_VARS, or those named."""
        return {name: str(self.ca_cert) for name in (names or TRUST_ENV_VARS)}

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a WebSocket server on a raw socket: the test decides every byte -----------------------------


def ws_frame(payload: bytes | str, opcode: int = 1) -> bytes:
    """One unmasked, final server frame."""
    data = payload.encode() if isinstance(payload, str) else payload
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + data


class RawWsServer:
    """Accepts WebSocket connections on 127.0.0.1 (TLS if given a server context) and answers the upgrade
    with a 101 followed, in the same sendall(), by `after_101`. After that it sends only what the test
    asks for (`send`), one sendall() per call, and never reads: what the client sends stays in the kernel.

    `status` other than 101 refuses the upgrade with that HTTP status; `handshake=False` accepts TCP and
    never answers (a hung server)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, after_101: bytes = b"", status: int = 101,
                 handshake: bool = True) -> None:
        self.ssl_context = ssl_context
        self.after_101 = after_101
        self.status = status
        self.handshake = handshake
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.errors: list[BaseException] = []
        self._accepted = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="raw-ws-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}/raw"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.handshake:
                with self._accepted:
                    self.conns.append(conn)
                    self._accepted.notify_all()
                continue
            try:
                if self.ssl_context is not None:
                    conn = self.ssl_context.wrap_socket(conn, server_side=True)
                conn.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        raise ConnectionError("client left during the upgrade")
                    request += chunk
                headers = {}
                for line in request.split(b"\r\n")[1:]:
                    if b":" in line:
                        k, v = line.split(b":", 1)
                        headers[k.strip().lower()] = v.strip()
                if self.status != 101:
                    body = b"refused by the test server"
                    conn.sendall(b"HTTP/1.1 %d Refused\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (self.status, len(body), body))
                    conn.close()
                    continue
                accept = base64.b64encode(hashlib.sha1(headers[b"sec-websocket-key"]
                                                       + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + self.after_101)
            except (OSError, KeyError) as exc:  # a client that fails verification, a test that leaves early
                self.errors.append(exc)
                conn.close()
                continue
            with self._accepted:
                self.conns.append(conn)
                self._accepted.notify_all()

    def wait_connections(self, n: int = 1, timeout: float = 10.0) -> socket.socket:
        """Block until `n` connections have been upgraded; return the newest."""
        with self._accepted:
            if not self._accepted.wait_for(lambda: len(self.conns) >= n, timeout):
                raise AssertionError(f"{len(self.conns)} connection(s) within {timeout}s, expected {n}; errors {self.errors}")
            return self.conns[-1]

    def send(self, data: bytes, conn: socket.socket | None = None) -> None:
        (conn or self.wait_connections()).sendall(data)

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()


# -- Redis as deployed beyond one box: password, TLS, unix socket, Sentinel ----------------------


class ConfiguredRedis(RedisServer):
    """A private redis-server with extra arguments (`--requirepass`, `--tls-port` ..., `--unixsocket`,
    `--replicaof`). `tcp=False`: no TCP port at all (a unix-socket-only or TLS-only server);
    `client_kwargs` tell `client()` how to reach it (password, ssl_*, unix_socket_path, port)."""

    def __init__(self, *args: str, tcp: bool = True, client_kwargs: dict | None = None) -> None:
        super().__init__()
        self.args = list(args)
        self.tcp = tcp
        self.client_kwargs = client_kwargs or {}

    @property
    def client_port(self) -> int:
        """The port clients use: the plain one, or the TLS port of a TLS-only server."""
        return int(self.client_kwargs.get("port", self.port))

    def client(self) -> redis.Redis:
        where: dict[str, Any] = {"host": "127.0.0.1", "port": self.port} if self.tcp else {}
        return redis.Redis(**{**where, **self.client_kwargs}, decode_responses=True, socket_timeout=5)

    def start(self) -> ConfiguredRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port if self.tcp else 0), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: self.client().ping(), 10)
        except BaseException:
            self.cleanup()
            raise
        return self

    def kill(self) -> None:
        """kill -9: no goodbye to clients, replicas or sentinels."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class SentinelSet:
    """One master, one replica and `n` sentinels (`redis-server --sentinel`, the same binary as
    Debian's redis-sentinel) on loopback, each in its own temp dir on a free port; a failover is
    quick: `down_after_ms` to notice, `failover_timeout_ms` bounds a failover attempt."""

    def __init__(self, service: str = "mymaster", n: int = 3, quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 2000, sentinel_password: str = "", tls: TlsCerts | None = None) -> None:
        self.sentinel_password = sentinel_password  # requirepass of the sentinels themselves
        self.tls = tls  # TLS only (no plain ports) on master, replica and sentinels, client certificates required
        self.service = service
        self.n = n
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.master: ConfiguredRedis | None = None
        self.replica: ConfiguredRedis | None = None
        self.sentinel_ports: list[int] = []
        self.sentinel_dirs: list[str] = []
        self.sentinel_procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        options = {**({"sentinel_password": self.sentinel_password} if self.sentinel_password else {}),
                   **{k: v for k, v in self._tls_client().items() if k != "ssl"}}
        query = "?" + "&".join(f"{k}={v}" for k, v in options.items()) if options else ""
        return f"{'rediss' if self.tls else 'redis'}+sentinel://{hosts}/{self.service}/0{query}"

    def _tls_client(self) -> dict[str, Any]:
        return self.tls.redis_client_options() if self.tls else {}

    def _tls_server_lines(self) -> list[tuple[str, str]]:
        c = self.tls
        if c is None:
            return []
        return [("tls-cert-file", str(c.server_cert)), ("tls-key-file", str(c.server_key)),
                ("tls-ca-cert-file", str(c.ca_cert)), ("tls-replication", "yes"),
                # outgoing links (replica -> master, sentinel -> anyone) present the client certificate
                ("tls-client-cert-file", str(c.client_cert)), ("tls-client-key-file", str(c.client_key))]

    def _node(self, *args: str) -> ConfiguredRedis:
        if self.tls is None:
            return ConfiguredRedis(*args).start()
        port = free_port()
        flags = [item for k, v in self._tls_server_lines() for item in (f"--{k}", v)]
        return ConfiguredRedis("--tls-port", str(port), *flags, *args, tcp=False,
                               client_kwargs={"host": "127.0.0.1", "port": port, **self._tls_client()}).start()

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[i], decode_responses=True, socket_timeout=2,
                           password=self.sentinel_password or None, **self._tls_client())

    def master_addr(self, i: int = 0) -> tuple[str, int]:
        host, port = self.sentinel(i).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return host, int(port)

    def sentinel_state(self, i: int = 0) -> dict[str, str]:
        flat = self.sentinel(i).execute_command("SENTINEL", "MASTER", self.service)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def start(self) -> SentinelSet:
        try:
            return self._start()
        except BaseException:
            self.cleanup()  # nothing left running when the set does not come up
            raise

    def _start(self) -> SentinelSet:
        self.master = self._node()
        self.replica = self._node("--replicaof", "127.0.0.1", str(self.master.client_port))
        wait_for(lambda: self.replica.client().info("replication")["master_link_status"] == "up", 10)
        for _ in range(self.n):
            port, d = free_port(), tempfile.mkdtemp(prefix="ltp-sentinel-")
            conf = Path(d) / "sentinel.conf"
            listen = f"port 0\ntls-port {port}\n" if self.tls else f"port {port}\n"
            extra = "".join(f"{k} {v}\n" for k, v in self._tls_server_lines())
            if self.sentinel_password:
                extra += f"requirepass {self.sentinel_password}\n"
            conf.write_text(
                f"{listen}bind 127.0.0.1\ndir {d}\n{extra}"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.client_port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            self.sentinel_ports.append(port)
            self.sentinel_dirs.append(d)
            self.sentinel_procs.append(subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def all_see_each_other() -> bool:
            for i in range(self.n):
                state = self.sentinel_state(i)
                if int(state["num-other-sentinels"]) < self.n - 1 or int(state["num-slaves"]) < 1:
                    return False
            return True

        wait_for(all_see_each_other, 20, 0.2)
        return self

    def cleanup(self) -> None:
        for proc in self.sentinel_procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for d in self.sentinel_dirs:
            shutil.rmtree(d, ignore_errors=True)
        for node in (self.master, self.replica):
            if node is not None:
                node.cleanup()


class RedisClusterSet:
    """A Redis Cluster on loopback: `masters` masters with `replicas` replicas each (`redis-server
    --cluster-enabled yes`, joined by `redis-cli --cluster create`), every node on a free port with its
    own free cluster-bus port and temp dir. `node_timeout_ms` is how long until a silent master is
    failed over to its replica."""

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000, password: str = "",
                 tls: TlsCerts | None = None) -> None:
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.password = password  # requirepass (and masterauth) on every node
        self.tls = tls  # TLS only: clients, replication and the cluster bus; client certificates required
        self.nodes: list[ConfiguredRedis] = []

    def _tls_client(self) -> dict[str, Any]:
        return self.tls.redis_client_options() if self.tls else {}

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{n.client_port}" for n in self.nodes[:self.masters])
        if self.tls is None:
            return f"redis+cluster://{auth}{hosts}"
        query = "&".join(f"{k}={v}" for k, v in self._tls_client().items() if k != "ssl")
        return f"rediss+cluster://{auth}{hosts}?{query}"

    def cluster(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].client_port, decode_responses=True,
                                  socket_timeout=5, password=self.password or None, **self._tls_client())

    def _node(self, *args: str) -> ConfiguredRedis:
        client: dict[str, Any] = {"password": self.password} if self.password else {}
        c = self.tls
        if c is None:
            return ConfiguredRedis(*args, client_kwargs=client).start()
        port = free_port()
        return ConfiguredRedis(
            "--tls-port", str(port), "--tls-cert-file", str(c.server_cert), "--tls-key-file", str(c.server_key),
            "--tls-ca-cert-file", str(c.ca_cert), "--tls-client-cert-file", str(c.client_cert),
            "--tls-client-key-file", str(c.client_key), "--tls-replication", "yes", "--tls-cluster", "yes", *args,
            tcp=False, client_kwargs={"host": "127.0.0.1", "port": port, **client, **self._tls_client()}).start()

    def node_for_key(self, key: str) -> ConfiguredRedis:
        """The running node that is master of `key`'s slot now (after a failover: the promoted replica)."""
        slot = redis.crc.key_slot(key.encode())
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            for start, end, master, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.client_port == int(master[1]))
        raise LookupError(f"no node serves slot {slot}")

    def start(self) -> RedisClusterSet:
        try:
            auth = ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
            for _ in range(self.masters * (1 + self.replicas)):
                self.nodes.append(self._node(
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()),
                    "--cluster-node-timeout", str(self.node_timeout_ms), *auth))
            cli_auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
            if self.tls is not None:
                c = self.tls
                cli_auth += ["--tls", "--cacert", str(c.ca_cert), "--cert", str(c.client_cert), "--key", str(c.client_key)]
            subprocess.run(["redis-cli", *cli_auth, "--cluster", "create", *(f"127.0.0.1:{n.client_port}" for n in self.nodes),
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

            def ready() -> bool:
                for node in self.nodes:
                    info = node.client().execute_command("CLUSTER", "INFO")
                    if "cluster_state:ok" not in info or f"cluster_known_nodes:{len(self.nodes)}" not in info:
                        return False
                    repl = node.client().info("replication")
                    if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                        return False  # a replica that never synced is not eligible to take over
                return True

            wait_for(ready, 30, 0.2)
            return self
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


class TlsTerminator:
    """A TLS reverse proxy on loopback, as in front of a supervisord's inet_http_server: accepts TLS with
    `context` on a free port and pipes each connection's bytes to 127.0.0.1:`backend_port` in plain TCP."""

    def __init__(self, backend_port: int, context: ssl.SSLContext) -> None:
        self.backend_port = backend_port
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshake_errors: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            front = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.handshake_errors.append(str(exc))
            raw.close()
            return
        back = socket.create_connection(("127.0.0.1", self.backend_port))

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.close()

        threading.Thread(target=pipe, args=(back, front), daemon=True).start()
        pipe(front, back)

    def close(self) -> None:
        self.listener.close()
