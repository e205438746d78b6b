"""Every Redis URL form ltp accepts, against a real redis-server: a real RedisSink writes through
its raw-socket fast path and the data is read back, through the panel's client too.

Password (`requirepass`, and an ACL user), TLS (`rediss://` with the test CA and a client
certificate, as redis-server's TLS asks by default), a unix socket. Sentinel and Cluster failover:
tests/reliability/test_16_*; every feed on a cluster: tests/e2e/test_redis_cluster.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from controlpanel.deps import panel_redis
from tests.harness import ROOT, ConfiguredRedis, RedisClusterSet, SentinelSet, sim_config, wait_for
from workers.runtime.config import ConfigError, parse_config
from workers.runtime.model import Update
from workers.runtime.sink import RedisSink, redis_client
from workers.runtime.stats import FeedStats

SYMBOLS = [f"S{i}" for i in range(20)]


def write_and_read_back(url: str, server: ConfiguredRedis, prefix: str = "t") -> None:
    """A sink writes every symbol twice (the second through the pipelined path with replies
    outstanding), the hashes, index and pub/sub land; the panel's client reads the same."""
    stats = FeedStats(prefix, SYMBOLS)
    sink = RedisSink(url, prefix, stats, history_len=5)
    sink.start()
    try:
        direct = server.client()
        sub = direct.pubsub()
        sub.subscribe(f"{prefix}:S0")
        wait_for(lambda: sub.get_message(timeout=0.1) is not None, 5)  # the subscribe confirmation
        for round_ in (1, 2):
            now = int(time.time() * 1000)
            sink.stage([Update(s, {"ltp": f"{round_}.{i}"}, now) for i, s in enumerate(SYMBOLS)], now)
            sink.flush()
        wait_for(lambda: all(direct.hget(f"{prefix}:{s}", "ltp") == f"2.{i}" for i, s in enumerate(SYMBOLS)), 5)
        assert direct.scard(f"ltp:symbols:{prefix}") == len(SYMBOLS)
        msg = wait_for(lambda: sub.get_message(timeout=0.1), 5)
        assert msg["channel"] == f"{prefix}:S0"
        assert stats.redis_errors == 0 and sink.connected
        panel = panel_redis(url, 2)
        assert panel.hget(f"{prefix}:S19", "ltp") == "2.19"
        assert redis_client(url).hget(f"{prefix}:S3", "ltp") == "2.3"
        sub.close()
    finally:
        sink.close()


def test_password_requirepass():
    server = ConfiguredRedis("--requirepass", "s3cret pass", client_kwargs={"password": "s3cret pass"}).start()
    try:
        write_and_read_back(f"redis://:s3cret%20pass@127.0.0.1:{server.port}/0", server)
        # a wrong password: the sink counts errors and keeps the data pending, nothing crashes
        stats = FeedStats("bad", ["X"])
        sink = RedisSink(f"redis://:wrong@127.0.0.1:{server.port}/0", "bad", stats)
        now = int(time.time() * 1000)
        sink.stage([Update("X", {"ltp": "1"}, now)], now)
        sink.flush()
        assert stats.redis_errors >= 1 and not sink.connected and sink.pending_count() == 1
        sink.close(0.2)
    finally:
        server.cleanup()


def feed_output(url_in_file: str, url_in_env: str | None, tmp: Path, server: ConfiguredRedis, sim_port: int) -> str:
    """Everything `python -m workers bybit_spot` logs from its start until it has written a key
    through `server` (so the password did reach Redis) and stopped."""
    cfg = tmp / "exchanges.yaml"
    cfg.write_text(yaml.safe_dump(sim_config(url_in_file, sim_port, overrides={"bybit_spot": {"symbols": ["BTCUSDT"]}})))
    env = {**os.environ, "LTP_CONFIG": str(cfg), "LTP_VAR": str(tmp / "var")}
    env.pop("REDIS_URL", None)
    if url_in_env is not None:
        env["REDIS_URL"] = url_in_env
    r = server.client()
    r.delete("bybit_spot:BTCUSDT")
    log = tmp / "feed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workers", "bybit_spot"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: r.hget("bybit_spot:BTCUSDT", "ltp") or proc.poll() is not None, 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert r.hget("bybit_spot:BTCUSDT", "ltp"), log.read_text()[-2000:]
    return log.read_text()


