"""`gateway.wire.ws_server` over real sockets on 127.0.0.1: websockets' own client (and raw streams
for bytes no websocket client would send) against `WsServer` / `WsConnection`."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Frame, Opcode

from gateway.wire import ws_server
from gateway.wire.ws_server import WsConnection, WsServer

pytestmark = pytest.mark.anyio

MAX_SIZE = 4096
MAX_QUEUE = 16


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the server is an asyncio.Protocol


Handler = Callable[[WsConnection], Awaitable[None]]


@asynccontextmanager
async def serving(
    handler: Handler, *, max_size: int = MAX_SIZE, max_queue: int = MAX_QUEUE
) -> AsyncIterator[tuple[WsServer, str, int]]:
    async with WsServer.serve(
        handler, "127.0.0.1", 0, max_size=max_size, max_queue=max_queue
    ) as server:
        host, port = server.sockets[0].getsockname()[:2]
        yield server, host, port


def client(port: int, **kw: object) -> connect:
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 2)
    kw.setdefault("close_timeout", 2)
    return connect(f"ws://127.0.0.1:{port}/", **kw)  # type: ignore[arg-type]


async def echo(conn: WsConnection) -> None:
    async for msg in conn:
        if isinstance(msg, str):
            await conn.send(msg.encode())
        else:
            await conn.send(b"bytes:" + msg.hex().encode())


async def wait_closed(ws: ClientConnection) -> None:
    """Read until the server ends the connection (the exception says how)."""
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()


async def wait_until(cond: Callable[[], object], interval: float = 0.01) -> None:
    """Poll until `cond()` holds (bound the wait with the caller's `fail_after`)."""
    while not cond():  # noqa: ASYNC110 - polls state nothing signals
        await asyncio.sleep(interval)


# -- messages ---------------------------------------------------------------------------------


async def test_text_messages_are_echoed() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (_, _, port), client(port) as ws:
            for text in ("hello", "", "héllo wörld ✓", "x" * 3000):
                await ws.send(text)
                assert await ws.recv() == text


async def test_binary_messages_arrive_as_bytes() -> None:
    received: list[str | bytes] = []

    async def handler(conn: WsConnection) -> None:
        async for msg in conn:
            received.append(msg)
            await conn.send(repr(type(msg).__name__).encode())

    with anyio.fail_after(2):
        async with serving(handler) as (_, _, port), client(port) as ws:
            await ws.send(b"\x00\xff\x10")
            assert await ws.recv() == "'bytes'"
            await ws.send("text")
            assert await ws.recv() == "'str'"
    assert received == [b"\x00\xff\x10", "text"]


async def test_fragmented_messages_are_reassembled() -> None:
    received: list[str | bytes] = []

    async def handler(conn: WsConnection) -> None:
        async for msg in conn:
            received.append(msg)
            await conn.send(b"ok")

    with anyio.fail_after(2):
        async with serving(handler) as (_, _, port), client(port) as ws:
            await ws.send(["he", "l", "lo ", "wö", "rld"])
            assert await ws.recv() == "ok"
            await ws.send([b"\x01\x02", b"", b"\x03"])
            assert await ws.recv() == "ok"
            # A multi-byte character split across fragments is still valid UTF-8 as a whole.
            snowman = "☃".encode()
            await ws.send([snowman[:1], snowman[1:]], text=True)
            assert await ws.recv() == "ok"
            # Messages before and after a fragmented one are not mixed into it.
            await ws.send("a")
            await ws.send(["b", "c"])
            await ws.send("d")
            for _ in range(3):
                assert await ws.recv() == "ok"
    assert received == ["hello wörld", b"\x01\x02\x03", "☃", "a", "bc", "d"]


async def test_invalid_utf8_in_text_frame_closes_with_1007() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (_, _, port), client(port) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"
            await ws.send(b"ok \xff\xfe", text=True)
            await wait_closed(ws)
            assert ws.close_code == 1007


async def test_invalid_utf8_across_fragments_closes_with_1007() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (_, _, port), client(port) as ws:
            await ws.send([b"abc", b"\xc3"], text=True)  # truncated two-byte sequence
            await wait_closed(ws)
            assert ws.close_code == 1007


async def test_message_over_max_size_closes_with_1009() -> None:
    received: list[str | bytes] = []

    async def handler(conn: WsConnection) -> None:
        async for msg in conn:
            received.append(msg)

    with anyio.fail_after(2):
        async with serving(handler, max_size=100) as (_, _, port), client(port) as ws:
            await ws.send("x" * 100)  # exactly max_size: fine
            await ws.send("y" * 101)
            await wait_closed(ws)
            assert ws.close_code == 1009
    assert received == ["x" * 100]


async def test_fragmented_message_over_max_size_closes_with_1009() -> None:
    with anyio.fail_after(2):
        async with serving(echo, max_size=100) as (_, _, port), client(port) as ws:
            await ws.send(["x" * 60, "x" * 60])
            await wait_closed(ws)
            assert ws.close_code == 1009


async def test_ping_gets_a_pong() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (_, _, port), client(port) as ws:
            pong = await ws.ping(b"are you there")
            latency = await pong
            assert latency >= 0
            # The connection is still usable afterwards.
            await ws.send("after ping")
            assert await ws.recv() == "after ping"


async def test_pings_are_answered_while_the_handler_is_busy() -> None:
    release = asyncio.Event()

    async def handler(conn: WsConnection) -> None:
        await release.wait()
        await echo(conn)

    with anyio.fail_after(2):
        async with serving(handler) as (_, _, port), client(port) as ws:
            await (await ws.ping())
            release.set()
            await ws.send("x")
            assert await ws.recv() == "x"


# -- how connections end ----------------------------------------------------------------------


async def test_handler_returning_closes_with_1000() -> None:
    async def handler(conn: WsConnection) -> None:
        msg = await conn.recv()
        assert isinstance(msg, str)
        await conn.send(b"bye " + msg.encode())

    with anyio.fail_after(2):
        async with serving(handler) as (server, _, port), client(port) as ws:
            await ws.send("you")
            assert await ws.recv() == "bye you"
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000
            await wait_until(lambda: not server.connections)


async def test_handler_raising_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(conn: WsConnection) -> None:
        await conn.recv()
        raise RuntimeError("boom")

    with anyio.fail_after(2):
        async with serving(handler) as (_, _, port), client(port) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
            assert ws.close_code == 1011
    assert "connection handler failed" in caplog.text


async def test_close_with_code_and_reason() -> None:
    closed_after: list[bool] = []

    async def handler(conn: WsConnection) -> None:
        await conn.recv()
        await conn.close(1008, "x")
        closed_after.append(conn.open)

    with anyio.fail_after(2):
        async with serving(handler) as (_, _, port), client(port) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (1008, "x")
            await wait_until(lambda: closed_after)
    assert closed_after == [False]


async def test_send_after_close_raises_connection_closed() -> None:
    outcome: list[str] = []

    async def handler(conn: WsConnection) -> None:
        await conn.close(1000, "done")
        try:
            await conn.send(b"too late")
        except ws_server.ConnectionClosed:
            outcome.append("closed")
        try:
            await conn.recv()
        except ws_server.ConnectionClosed:
            outcome.append("closed")

    with anyio.fail_after(2):
        async with serving(handler) as (_, _, port), client(port) as ws:
            await wait_closed(ws)
            await wait_until(lambda: len(outcome) >= 2)
    assert outcome == ["closed", "closed"]


async def test_abort_drops_the_tcp_connection() -> None:
    async def handler(conn: WsConnection) -> None:
        await conn.recv()
        conn.abort()
        # The connection is gone at once: recv() ends instead of waiting for a message.
        with pytest.raises(ws_server.ConnectionClosed):
            await conn.recv()
        assert not conn.open

    with anyio.fail_after(2):
        async with serving(handler) as (server, _, port), client(port) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosedError) as exc_info:
                await ws.recv()
            # No close frame was received: an abnormal closure.
            assert exc_info.value.rcvd is None
            assert ws.close_code == 1006
            await wait_until(lambda: not server.connections)


