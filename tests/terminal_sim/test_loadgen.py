"""Open-loop load generator against the bare echo server (subprocess) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from terminal_sim.loadgen import (
    JsonSeqMessages,
    LoadResult,
    LoadSpec,
    Target,
    close_connections,
    open_connections,
    run_load,
    run_multiprocess,
    run_open_loop,
)

MSGS = JsonSeqMessages(size=300)


@pytest.fixture
def anyio_backend() -> Any:
    return ("asyncio", {"use_uvloop": True})


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """``python -m terminal_sim.echo_server --port 0`` in its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "terminal_sim.echo_server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", line
        yield int(line[1])
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def spec(rate: float, duration: float, **kw: Any) -> LoadSpec:
    return LoadSpec(rate=rate, duration=duration, make_message=MSGS.make, reply_key=MSGS.key, **kw)


def test_json_messages_helper() -> None:
    key, data = MSGS.make(123_456)
    assert key == 123_456
    assert len(data) == 300
    assert MSGS.key(data) == 123_456
    import orjson

    assert orjson.loads(data)["seq"] == 123_456


@pytest.mark.anyio
async def test_small_rate_sends_exactly_and_receives_all(echo_port: int) -> None:
    r = await run_load(Target("127.0.0.1", echo_port, connections=10), spec(200, 1.0))
    assert (r.sent, r.received, r.errors, r.lost, r.unmatched) == (200, 200, 0, 0, 0)
    assert r.latency.count == r.service.count == r.send_lag.count == 200
    assert r.latency.min_ms() > 0
    assert r.service.min_ms() > 0
    # Measured from the intended time, latency can only be larger than from the write.
    assert r.latency.max_ms() >= r.service.max_ms()
    assert 150 < r.achieved_rate <= 201
    assert r.window_s >= 0.99
    assert 0 <= r.cpu_util < 1.5
    s = r.summary()
    assert s["sent"] == 200 and "client_cpu_bound" in s and "p99.9_ms" in s


@pytest.mark.anyio
async def test_loop_stall_is_charged_to_latency(echo_port: int) -> None:
    """Coordinated omission: a 200 ms stall must show up in latencies measured from the
    intended send time (and in the send lag), while nothing is skipped."""
    conns = await open_connections(Target("127.0.0.1", echo_port, connections=5))
    try:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, time.sleep, 0.2)  # blocks the whole event loop
        r = await run_open_loop(conns, spec(500, 1.0), start_at=time.monotonic())
    finally:
        await close_connections(conns)
    assert (r.sent, r.received, r.lost) == (500, 500, 0)
    # ~100 messages were due during the stall; the earliest waited ~200 ms.
    assert r.latency.max_ms() >= 180
    assert r.latency.percentile_ms(95) >= 100
    assert r.send_lag.max_ms() >= 180
    # The server itself stayed fast: latency from the actual write hides the stall.
    assert r.service.percentile_ms(95) < 50
    assert r.client_cpu_bound
    assert any("send lag" in why for why in r.saturation)


@asynccontextmanager
async def slow_echo(delay: float) -> AsyncIterator[int]:
    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            await asyncio.sleep(delay)
            await ws.send(message)

    async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
        yield next(iter(srv.sockets)).getsockname()[1]


@pytest.mark.anyio
async def test_bounded_inflight_backlog_counts_waiting_time() -> None:
    # One connection, a server answering one message per 5 ms (200/s), offered 400/s.
    async with slow_echo(0.005) as port:
        r = await run_load(
            Target("127.0.0.1", port, connections=1), spec(400, 0.25, max_inflight=2)
        )
    assert (r.sent, r.received, r.lost, r.errors) == (100, 100, 0, 0)
    assert r.backlogged > 50
    assert r.max_backlog > 10
    # Time spent in the backlog is charged: latency p99 far above the server's service time.
    assert r.latency.p99_ms() > 100
    assert r.service.p99_ms() < 50
    assert r.achieved_rate < 300


@pytest.mark.anyio
async def test_dropped_connection_is_accounted() -> None:
    async def handler(ws: ServerConnection) -> None:
        for _ in range(5):
            await ws.send(await ws.recv())
        await ws.close(1011, "going away")

    async with serve(handler, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        r = await run_load(Target("127.0.0.1", port, connections=1), spec(200, 0.2))
    assert r.received == 5
    assert r.closed_connections == 1
    assert r.sent + r.errors == 40  # every due message was either written or counted
    assert r.errors > 0
    assert r.lost == r.sent - r.received


def test_multiprocess_splits_schedule_and_merges(echo_port: int) -> None:
    r = run_multiprocess(2, Target("127.0.0.1", echo_port, connections=4), spec(400, 0.5))
    assert isinstance(r, LoadResult)
    assert r.processes == 2 and r.connections == 4 and len(r.cpu_utils) == 2
    assert (r.sent, r.received, r.errors, r.lost, r.unmatched) == (200, 200, 0, 0, 0)
    assert r.latency.count == 200
    assert r.latency.min_ms() > 0
    assert r.target_rate == 400
    assert 300 < r.achieved_rate <= 401


def test_multiprocess_fails_fast_when_workers_cannot_connect() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    with pytest.raises(RuntimeError, match="setup"):
        run_multiprocess(2, Target("127.0.0.1", port, connections=2), spec(100, 0.5))
    assert time.monotonic() - t < 20