def test_a_feed_never_logs_the_redis_password(sim, tmp_path):
    """The start-up line names the Redis URL: with the password hidden in every form (it printed a
    `?password=` query option as it was)."""
    secret = "l3ak-me-not"
    server = ConfiguredRedis("--requirepass", secret, client_kwargs={"password": secret}).start()
    try:
        plain = f"redis://127.0.0.1:{server.port}/0"
        for in_file, in_env in [(plain, f"{plain}?password={secret}"),
                                (f"redis://default:{secret}@127.0.0.1:{server.port}/0", None)]:
            out = feed_output(in_file, in_env, tmp_path, server, sim.port)
            start = next(line for line in out.splitlines() if "starting bybit_spot" in line)
            assert "Redis redis://" in start and "***" in start, start
            assert secret not in out, out
    finally:
        server.cleanup()


def test_acl_user_and_db():
    server = ConfiguredRedis("--user", "default", "off", "--user", "ltp", "on", ">pw", "~*", "&*", "+@all",
                             client_kwargs={"username": "ltp", "password": "pw", "db": 3}).start()
    try:
        write_and_read_back(f"redis://ltp:pw@127.0.0.1:{server.port}/3", server)
        assert server.client().dbsize() > 0
    finally:
        server.cleanup()


def tls_server(tls_certs, *extra: str) -> ConfiguredRedis:
    c = tls_certs
    port = ConfiguredRedis().port  # a free port for TLS; the plain port is off
    return ConfiguredRedis(
        "--tls-port", str(port), "--tls-cert-file", str(c.server_cert), "--tls-key-file", str(c.server_key),
        "--tls-ca-cert-file", str(c.ca_cert), *extra, tcp=False,
        client_kwargs={"host": "127.0.0.1", "port": port, **c.redis_client_options()},
    ).start()


def test_rediss_with_test_ca_and_client_certificate(tls_certs):
    server = tls_server(tls_certs)
    c, port = tls_certs, server.client_kwargs["port"]
    try:
        url = (f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={c.ca_cert}"
               f"&ssl_certfile={c.client_cert}&ssl_keyfile={c.client_key}")
        write_and_read_back(url, server)
        # The fast path under load: many batches with replies outstanding, read without blocking.
        stats = FeedStats("load", ["X"])
        sink = RedisSink(url, "load", stats)
        for n in range(2000):
            now = int(time.time() * 1000)
            sink.stage([Update(f"K{n % 50}", {"ltp": str(n)}, now)], now)
            sink.flush()
        sink.close()
        assert stats.redis_errors == 0
        assert server.client().hget("load:K49", "ltp") == "1999"
    finally:
        server.cleanup()


def test_rediss_refuses_a_server_outside_the_given_ca(tls_certs, tmp_path):
    from tests.harness import TlsCerts

    other = TlsCerts(tmp_path / "other", name="another CA")
    server = tls_server(tls_certs)
    try:
        url = f"rediss://127.0.0.1:{server.client_kwargs['port']}/0?ssl_ca_certs={other.ca_cert}"
        stats = FeedStats("x", ["X"])
        sink = RedisSink(url, "x", stats)
        now = int(time.time() * 1000)
        sink.stage([Update("X", {"ltp": "1"}, now)], now)
        sink.flush()
        assert stats.redis_errors >= 1 and not sink.connected
        sink.close(0.2)
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            redis_client(url).ping()
    finally:
        server.cleanup()
        other.cleanup()


def test_unix_socket():
    probe = ConfiguredRedis()
    path = f"{probe.dir}/redis.sock"
    server = ConfiguredRedis("--unixsocket", path, "--unixsocketperm", "700", tcp=False,
                             client_kwargs={"unix_socket_path": path})
    server.dir = probe.dir
    server.start()
    try:
        write_and_read_back(f"unix://{path}?db=0", server)
    finally:
        server.cleanup()


def test_sentinels_that_require_a_password():
    """Sentinels with `requirepass` of their own: `sentinel_password` in the URL; without it the
    sentinels refuse and no master is found (an error, not a hang)."""
    sentinels = SentinelSet(sentinel_password="sentinel-pw").start()
    try:
        write_and_read_back(sentinels.url, sentinels.master)
        without = sentinels.url.split("?")[0]
        with pytest.raises(redis.ConnectionError):
            redis_client(without, 1, 1).ping()
    finally:
        sentinels.cleanup()