async def test_abort_seen_on_a_raw_socket() -> None:
    async def handler(conn: WsConnection) -> None:
        conn.abort()

    with anyio.fail_after(2):
        async with serving(handler) as (_, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_handshake(host, port))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            # No close frame: the very next thing is EOF.
            assert await reader.read() == b""
            writer.close()


async def test_client_close_ends_the_handler() -> None:
    ended = asyncio.Event()

    async def handler(conn: WsConnection) -> None:
        try:
            async for _ in conn:
                pass
        finally:
            ended.set()

    with anyio.fail_after(2):
        async with serving(handler) as (server, _, port):
            async with client(port) as ws:
                await ws.send("hi")
            assert ws.close_code == 1000
            await ended.wait()
            await wait_until(lambda: not server.connections)


async def test_leaving_serve_closes_with_1001_and_cancels_stuck_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_server, "SHUTDOWN_TIMEOUT_S", 0.3)
    cancelled = asyncio.Event()
    reader_done = asyncio.Event()
    started = 0

    async def handler(conn: WsConnection) -> None:
        nonlocal started
        started += 1
        msg = await conn.recv()
        if msg == "stuck":
            try:
                await asyncio.Event().wait()  # never set: ignores the close
            except asyncio.CancelledError:
                cancelled.set()
                raise
        else:
            await conn.send(b"reading")
            async for _ in conn:
                pass
            reader_done.set()

    with anyio.fail_after(2):
        async with client_pair_with_server(handler) as (stuck_ws, reading_ws, timing):
            await stuck_ws.send("stuck")
            await reading_ws.send("read")
            assert await reading_ws.recv() == "reading"
            await wait_until(lambda: started >= 2)
        # serve() has been left
        assert time.monotonic() - timing[0] < 1.5
        for ws in (stuck_ws, reading_ws):
            await wait_closed(ws)
            assert (ws.close_code, ws.close_reason) == (1001, "gateway shutting down")
    assert cancelled.is_set()
    assert reader_done.is_set()


