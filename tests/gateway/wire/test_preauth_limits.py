"""Pre-authentication limits of the websocket server, over real TCP on 127.0.0.1: too many
unauthenticated connections from one address (or in all) are dropped at accept; each one that
is admitted has its own deadline from accept, which holds however many there are; an
authenticated connection is exempt from both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.wire.ws_server import PreAuthLimits, WsConnection, WsServer

pytestmark = pytest.mark.anyio

EXPIRED = b'{"v":1,"type":"error","code":"timeout","fatal":true}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def authenticating_echo(conn: WsConnection) -> None:
    """Says "auth" authenticates the connection; everything is echoed."""
    async for msg in conn:
        if msg == "auth":
            conn.mark_authenticated()
        await conn.send(msg.encode() if isinstance(msg, str) else msg)


@asynccontextmanager
async def serving(limits: PreAuthLimits) -> AsyncIterator[tuple[WsServer, int]]:
    async with WsServer.serve(
        authenticating_echo, "127.0.0.1", 0, max_size=65536, max_queue=32, preauth=limits
    ) as server:
        yield server, server.sockets[0].getsockname()[1]


async def _dropped(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server ends the TCP connection within `within` s."""
    try:
        async with asyncio.timeout(within):
            return await reader.read(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_per_address_and_total_caps_drop_at_accept() -> None:
    async with serving(PreAuthLimits(deadline_s=30, per_address=4, total=6)) as (server, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.1)
        extra_r, extra_w = await asyncio.open_connection("127.0.0.1", port)
        assert await _dropped(extra_r, 2), "the 5th connection from one address was admitted"
        assert server.preauth_open == 4 and server.preauth_refused == 1
        held[0][1].close()
        await asyncio.sleep(0.1)
        assert server.preauth_open == 3
        # A websocket comes in and authenticates: it stops counting, another may come in.
        ws = await connect(f"ws://127.0.0.1:{port}/", compression=None)
        assert server.preauth_open == 4
        await ws.send("auth")
        assert await ws.recv() == "auth"
        assert server.preauth_open == 3
        again_r, again_w = await asyncio.open_connection("127.0.0.1", port)
        assert not await _dropped(again_r, 0.3)
        assert server.preauth_open == 4
        await ws.close()
        for _, w in [*held[1:], (again_r, again_w), (extra_r, extra_w)]:
            w.close()


async def test_total_cap_counts_every_address() -> None:
    async with serving(PreAuthLimits(deadline_s=30, per_address=100, total=3)) as (server, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.1)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await _dropped(r, 2) and server.preauth_refused == 1
        for _, hw in [*held, (r, w)]:
            hw.close()


async def test_deadline_sends_the_frame_then_closes_and_spares_the_authenticated() -> None:
    limits = PreAuthLimits(deadline_s=0.4, per_address=100, total=100, expired_frame=EXPIRED)
    async with serving(limits) as (server, port):
        mute = await connect(f"ws://127.0.0.1:{port}/", compression=None)
        good = await connect(f"ws://127.0.0.1:{port}/", compression=None)
        await good.send("auth")
        assert await good.recv() == "auth"
        started = time.monotonic()
        assert await mute.recv() == EXPIRED.decode()
        with pytest.raises(ConnectionClosed):
            await mute.recv()
        assert mute.close_code == 1008 and time.monotonic() - started < 1.0
        await asyncio.sleep(0.5)
        await good.send("still here")
        assert await good.recv() == "still here"
        assert server.preauth_expired == 1
        await good.close()


async def test_deadline_holds_for_thousands_of_connections() -> None:
    """2,000 silent TCP connections: every one is closed by its own deadline (0.5 s after its
    accept), none left open a second after the last one opened."""
    n = 2_000
    limits = PreAuthLimits(deadline_s=0.5, per_address=n, total=n)
    async with serving(limits) as (server, port):
        conns = []
        for _ in range(n):
            conns.append(await asyncio.open_connection("127.0.0.1", port))
        last_opened = time.monotonic()
        results = await asyncio.gather(*(_dropped(r, 1.5) for r, _ in conns))
        assert all(results), f"{results.count(False)} of {n} still open"
        assert time.monotonic() - last_opened < 2.0
        assert server.preauth_expired == n and server.preauth_open == 0
        for _, w in conns:
            w.close()
