"""Minimal, fast RFC 6455 websocket client on raw asyncio (works under uvloop).

Built for load generation: one ``asyncio.Protocol`` per connection, no per-message
task or future, incremental frame parsing straight out of ``data_received``.

Masking: RFC 6455 requires every client frame to be masked, but any 32-bit key is
legal -- including ``00 00 00 00``, for which masking is the identity, so a payload
can be written without being copied or XOR-ed. The mask only exists to stop a
*browser* script from making a frame's bytes predictable to a broken intermediary
proxy (cache poisoning, RFC 6455 section 10.3). A load client on loopback runs
trusted code and crosses no proxy, so a fixed zero key costs nothing in safety.
A production terminal must use a fresh random key per frame (``random_mask=True``).

Not supported (by design): TLS, extensions (permessage-deflate is never offered,
and a server that accepts one anyway is rejected), subprotocol negotiation,
UTF-8 validation of received text (payloads are handed over as raw ``bytes``).
Fragmented messages are reassembled.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import os
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Final, cast

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "HandshakeError",
    "WsClosed",
    "WsConnection",
    "WsError",
    "accept_key",
    "connect",
]

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK: Final = b"\x00\x00\x00\x00"
_MAX_HANDSHAKE: Final = 64 * 1024
_U16: Final = struct.Struct("!H")
_U64: Final = struct.Struct("!Q")

MessageCallback = Callable[[bytes], None]
CloseCallback = Callable[[int | None, str], None]


class WsError(Exception):
    """Base class of this module's errors."""


class HandshakeError(WsError):
    """The HTTP upgrade failed or the server's answer is not a valid websocket accept."""


class WsClosed(WsError):
    """The connection is closed; ``code``/``reason`` come from the close frame, if any."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"websocket closed (code={code}, reason={reason!r})")
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _frame_header(opcode: int, length: int) -> bytes:
    """FIN + opcode, MASK bit + length (7/16/64-bit); the 4-byte key is appended by callers."""
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length))
    if length < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + _U16.pack(length)
    return bytes((0x80 | opcode, 0x80 | 127)) + _U64.pack(length)


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the repeating 4-byte ``key`` (one big-int XOR, no Python loop)."""
    n = len(payload)
    if n == 0:
        return payload
    reps = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(reps, "little")).to_bytes(
        n, "little"
    )


