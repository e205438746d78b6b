"""The read loop's write rule (WsConnection._read_loop): what a read brought is written before the next
read, unless the read filled the buffer and the next one is already waiting; then at least every
FLUSH_BEHIND_S, and whatever is pending when the connection ends.

The loop runs on this thread against a real RedisSink and redis-server; `read` hands it the bytes of a
socket (chunks of exactly RECV_BYTES, as at full speed) and records how many keys were pending (staged,
not yet written) at each call.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness import wait_for, ws_frame
from workers.exchanges import bybit
from workers.runtime.sink import RedisSink
from workers.runtime.stats import FeedStats
from workers.runtime.ws import FLUSH_BEHIND_S, RECV_BYTES, WsConnection
from workers.runtime.wsframe import FrameDecoder

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def full_reads(n: int) -> tuple[list[bytes], str]:
    """n chunks of exactly RECV_BYTES of ticker frames (frames cut across chunks, as reads cut them), and
    the last price of BTCUSDT wholly inside them."""
    frames, last, i = [], "", 0
    while sum(map(len, frames)) < n * RECV_BYTES + 200:
        price = f"{100 + i * 0.01:.2f}"
        sym = SYMBOLS[i % 2]
        msg = {"topic": f"tickers.{sym}", "ts": 1_700_000_000_000 + i, "type": "snapshot",
               "data": {"symbol": sym, "lastPrice": price}, "pad": "x" * 4000}  # ~16 frames a read: quick to parse
        frames.append(ws_frame(json.dumps(msg).encode()))
        if sym == "BTCUSDT" and sum(map(len, frames)) <= n * RECV_BYTES:
            last = price
        i += 1
    blob = b"".join(frames)
    return [blob[k * RECV_BYTES:(k + 1) * RECV_BYTES] for k in range(n)], last


@pytest.fixture
def loop(redis_server):
    stats = FeedStats("fb", SYMBOLS)
    sink = RedisSink(redis_server.url, "fb", stats)
    sink.start()
    wait_for(lambda: sink.connected, 5)
    [stream] = bybit.spot_streams("ws://unused", SYMBOLS, book_top=False)
    conn = WsConnection(stream, sink, stats)

    def run(chunks: list[bytes], waiting: bool, pause: float = 0.0) -> list[int]:
        pending_at_read: list[int] = []
        left = iter(chunks)

        def read() -> bytes:
            pending_at_read.append(sink.pending_count())
            time.sleep(pause)
            return next(left, b"")

        conn._read_loop(None, read, lambda: waiting, FrameDecoder(1 << 20))  # type: ignore[arg-type]
        return pending_at_read

    yield run, sink
    sink.close()


def test_a_full_read_with_nothing_waiting_is_written_before_the_next_read(loop, redis_server):
    run, sink = loop
    chunks, last = full_reads(4)
    pending = run(chunks, waiting=False)
    assert pending == [0] * 5  # every read (and the final one, which ends the connection) found nothing pending
    assert redis_server.client().hget("fb:BTCUSDT", "ltp") == last


@pytest.mark.timing  # four reads of ~16 frames must take under FLUSH_BEHIND_S (5 ms): not on a crowded box
def test_full_reads_with_more_waiting_are_written_together_and_at_the_end(loop, redis_server):
    run, sink = loop
    chunks, last = full_reads(4)
    pending = run(chunks, waiting=True)
    # The first read writes (nothing written yet); the next ones, within FLUSH_BEHIND_S, wait for more.
    assert pending[:2] == [0, 0] and all(p == len(SYMBOLS) for p in pending[2:]), pending
    assert sink.pending_count() == 0  # the connection ended: what was pending is written
    assert redis_server.client().hget("fb:BTCUSDT", "ltp") == last


def test_full_reads_are_written_at_least_every_flush_behind_interval(loop):
    run, _ = loop
    chunks, _ = full_reads(4)
    pending = run(chunks, waiting=True, pause=2 * FLUSH_BEHIND_S)  # reads further apart than the interval
    assert pending == [0] * 5
