"""The cluster writer routes each packed command by its key: the first argument, or EVAL's first key."""

from __future__ import annotations

import hiredis
from hypothesis import given
from hypothesis import strategies as st

from workers.runtime.wire import command_key


def test_key_of_each_command_the_sink_sends():
    assert command_key(hiredis.pack_command(("HSET", "bybit_spot:BTCUSDT", "ltp", "1"))) == b"bybit_spot:BTCUSDT"
    assert command_key(hiredis.pack_command(("PUBLISH", "p:X", b'{"ltp":"1"}'))) == b"p:X"
    assert command_key(hiredis.pack_command(("SADD", "ltp:symbols:p", "X", "Y"))) == b"ltp:symbols:p"
    # a script with CRLFs in it, two keys: routed by the first
    assert command_key(hiredis.pack_command(("EVAL", "local a = 1\r\nreturn a", 2, "k1", "k2", "v"))) == b"k1"
    assert command_key(hiredis.pack_command(("evalsha", "abc", 1, "k", "v"))) == b"k"


@given(st.binary(min_size=1, max_size=300), st.lists(st.binary(max_size=50), max_size=4))
def test_any_key_bytes_round_trip(key, rest):
    assert command_key(hiredis.pack_command(("HSET", key, *rest))) == key