@asynccontextmanager
async def client_pair_with_server(
    handler: Handler,
) -> AsyncIterator[tuple[ClientConnection, ClientConnection, list[float]]]:
    """Two clients whose connections outlive the server: `timing[0]` is when serve() began to
    shut down."""
    timing: list[float] = []
    async with serving(handler) as (_, _, port):
        a = await client(port)
        b = await client(port)
        try:
            yield a, b, timing
        finally:
            timing.append(time.monotonic())
    # the clients are left open to be inspected, and closed by the caller's checks


async def test_leaving_serve_without_connections_is_quick() -> None:
    with anyio.fail_after(2):
        t0 = time.monotonic()
        async with serving(echo) as (server, _, port):
            assert server.sockets
        assert time.monotonic() - t0 < 1
        with pytest.raises(OSError):
            await client(port)


# -- bad input --------------------------------------------------------------------------------


def _handshake(host: str, port: int) -> bytes:
    return (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def test_plain_http_request_gets_an_error_response_and_is_closed() -> None:
    handled: list[WsConnection] = []

    async def handler(conn: WsConnection) -> None:
        handled.append(conn)

    with anyio.fail_after(2):
        async with serving(handler) as (server, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            response = await reader.read()  # until the server closes
            status_line = response.split(b"\r\n", 1)[0]
            assert status_line.startswith(b"HTTP/1.1 4"), response
            writer.close()
            await wait_until(lambda: not server.connections)
    assert handled == []


async def test_garbage_instead_of_http_is_closed() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (server, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n")
            assert not (await reader.read()).startswith(b"HTTP/1.1 101")
            writer.close()
            await wait_until(lambda: not server.connections)


async def test_unmasked_client_frame_is_a_protocol_error() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (_, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_handshake(host, port))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            writer.write(b"\x81\x02hi")  # FIN + TEXT, not masked: clients must mask
            rest = await reader.read()
            # A close frame with code 1002 (protocol error), then EOF.
            assert rest[:1] == b"\x88"
            assert int.from_bytes(rest[2:4], "big") == 1002
            writer.close()


async def test_client_vanishing_mid_message_ends_the_handler() -> None:
    ended = asyncio.Event()

    async def handler(conn: WsConnection) -> None:
        try:
            async for _ in conn:
                pass
        finally:
            ended.set()

    with anyio.fail_after(2):
        async with serving(handler) as (server, host, port):
            sock = socket.create_connection((host, port))
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(_handshake(host, port))
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"\x81\xfe")  # the start of a frame header, then nothing
            await writer.drain()
            writer.transport.abort()
            await ended.wait()
            await wait_until(lambda: not server.connections)


async def test_nothing_is_delivered_after_invalid_utf8() -> None:
    received: list[str | bytes] = []

    async def handler(conn: WsConnection) -> None:
        async for msg in conn:
            received.append(msg)

    with anyio.fail_after(2):
        async with serving(handler) as (server, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_handshake(host, port))
            await reader.readuntil(b"\r\n\r\n")
            # One write, so both frames arrive in one data_received call.
            writer.write(
                Frame(Opcode.TEXT, b"before").serialize(mask=True)
                + Frame(Opcode.TEXT, b"\xff").serialize(mask=True)
                + Frame(Opcode.TEXT, b"after").serialize(mask=True)
            )
            rest = await reader.read()
            assert rest[:1] == b"\x88" and int.from_bytes(rest[2:4], "big") == 1007
            writer.close()
            await wait_until(lambda: not server.connections)
    # The connection failed at the invalid frame: what came after it is not processed.
    assert received == ["before"]


async def test_open_timeout_drops_a_silent_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_server, "OPEN_TIMEOUT_S", 0.2)
    with anyio.fail_after(2):
        async with serving(echo) as (server, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
            t0 = time.monotonic()
            assert await reader.read() == b""
            assert time.monotonic() - t0 < 1
            writer.close()
            await wait_until(lambda: not server.connections)


async def test_close_timeout_drops_a_client_that_never_answers_the_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_server, "CLOSE_TIMEOUT_S", 0.2)
    waited: list[float] = []

    async def handler(conn: WsConnection) -> None:
        t0 = time.monotonic()
        await conn.close(1000, "bye")
        waited.append(time.monotonic() - t0)

    with anyio.fail_after(2):
        async with serving(handler) as (_, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_handshake(host, port))
            await reader.readuntil(b"\r\n\r\n")
            # A close frame arrives, no close frame is sent back: the server drops TCP.
            rest = await reader.read()
            assert rest[:1] == b"\x88" and rest[4:] == b"bye"
            writer.close()
            await wait_until(lambda: waited)
    assert 0.15 < waited[0] < 1


# -- flow control -----------------------------------------------------------------------------


async def test_backpressure_delivers_everything_in_order() -> None:
    n = 200
    received: list[str | bytes] = []
    may_read = asyncio.Event()
    paused_seen: list[bool] = []

    async def handler(conn: WsConnection) -> None:
        await may_read.wait()
        paused_seen.append(conn._reading_paused)
        async for msg in conn:
            received.append(msg)
            if len(received) == n:
                await conn.send(b"all")

    with anyio.fail_after(2):
        async with serving(handler, max_queue=2) as (_, _, port), client(port) as ws:
            for i in range(n):
                await ws.send(f"m{i:04d}" + "." * 200)
            await asyncio.sleep(0.3)  # the handler is not reading
            may_read.set()
            assert await ws.recv() == "all"
    assert received == [f"m{i:04d}" + "." * 200 for i in range(n)]
    assert paused_seen == [True]


async def test_backpressure_bounds_the_inbox() -> None:
    """While the handler does not read, the server stops reading: the inbox stays near
    max_queue although the client keeps writing (its data waits in the socket buffers)."""
    n, size, max_queue = 40, 100_000, 4
    observed: list[tuple[int, bool]] = []
    may_read = asyncio.Event()
    conns: list[WsConnection] = []

    async def handler(conn: WsConnection) -> None:
        conns.append(conn)
        await may_read.wait()
        count = 0
        async for msg in conn:
            assert msg == f"{count:03d}".encode() + bytes(size - 3)
            count += 1
            if count == n:
                await conn.send(b"done")

    async def send_all(ws: ClientConnection) -> None:
        for i in range(n):  # 4 MB: more than the socket buffers hold, so this blocks a while
            await ws.send(f"{i:03d}".encode() + bytes(size - 3))

    with anyio.fail_after(2):
        async with (
            serving(handler, max_size=size, max_queue=max_queue) as (_, _, port),
            client(port) as ws,
        ):
            sender = asyncio.create_task(send_all(ws))
            await asyncio.sleep(0.2)
            observed.append((len(conns[0]._inbox), conns[0]._reading_paused))
            may_read.set()
            assert await ws.recv() == "done"
            await sender
    # One read (at most 256 KiB) may complete a few messages past max_queue.
    inbox, paused = observed[0]
    assert paused
    assert max_queue <= inbox <= max_queue + 3


async def test_close_completes_while_reading_is_paused() -> None:
    outcome: list[str] = []

    async def handler(conn: WsConnection) -> None:
        await asyncio.sleep(0.2)  # the client fills the inbox meanwhile: reading pauses
        outcome.append(f"paused={conn._reading_paused}")
        with anyio.move_on_after(1):
            await conn.close(1008, "x")
            outcome.append("closed")
        outcome.append("done")

    with anyio.fail_after(2):
        async with serving(handler, max_queue=2) as (_, _, port):
            ws = await client(port)
            for i in range(50):
                await ws.send(str(i))
            await wait_until(lambda: "done" in outcome)
        await wait_closed(ws)
        assert (ws.close_code, ws.close_reason) == (1008, "x")
    # The client answered the close frame at once: the handshake should complete at once.
    assert outcome == ["paused=True", "closed", "done"]


async def test_server_send_waits_for_slow_reader() -> None:
    """send() blocks while the transport's buffer is over its high-water mark, and everything
    still arrives in order once the client reads."""
    n = 256
    chunk = "z" * 64 * 1024
    sent = asyncio.Event()

    async def handler(conn: WsConnection) -> None:
        for i in range(n):
            await conn.send(f"{i:03d}{chunk}".encode())
        sent.set()
        async for _ in conn:
            pass

    with anyio.fail_after(2):
        async with (
            serving(handler, max_size=1 << 20) as (_, _, port),
            client(port, max_size=1 << 20, max_queue=1) as ws,
        ):
            await asyncio.sleep(0.2)
            assert not sent.is_set()  # 16 MiB cannot all be buffered
            for i in range(n):
                msg = await ws.recv()
                assert isinstance(msg, str) and msg[:3] == f"{i:03d}"
            await sent.wait()


async def test_many_concurrent_connections() -> None:
    with anyio.fail_after(2):
        async with serving(echo) as (_, _, port):

            async def one(i: int) -> None:
                async with client(port) as ws:
                    for j in range(5):
                        await ws.send(f"{i}-{j}")
                        assert await ws.recv() == f"{i}-{j}"

            await asyncio.gather(*(one(i) for i in range(50)))


async def test_max_queue_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WsServer(echo, max_size=10, max_queue=0)


async def test_many_frames_in_one_segment_and_control_frames_between_them() -> None:
    """Whole frames are delivered by the fast path; a ping among them goes to the protocol
    (answered), and the frames after it still arrive, in order."""
    got: list[str | bytes] = []
    done = asyncio.Event()

    async def handler(conn: WsConnection) -> None:
        async for msg in conn:
            got.append(msg)
            if len(got) == 201:
                done.set()

    def frame(opcode: Opcode, data: bytes) -> bytes:
        return Frame(opcode, data).serialize(mask=True, extensions=[])

    async with WsServer.serve(handler, "127.0.0.1", 0, max_size=65536, max_queue=512) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        burst = [frame(Opcode.TEXT, f"m{i}".encode()) for i in range(100)]
        burst.append(frame(Opcode.PING, b"hi"))
        burst.append(frame(Opcode.BINARY, b"\x00\x01"))
        burst += [frame(Opcode.TEXT, ("x" * 300 + str(i)).encode()) for i in range(100)]
        writer.write(b"".join(burst))
        with anyio.fail_after(5):
            await done.wait()
            pong = await reader.readexactly(4)
        assert pong == b"\x8a\x02hi"
        assert got[:100] == [f"m{i}" for i in range(100)]
        assert got[100] == b"\x00\x01"
        assert got[101:] == ["x" * 300 + str(i) for i in range(100)]
        writer.close()
