"""Redis URLs in logs: `redis_url.redact` hides every credential form in every accepted scheme, and
the feed's start-up hints read every accepted scheme (one list: `redis_url.SCHEMES`)."""

from __future__ import annotations

import pytest
import yaml

from workers.runtime.config import DEFAULT_REDIS_URL
from workers.runtime.feed import _hints_of_unchecked_config
from workers.runtime.redis_url import SCHEMES, check, redact

SECRET = "s3cr3t-Pw"
WHERE = {"unix": "/tmp/ltp-test.sock"}  # the rest: host:port lists


def where(scheme: str) -> str:
    return WHERE.get(scheme, "10.0.0.1:6379,10.0.0.2:6379" if "+" in scheme else "10.0.0.1:6379")


def test_the_scheme_list_is_every_accepted_form():
    assert set(SCHEMES) == {"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
                            "rediss+cluster"}
    with pytest.raises(ValueError, match="expected a Redis URL"):
        check("http://10.0.0.1:6379")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("form", [
    "{scheme}://user:{pw}@{where}/0",
    "{scheme}://:{pw}@{where}/0",
    "{scheme}://{where}/0?password={pw}",
    "{scheme}://{where}/0?db=1&password={pw}&ssl_ca_certs=/ca.pem",
    "{scheme}://{where}/0?sentinel_username=s&sentinel_password={pw}",
    "{scheme}://{where}/0?ssl_password={pw}",
    "{scheme}://{where}/0?%70assword={pw}",  # redis-py unquotes option names
    "{scheme}://{where}/0?PASSWORD={pw}#frag",
    "{scheme}://u:{pw}@{where}/0?password={pw}&sentinel_password={pw}",
    "{scheme}://u:p@ss:{pw}@{where}/0",  # an unencoded @ in the password
])
def test_every_credential_form_is_hidden_in_every_scheme(scheme, form):
    url = form.format(scheme=scheme, pw=SECRET, where=where(scheme))
    shown = redact(url)
    assert SECRET not in shown, shown
    assert shown.startswith(f"{scheme}://") and where(scheme) in shown and "***" in shown, shown


def test_what_is_no_credential_stays_readable():
    url = "rediss+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/2?ssl_ca_certs=/etc/ca.pem&sentinel_username=s"
    assert redact(url) == url
    assert redact("redis://h:1/0?db=1&password=x&socket_timeout=2") == "redis://h:1/0?db=1&password=***&socket_timeout=2"
    assert redact(f"user:{SECRET}@10.0.0.1:6379") == "***@10.0.0.1:6379"  # no scheme: still hidden


@pytest.mark.parametrize("scheme", SCHEMES)
def test_start_up_hints_read_every_scheme_from_the_file(scheme, tmp_path, monkeypatch):
    """A config that does not validate still names the Redis to report to, whatever its form."""
    url = f"{scheme}://{where(scheme)}/0"
    cfg = tmp_path / "exchanges.yaml"
    cfg.write_text(yaml.safe_dump({"redis": {"url": url}, "exchanges": {"bybit": {"services": {
        "bybit_spot": {"redis_prefix": "bs", "ping_interval": "fast"}}}}}))
    monkeypatch.setenv("LTP_CONFIG", str(cfg))
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert _hints_of_unchecked_config("bybit_spot") == (url, "bs")
    cfg.write_text(yaml.safe_dump({"redis": {"url": "http://10.0.0.1/"}}))
    assert _hints_of_unchecked_config("bybit_spot") == (DEFAULT_REDIS_URL, None)
