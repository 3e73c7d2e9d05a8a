"""The lean websocket client against a real ``websockets`` server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from terminal_sim.wsclient import (
    HandshakeError,
    WsClosed,
    WsConnection,
    _apply_mask,
    accept_key,
    connect,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@asynccontextmanager
async def server(handler: Handler = echo, **kwargs: Any) -> AsyncIterator[int]:
    kwargs.setdefault("compression", None)
    async with serve(handler, "127.0.0.1", 0, **kwargs) as srv:
        yield next(iter(srv.sockets)).getsockname()[1]


def test_accept_key_rfc_example() -> None:
    # RFC 6455 section 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_mask_roundtrip() -> None:
    key = b"\x01\x02\x03\x04"
    data = bytes(range(256)) * 3 + b"xyz"
    masked = _apply_mask(data, key)
    assert masked != data
    assert bytes(b ^ key[i % 4] for i, b in enumerate(data)) == masked
    assert _apply_mask(masked, key) == data


async def test_echo_text_recv() -> None:
    async with server() as port:
        conn = await connect("127.0.0.1", port)
        for i in range(50):
            conn.send_text(f"msg {i} é")
        conn.send_text(b'{"seq":1}')
        got = [await conn.recv() for _ in range(51)]
        assert got[:50] == [f"msg {i} é".encode() for i in range(50)]
        assert got[50] == b'{"seq":1}'
        await conn.close()
        assert conn.closed


@pytest.mark.parametrize("random_mask", [False, True])
async def test_frame_lengths_both_directions(random_mask: bool) -> None:
    # 7-bit, 16-bit (126..65535) and 64-bit (>= 65536) lengths, sent and received.
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 300_000]
    async with server(max_size=1 << 22) as port:
        conn = await connect("127.0.0.1", port, max_frame=1 << 22, random_mask=random_mask)
        for n in sizes:
            payload = bytes((i * 7) % 94 + 33 for i in range(n))
            conn.send_text(payload)
            assert await conn.recv() == payload
        await conn.close()


async def test_binary_and_fragmented_messages_from_server() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"\x00\x01binary")
        await ws.send(["frag", "mented ", "text"])  # three frames, FIN on the last
        await ws.send("after")
        await ws.wait_closed()

    async with server(handler) as port:
        conn = await connect("127.0.0.1", port)
        assert await conn.recv() == b"\x00\x01binary"
        assert await conn.recv() == b"fragmented text"
        assert await conn.recv() == b"after"
        await conn.close()


async def test_callback_interface() -> None:
    got: list[bytes] = []
    done = asyncio.Event()

    def on_message(payload: bytes) -> None:
        got.append(payload)
        if len(got) == 200:
            done.set()

    async with server() as port:
        conn = await connect("127.0.0.1", port)
        conn.on_message = on_message
        for i in range(200):
            conn.send_text(b"%d" % i)
        await asyncio.wait_for(done.wait(), 5)
        assert got == [b"%d" % i for i in range(200)]
        with pytest.raises(RuntimeError):
            await conn.recv()
        await conn.close()


async def test_answers_server_ping() -> None:
    async def handler(ws: ServerConnection) -> None:
        pong = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(pong, 2)
        await ws.send(f"pong ok {latency >= 0}")
        await ws.wait_closed()

    async with server(handler) as port:
        conn = await connect("127.0.0.1", port)
        assert await asyncio.wait_for(conn.recv(), 3) == b"pong ok True"
        await conn.close()


async def test_client_ping_gets_pong() -> None:
    async with server() as port:
        conn = await connect("127.0.0.1", port)
        pongs: asyncio.Queue[bytes] = asyncio.Queue()
        conn.on_pong = pongs.put_nowait
        conn.ping(b"hello")
        assert await asyncio.wait_for(pongs.get(), 2) == b"hello"
        with pytest.raises(ValueError):
            conn.ping(b"x" * 126)
        await conn.close()


async def test_server_initiated_close() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("last words")
        await ws.close(4001, "bye now")

    closes: list[tuple[int | None, str]] = []
    async with server(handler) as port:
        conn = await connect("127.0.0.1", port)
        conn.on_close = lambda code, reason: closes.append((code, reason))
        assert await conn.recv() == b"last words"
        with pytest.raises(WsClosed) as info:
            await conn.recv()
        assert (info.value.code, info.value.reason) == (4001, "bye now")
        await asyncio.wait_for(conn.wait_closed(), 3)
        assert closes == [(4001, "bye now")]
        with pytest.raises(WsClosed):
            conn.send_text("too late")


async def test_client_initiated_close_is_clean() -> None:
    seen: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        rcvd = ws.close_code, ws.close_reason
        seen.set_result(rcvd)

    async with server(handler) as port:
        conn = await connect("127.0.0.1", port)
        conn.send_text("x")
        assert await conn.recv() == b"x"
        await conn.close(1000, "done")
        assert await asyncio.wait_for(seen, 3) == (1000, "done")
        assert conn.close_code == 1000  # the server's echoed close frame


async def test_oversized_frame_closes_1009() -> None:
    seen: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.send("y" * 5000)
        await ws.wait_closed()
        seen.set_result(ws.close_code)

    async with server(handler) as port:
        conn = await connect("127.0.0.1", port, max_frame=1000)
        with pytest.raises(WsClosed) as info:
            await conn.recv()
        assert info.value.code == 1009
        assert await asyncio.wait_for(seen, 3) == 1009


async def test_rejected_upgrade_raises() -> None:
    def deny(conn: ServerConnection, request: Request) -> Response:
        return conn.respond(403, "no\n")

    async with server(process_request=deny) as port:
        with pytest.raises(HandshakeError, match="403"):
            await connect("127.0.0.1", port)


async def test_bad_accept_key_raises() -> None:
    async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: bogus\r\n\r\n"
        )
        await writer.drain()
        await reader.read()
        writer.close()

    srv = await asyncio.start_server(fake, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError, match="Accept"):
            await connect("127.0.0.1", port)


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _handshake_response(conn: WsConnection) -> bytes:
    accept = accept_key(conn._key).encode()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def _server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return bytes((b0, 126)) + struct.pack("!H", n) + payload
    return bytes((b0, 127)) + struct.pack("!Q", n) + payload


async def test_incremental_parser_any_split() -> None:
    """Frames split at every possible byte boundary, and many frames per chunk."""
    stream = (
        _server_frame(0x1, b"a" * 10)
        + _server_frame(0x2, b"b" * 300)
        + _server_frame(0x9, b"ping!")
        + _server_frame(0x1, b"frag-", fin=False)
        + _server_frame(0x0, b"c" * 70_000)
        + _server_frame(0x1, b"")
    )
    expected = [b"a" * 10, b"b" * 300, b"frag-" + b"c" * 70_000, b""]
    for chunk in (1, 2, 3, 7, 64, 4096, len(stream)):
        conn = WsConnection("k", max_frame=1 << 20, max_message=1 << 20, random_mask=False)
        transport = _FakeTransport()
        conn.connection_made(transport)
        conn.data_received(_handshake_response(conn))
        got: list[bytes] = []
        conn.on_message = got.append
        for pos in range(0, len(stream), chunk):
            conn.data_received(stream[pos : pos + chunk])
        assert got == expected, chunk
        # The ping was answered with a masked pong carrying the same payload.
        assert transport.written == [bytes((0x8A, 0x80 | 5)) + b"\x00\x00\x00\x00" + b"ping!"]


async def test_protocol_violations_close_1002() -> None:
    bad_frames = [
        bytes((0x81, 0x80 | 1)) + b"\x00\x00\x00\x00x",  # masked server frame
        bytes((0xC1, 1)) + b"x",  # RSV1 without extension
        _server_frame(0x0, b"orphan continuation"),
        _server_frame(0x9, b"p", fin=False),  # fragmented control frame
        _server_frame(0x3, b"reserved opcode"),
    ]
    for frame in bad_frames:
        conn = WsConnection("k", max_frame=1 << 20, max_message=1 << 20, random_mask=False)
        transport = _FakeTransport()
        conn.connection_made(transport)
        conn.data_received(_handshake_response(conn))
        conn.data_received(frame + _server_frame(0x1, b"ignored"))
        assert conn.close_code == 1002, frame
        assert transport.closed
        assert transport.written[0][:2] == bytes((0x88, 0x80 | len(transport.written[0]) - 6))
        conn.connection_lost(None)
        with pytest.raises(WsClosed):
            await conn.recv()