class WsConnection(asyncio.Protocol):
    """One client websocket connection. Create it with :func:`connect`.

    Two ways to consume messages (text and binary alike, payload as ``bytes``):

    * ``await conn.recv()`` -- messages are queued until read;
    * ``conn.on_message = callback`` -- called synchronously from the event loop for
      every message, nothing is queued (what the load generator uses).

    ``on_close(code, reason)`` is called once when the connection ends (code is
    ``None`` if the TCP connection dropped without a close frame).
    """

    def __init__(
        self,
        key: str,
        *,
        max_frame: int,
        max_message: int,
        random_mask: bool,
    ) -> None:
        self.on_message: MessageCallback | None = None
        self.on_close: CloseCallback | None = None
        self.on_pong: MessageCallback | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.max_frame = max_frame
        self.max_message = max_message
        self._key = key
        self._random_mask = random_mask
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshake_done = False
        self._buf = bytearray()
        self._frag_opcode: int | None = None
        self._frag_parts: list[bytes] = []
        self._frag_size = 0
        self._queue: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._close_sent = False
        self._close_received = False
        self._input_done = False
        self._closed = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the TCP connection was lost."""
        return self._closed or self._close_sent or self._input_done

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued in the transport, not yet handed to the kernel."""
        t = self._transport
        return 0 if t is None else t.get_write_buffer_size()

    def send_text(self, data: bytes | str) -> None:
        """Send one TEXT frame (``bytes`` are sent as-is: they must be UTF-8)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._send_frame(OP_TEXT, data)

    def send_binary(self, data: bytes) -> None:
        """Send one BINARY frame."""
        self._send_frame(OP_BINARY, data)

    def ping(self, data: bytes = b"") -> None:
        """Send a PING; the PONG is reported to ``on_pong`` if set."""
        if len(data) > 125:
            raise ValueError("control frame payload is limited to 125 bytes")
        self._send_frame(OP_PING, data)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self._closed:
            raise WsClosed(self.close_code, self.close_reason)
        if self._write_paused:
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut

    def take_queued(self) -> list[bytes]:
        """The messages queued for `recv()` and not read yet (e.g. what followed a handshake
        answer), removed from the queue: hand them to `on_message` after setting it."""
        queued = list(self._queue)
        self._queue.clear()
        return queued

    async def recv(self) -> bytes:
        """The next message's payload; raises :class:`WsClosed` once closed and drained."""
        if self.on_message is not None:
            raise RuntimeError("recv() cannot be used while on_message is set")
        while not self._queue:
            if self._closed or self._input_done:
                raise WsClosed(self.close_code, self.close_reason)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def close(self, code: int = 1000, reason: str = "", close_timeout: float = 2.0) -> None:
        """Closing handshake: send CLOSE, wait for the server's CLOSE and TCP close.

        After ``close_timeout`` seconds the TCP connection is aborted.
        """
        if not self._closed and not self._close_sent:
            self._send_close(code, reason)
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), close_timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is gone."""
        await asyncio.shield(self._lost)

    # ------------------------------------------------------------------ sending

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        t = self._transport
        if t is None or self._close_sent or self._closed:
            raise WsClosed(self.close_code, self.close_reason)
        if self._random_mask:
            key = os.urandom(4)
            t.write(_frame_header(opcode, len(payload)) + key + _apply_mask(payload, key))
        else:
            # Zero key: the masked payload is the payload itself (see module docstring).
            t.write(_frame_header(opcode, len(payload)) + _ZERO_MASK + payload)

    def _send_close(self, code: int, reason: str) -> None:
        # A control frame carries at most 125 bytes: cut the reason on a character boundary.
        text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
        payload = _U16.pack(code) + text
        self._send_frame(OP_CLOSE, payload)
        self._close_sent = True

    # ------------------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not a subclass of asyncio.Transport, though it behaves as one.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_handshake(self, host: str, port: int, path: str, headers: Mapping[str, str]) -> None:
        assert self._transport is not None
        host_hdr = f"[{host}]" if ":" in host else host
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host_hdr}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def wait_handshake(self) -> None:
        await self._handshake

    def data_received(self, data: bytes) -> None:
        if not self._handshake_done:
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HANDSHAKE:
                    self._fail_handshake("response headers too large")
                return
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            error = self._check_response(head)
            if error is not None:
                self._fail_handshake(error)
                return
            self._handshake_done = True
            if not self._handshake.done():
                self._handshake.set_result(None)
            if not self._buf:
                return
            data = bytes(self._buf)
            self._buf.clear()
        if self._input_done:
            return  # nothing may follow a CLOSE frame or a protocol error
        if self._buf:
            self._buf += data
            used = self._parse(self._buf)
            del self._buf[:used]
        else:
            # Fast path: parse the chunk in place, keep only an incomplete tail.
            used = self._parse(data)
            if used < len(data):
                self._buf += data[used:]

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._transport = None
        self._handshake_failed(HandshakeError(f"connection lost during handshake: {exc!r}"))
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._wake_reader()
        self._wake_drainers()
        if not self._lost.done():
            self._lost.set_result(None)
        cb = self.on_close
        if cb is not None:
            self.on_close = None
            cb(self.close_code, self.close_reason)

    # ------------------------------------------------------------------ internals

    def _check_response(self, head: bytes) -> str | None:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            return "undecodable response"
        status, *header_lines = text.split("\r\n")
        parts = status.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "101":
            return f"unexpected status line {status!r}"
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                return f"malformed header line {line!r}"
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if headers.get("upgrade", "").lower() != "websocket":
            return "missing 'Upgrade: websocket'"
        tokens = {tok.strip().lower() for tok in headers.get("connection", "").split(",")}
        if "upgrade" not in tokens:
            return "missing 'Connection: Upgrade'"
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            return "bad Sec-WebSocket-Accept"
        if headers.get("sec-websocket-extensions"):
            return "server enabled an extension that was not offered"
        return None

    def _fail_handshake(self, why: str) -> None:
        self._handshake_failed(HandshakeError(why))
        self.abort()

    def _handshake_failed(self, exc: HandshakeError) -> None:
        fut = self._handshake
        if not fut.done():
            fut.set_exception(exc)
            fut.exception()  # connect() re-raises it; don't log it if connect gave up first

    def _fail(self, code: int, why: str) -> None:
        """Protocol violation by the server: close with ``code`` and drop the connection."""
        self.close_code = code
        self.close_reason = why
        self._input_done = True  # nothing more is parsed
        if not self._close_sent and self._transport is not None:
            self._send_close(code, why)
        if self._transport is not None:
            self._transport.close()

    def _parse(self, buf: bytes | bytearray) -> int:
        """Consume every complete frame in ``buf``; return the number of bytes used."""
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = _U16.unpack_from(buf, pos + 2)[0]
                hdr = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = _U64.unpack_from(buf, pos + 2)[0]
                hdr = 10
                if length >> 63:
                    self._fail(1002, "64-bit length with MSB set")
                    return end
            if b1 & 0x80:
                self._fail(1002, "server frames must not be masked")
                return end
            if b0 & 0x70:
                self._fail(1002, "reserved bits set without a negotiated extension")
                return end
            if length > self.max_frame:
                self._fail(1009, "frame too big")
                return end
            start = pos + hdr
            stop = start + length
            if stop > end:
                break
            payload = bytes(buf[start:stop])
            pos = stop
            self._on_frame(b0 & 0x80, b0 & 0x0F, payload)
            if self._input_done:
                return end
        return pos

    def _on_frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if self._frag_opcode is not None:
                self._fail(1002, "new data frame inside a fragmented message")
                return
            if fin:
                self._deliver(payload)
            else:
                self._frag_opcode = opcode
                self._frag_parts = [payload]
                self._frag_size = len(payload)
        elif opcode == OP_CONT:
            if self._frag_opcode is None:
                self._fail(1002, "continuation frame without a started message")
                return
            self._frag_parts.append(payload)
            self._frag_size += len(payload)
            if self._frag_size > self.max_message:
                self._fail(1009, "message too big")
                return
            if fin:
                message = b"".join(self._frag_parts)
                self._frag_opcode = None
                self._frag_parts = []
                self._frag_size = 0
                self._deliver(message)
        elif opcode >= 0x8:
            if not fin or len(payload) > 125:
                self._fail(1002, "invalid control frame")
            elif opcode == OP_PING:
                if not self._close_sent:
                    self._send_frame(OP_PONG, payload)
            elif opcode == OP_PONG:
                if self.on_pong is not None:
                    self.on_pong(payload)
            elif opcode == OP_CLOSE:
                self._on_close_frame(payload)
            else:
                self._fail(1002, f"unknown control opcode {opcode:#x}")
        else:
            self._fail(1002, f"unknown data opcode {opcode:#x}")

    def _on_close_frame(self, payload: bytes) -> None:
        if len(payload) == 1:
            self._fail(1002, "close frame with a 1-byte payload")
            return
        if len(payload) >= 2:
            self.close_code = _U16.unpack_from(payload)[0]
            self.close_reason = payload[2:].decode("utf-8", "replace")
        else:
            self.close_code = 1005
        self._close_received = True
        self._input_done = True
        if not self._close_sent and self._transport is not None:
            # Echo the status code; the server then closes the TCP connection.
            echo = 1000 if self.close_code in (1005, None) else self.close_code
            self._send_close(echo, "")
        self._wake_reader()
        # RFC 6455 7.1.1: the server should close TCP first; don't wait forever for it.
        if self._transport is not None:
            self._abort_timer = asyncio.get_running_loop().call_later(2.0, self.abort)

    def _deliver(self, payload: bytes) -> None:
        cb = self.on_message
        if cb is not None:
            cb(payload)
            return
        self._queue.append(payload)
        self._wake_reader()

    def _wake_reader(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


async def connect(
    host: str,
    port: int,
    path: str = "/",
    *,
    max_frame: int = 1 << 20,
    max_message: int | None = None,
    headers: Mapping[str, str] | None = None,
    open_timeout: float = 10.0,
    random_mask: bool = False,
) -> WsConnection:
    """Open a TCP connection to ``host:port`` and perform the websocket upgrade on ``path``.

    ``max_frame`` bounds one received frame's payload, ``max_message`` (default:
    ``max_frame``) a reassembled fragmented message; larger ones close with 1009.
    ``random_mask=True`` masks with a fresh random key per frame, as a production
    client must; the default zero key is free (see the module docstring).
    """
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    limit = max_frame if max_message is None else max_message

    def factory() -> WsConnection:
        return WsConnection(key, max_frame=max_frame, max_message=limit, random_mask=random_mask)

    async def _open() -> WsConnection:
        _, proto = await loop.create_connection(factory, host, port)
        try:
            proto.send_handshake(host, port, path, headers or {})
            await proto.wait_handshake()
        except BaseException:
            proto.abort()
            raise
        return proto

    return await asyncio.wait_for(_open(), open_timeout)