def test_sentinel_over_tls(tls_certs):
    """rediss+sentinel://: TLS-only sentinels, master and replica (no plain port anywhere), the test CA
    and a client certificate for both the sentinels and the master."""
    sentinels = SentinelSet(tls=tls_certs).start()
    try:
        assert sentinels.url.startswith("rediss+sentinel://")
        write_and_read_back(sentinels.url, sentinels.master)
    finally:
        sentinels.cleanup()


def write_and_read_back_on_cluster(cluster: RedisClusterSet, prefix: str) -> None:
    """A sink's per-master connections write every symbol, the keys spread over the three masters, and the
    panel's client reads them back."""
    stats = FeedStats(prefix, SYMBOLS)
    sink = RedisSink(cluster.url, prefix, stats)
    sink.start()
    try:
        now = int(time.time() * 1000)
        sink.stage([Update(s, {"ltp": str(i)}, now) for i, s in enumerate(SYMBOLS)], now)
        sink.flush()
        rc = cluster.cluster()
        wait_for(lambda: all(rc.hget(f"{prefix}:{s}", "ltp") == str(i) for i, s in enumerate(SYMBOLS)), 5)
        assert sum(1 for n in cluster.nodes if n.client().dbsize()) == 3 and stats.redis_errors == 0
        assert panel_redis(cluster.url, 2).hget(f"{prefix}:S19", "ltp") == "19"
    finally:
        sink.close()


def test_cluster_with_password():
    """redis+cluster:// with requirepass on every node; a wrong password is an error."""
    cluster = RedisClusterSet(masters=3, password="s3cret").start()
    try:
        write_and_read_back_on_cluster(cluster, "c")
        with pytest.raises(redis.RedisError):
            redis_client(cluster.url.replace("s3cret", "wrong"), 1, 1).hget("c:S1", "ltp")
    finally:
        cluster.cleanup()


def test_cluster_over_tls(tls_certs):
    """rediss+cluster://: TLS-only nodes (clients, replication, cluster bus) with the test CA and a client
    certificate: the sink's per-master connections, the panel's client and the slot map all speak TLS."""
    cluster = RedisClusterSet(masters=3, tls=tls_certs).start()
    try:
        assert cluster.url.startswith("rediss+cluster://")
        write_and_read_back_on_cluster(cluster, "ct")
    finally:
        cluster.cleanup()


@pytest.mark.parametrize("url", [
    "redis://:pw@10.0.0.5:6379/0", "unix:///run/redis/redis.sock?db=2",
    "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0", "redis+sentinel://u:p@h1:26379/mymaster",
    "redis+sentinel://h1:26379/mymaster?sentinel_password=x", "rediss+sentinel://h1:26379/mymaster",
    "redis+cluster://10.0.0.1:7000,10.0.0.2:7001", "redis+cluster://u:p@h1:7000/0", "rediss+cluster://h1:7000",
])
def test_config_accepts_the_documented_forms(url):
    assert parse_config({"redis": {"url": url}}).redis_url == url


@pytest.mark.parametrize(("url", "problem"), [
    ("http://h:6379", "expected a Redis URL"),
    ("redis+sentinel://h1:26379", "/service"),
    ("redis+sentinel://h1/mymaster", "not host:port"),
    ("rediss://h:6380/0?ssl_ca_certs=/no/such/ca.pem", "no such file"),
    ("redis://h:6379/0?sslcacerts=x", "unexpected keyword"),
    ("redis+sentinel://h1:26379/m?ssl_ca_certs=/tmp/ca.pem", "with rediss+sentinel://"),
    ("redis+cluster://h1:7000/2", "only db 0"),
    ("redis+cluster://h1", "not host:port"),
    ("redis+cluster://h1:7000?ssl_ca_certs=/tmp/ca.pem", "with rediss+cluster://"),
    ("rediss+cluster://h1:7000?ssl_ca_certs=/no/such/ca.pem", "no such file"),
])
def test_config_names_the_allowed_forms(url, problem):
    with pytest.raises(ConfigError) as info:
        parse_config({"redis": {"url": url}})
    text = str(info.value)
    assert "redis.url" in text and problem in text
    assert "rediss://" in text and "unix://" in text and "redis+sentinel://" in text and "redis+cluster://" in text
