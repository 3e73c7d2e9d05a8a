"""The gateway's websocket server: websockets' Sans-I/O protocol driven from a plain
`asyncio.Protocol`. asyncio only (uvloop in production).

`websockets.server.ServerProtocol` does everything RFC 6455 asks of a server — the opening
handshake, frame parsing and masking, fragmentation, ping/pong, the closing handshake, the
message size limit — and this module only moves bytes and messages: `data_received` feeds the
protocol, writes what it wants sent, and appends complete messages to the connection's inbox,
where the connection's one handler task takes them with `recv()`; `send()` frames a text
message and writes it at once. websockets' own asyncio connection class adds an assembler with a
future per message and an async context manager per send, which cost more per tap than the
framing itself (see docs/internals.md for the figures).

Limits: `max_size` bytes per message (bigger: closed with 1009), `max_queue` messages waiting in
an inbox (more: the connection stops reading until its handler catches up), `open_timeout` for
the opening handshake, `close_timeout` for the closing one (then the TCP connection is dropped),
and writes wait (`send` blocks) while the transport's buffer is over its high-water mark.

Pre-authentication limits (`PreAuthLimits`, when given): a connection counts as unauthenticated
from the moment it is accepted until its handler calls `mark_authenticated()`. Past
`per_address` such connections from one IP address, or `total` in all, a new TCP connection is
dropped at accept, before any byte is read (cheapest under a flood; the client retries later).
Each unauthenticated connection has one deadline, `deadline_s` from accept, on its own timer:
when it passes, `expired_frame` is sent (if the connection is open and writable) and the
connection closed with 1008, else dropped. A timer per connection, not a periodic sweep, so the
deadline holds at any number of connections.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C speedups
    from websockets.utils import apply_mask

log = logging.getLogger(__name__)

#: Seconds a client has to complete the opening handshake.
OPEN_TIMEOUT_S: Final = 10.0
#: Seconds the closing handshake may take before the TCP connection is dropped.
CLOSE_TIMEOUT_S: Final = 5.0
#: Seconds `WsServer.aclose` waits for handlers to finish before cancelling them.
SHUTDOWN_TIMEOUT_S: Final = 5.0

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


@dataclass(frozen=True, slots=True)
class PreAuthLimits:
    """Bounds on connections that have not authenticated yet (see the module docstring)."""

    deadline_s: float
    per_address: int
    total: int
    #: Sent when the deadline passes (e.g. the protocol's `timeout` error frame).
    expired_frame: bytes = b""


class ConnectionClosed(Exception):
    """The websocket connection is closed (or closing): nothing more to receive or send."""


Handler = Callable[["WsConnection"], Awaitable[None]]


class WsConnection(asyncio.Protocol):
    """One client connection. Its handler reads with `recv()` / `async for`, writes with
    `send()`, and ends it with `close()` (closing handshake) or `abort()` (drop TCP)."""

    def __init__(self, server: WsServer) -> None:
        self._server = server
        self._loop = server.loop
        self._proto = ServerProtocol(max_size=server.max_size, logger=log)
        self._transport: asyncio.Transport | None = None
        # The fast receive path needs the protocol's reader buffer (a websockets internal);
        # without it every byte goes through the protocol.
        reader = getattr(self._proto, "reader", None)
        self._fast = isinstance(getattr(reader, "buffer", None), bytearray)
        self._inbox: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        # Set once the connection is failing or closing: later messages are not handed over.
        self._discarding = False
        self._lost = False
        self._closed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        #: while unauthenticated under PreAuthLimits: the peer address counted, and its deadline
        self._preauth_address: str | None = None
        self._auth_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        limits = server.preauth
        if limits is not None:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if not server.admit(address):
                self._lost = True
                self._transport.abort()
                return
            self._preauth_address = address
            self._auth_timer = self._loop.call_later(limits.deadline_s, self._auth_expired)
        server.connections.add(self)
        self._set_timer(OPEN_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        proto = self._proto
        if self._fast:
            data = self._receive_whole_frames(data)
        if data:
            proto.receive_data(data)
            events = proto.events_received()
            self._flush()
            for event in events:
                if type(event) is Frame:
                    self._on_frame(event)
                elif isinstance(event, Request):
                    self._on_request(event)
        if self._timer is None and proto.close_expected():
            self._set_timer(CLOSE_TIMEOUT_S)

    def eof_received(self) -> bool | None:
        self._proto.receive_eof()
        self._proto.events_received()
        self._flush()
        self._wake()
        return None  # close the transport: a websocket never writes after the peer's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._end_preauth()
        self._server.connections.discard(self)
        self._wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self._closed.set()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _receive_whole_frames(self, data: bytes) -> bytes:
        """The fast path: deliver the complete, unfragmented, masked text or binary frames at
        the start of `data` ourselves, and return the rest (from the first frame that is
        anything else, or incomplete) for the Sans-I/O protocol, which handles and validates
        every other case. Taken only while the protocol holds no partial data and expects no
        continuation, so the rest always starts on a frame boundary for it."""
        proto = self._proto
        if (
            proto.state is not State.OPEN
            or self._discarding
            or self._fragments
            or proto.current_size is not None
            or proto.reader.buffer
        ):
            return data
        pos, end = 0, len(data)
        max_size = self._server.max_size
        while end - pos >= 6:
            b0 = data[pos]
            if b0 != 0x81 and b0 != 0x82:  # FIN + text / binary, no RSV bits
                break
            length = data[pos + 1] ^ 0x80  # the mask bit must be set
            head = pos + 2
            if length >= 126:
                if length != 126 or end - pos < 8:
                    break
                length = int.from_bytes(data[head : head + 2], "big")
                if length < 126:  # not the minimal encoding: the protocol refuses it
                    break
                head += 2
            if length > max_size:
                break
            stop = head + 4 + length
            if stop > end:
                break
            payload = apply_mask(data[head + 4 : stop], data[head : head + 4])
            pos = stop
            self._deliver(payload, b0 == 0x81)
            if self._discarding:  # invalid UTF-8: the protocol failed the connection
                return b""
        return data[pos:] if pos else data

    # -- protocol events ---------------------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        proto = self._proto
        response = proto.accept(request)
        proto.send_response(response)
        self._flush()
        if proto.state is State.OPEN:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._task = self._loop.create_task(self._server.run_handler(self))

    def _on_frame(self, frame: Frame) -> None:
        if self._discarding:
            return
        opcode = frame.opcode
        # The parser hands out bytes; the wider type is for frames being sent.
        data = cast(bytes, frame.data)
        if opcode is _TEXT or opcode is _BINARY:
            if frame.fin:
                self._deliver(data, opcode is _TEXT)
            else:
                self._fragments = [data]
                self._fragmented_text = opcode is _TEXT
        elif opcode is _CONT:
            self._fragments.append(data)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._deliver(data, self._fragmented_text)
        # PING, PONG and CLOSE are answered by the protocol itself.

    def _deliver(self, data: bytes, text: bool) -> None:
        message: str | bytes
        if text:
            try:
                message = data.decode()
            except UnicodeDecodeError as exc:
                self._discard_from_now()
                self._proto.fail(1007, f"{exc.reason} at position {exc.start}")
                self._flush()
                self._wake()
                return
        else:
            message = data
        inbox = self._inbox
        inbox.append(message)
        if len(inbox) >= self._server.max_queue and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    # -- helpers ---------------------------------------------------------------------------

    def _discard_from_now(self) -> None:
        """No more messages for the handler; keep reading so the peer's close gets through."""
        self._discarding = True
        if self._reading_paused:
            self._reading_paused = False
            if self._transport is not None and not self._lost:
                self._transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or self._lost:
            return
        for data in self._proto.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                try:
                    transport.write_eof()
                except Exception:  # uvloop may raise RuntimeError on a closing transport
                    transport.close()
            else:
                transport.close()

    def _set_timer(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self.abort)

    # -- the handler's API -----------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._proto.state is State.OPEN and not self._lost

    async def recv(self) -> str | bytes:
        """The next message (`str` for a text message, `bytes` for binary);
        `ConnectionClosed` once the connection is closing and no message is left."""
        inbox = self._inbox
        while not inbox:
            if self._lost or self._proto.state is not State.OPEN:
                raise ConnectionClosed()
            waiter = self._waiter = self._loop.create_future()
            await waiter
        message = inbox.popleft()
        if self._reading_paused and len(inbox) <= self._server.max_queue // 4:
            self._reading_paused = False
            if self._transport is not None and not self._lost:
                self._transport.resume_reading()
        return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosed:
            return

    async def send(self, message: bytes) -> None:
        """Send `message` (UTF-8 bytes) as one text frame; waits while the peer is slow to
        read. `ConnectionClosed` if the connection is no longer open."""
        if self._lost or self._proto.state is not State.OPEN:
            raise ConnectionClosed()
        n = len(message)
        transport = self._transport
        if n < 126 and transport is not None:
            # A complete text frame, server to client (unmasked): framed here, as the protocol
            # would, without its per-frame objects.
            transport.write(bytes((0x81, n)) + message)
        elif n < 65536 and transport is not None:
            transport.write(b"\x81\x7e" + n.to_bytes(2, "big") + message)
        else:
            self._proto.send_text(message)
            self._flush()
        if self._writing_paused:
            drain = self._drain
            if drain is None or drain.done():
                drain = self._drain = self._loop.create_future()
            await drain

    def send_nowait(self, message: bytes) -> bool:
        """Send `message` as one text frame unless the connection is closed or its peer is not
        reading (writes paused): then nothing is sent and the answer is False. For pushes to
        many connections, where one slow reader must not hold up the others."""
        if self._lost or self._proto.state is not State.OPEN or self._writing_paused:
            return False
        n = len(message)
        transport = self._transport
        if transport is None:
            return False
        if n < 126:
            transport.write(bytes((0x81, n)) + message)
        elif n < 65536:
            transport.write(b"\x81\x7e" + n.to_bytes(2, "big") + message)
        else:
            self._proto.send_text(message)
            self._flush()
        return True

    def mark_authenticated(self) -> None:
        """The peer has authenticated: it no longer counts against PreAuthLimits and its
        deadline is lifted."""
        self._end_preauth()

    def _end_preauth(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self._preauth_address is not None:
            self._server.release(self._preauth_address)
            self._preauth_address = None

    def _auth_expired(self) -> None:
        self._auth_timer = None
        limits = self._server.preauth
        self._server.preauth_expired += 1
        frame = limits.expired_frame if limits is not None else b""
        if frame and self.send_nowait(frame):
            # Say why and send the close frame, but do not wait for the peer's close: a peer
            # that never authenticated gets no closing handshake (it may never answer), only
            # the flush of what was written, then the TCP close.
            self._discard_from_now()
            self._proto.send_close(1008, "timeout")
            self._flush()
        if self._transport is not None:
            self._transport.close()

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (if open) and drop the TCP connection if the closing handshake
        is not done within CLOSE_TIMEOUT_S; a connection still in its opening handshake is
        dropped at once."""
        if self._proto.state is State.OPEN and not self._lost:
            self._discard_from_now()
            self._proto.send_close(code, reason)
            self._flush()
            self._set_timer(CLOSE_TIMEOUT_S)
        elif self._proto.state is State.CONNECTING:
            self.abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait (at most CLOSE_TIMEOUT_S) for the connection
        to end."""
        self.start_close(code, reason)
        await self._closed.wait()

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        self._timer = None
        if self._transport is not None:
            self._transport.close()


class WsServer:
    """Accepts connections and runs `handler(connection)` for each opened one, in its own task.

    Use `async with WsServer.serve(handler, host, port, ...) as server:`; leaving closes every
    connection (1001 going away), waits for their handlers up to SHUTDOWN_TIMEOUT_S, cancels
    the rest and drops what is still connected."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_size: int,
        max_queue: int,
        preauth: PreAuthLimits | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.preauth = preauth
        #: unauthenticated connections now, per peer address and in all
        self._preauth_by_address: dict[str, int] = {}
        self.preauth_open = 0
        #: connections dropped at accept by PreAuthLimits, and deadlines that passed
        self.preauth_refused = 0
        self.preauth_expired = 0
        self.loop = asyncio.get_running_loop()
        self.handler = handler
        self.max_size = max_size
        self.max_queue = max_queue
        self.connections: set[WsConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    def admit(self, address: str) -> bool:
        """Count a new unauthenticated connection from `address`, or refuse it."""
        limits = self.preauth
        assert limits is not None
        n = self._preauth_by_address.get(address, 0)
        if n >= limits.per_address or self.preauth_open >= limits.total:
            self.preauth_refused += 1
            return False
        self._preauth_by_address[address] = n + 1
        self.preauth_open += 1
        return True

    def release(self, address: str) -> None:
        n = self._preauth_by_address.get(address, 0) - 1
        if n > 0:
            self._preauth_by_address[address] = n
        else:
            self._preauth_by_address.pop(address, None)
        self.preauth_open -= 1

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._server is None else tuple(self._server.sockets)

    @classmethod
    @asynccontextmanager
    async def serve(
        cls,
        handler: Handler,
        host: str,
        port: int,
        *,
        max_size: int,
        max_queue: int,
        preauth: PreAuthLimits | None = None,
    ) -> AsyncIterator[WsServer]:
        server = cls(handler, max_size=max_size, max_queue=max_queue, preauth=preauth)
        server._server = await server.loop.create_server(
            lambda: WsConnection(server), host, port, backlog=1024
        )
        try:
            yield server
        finally:
            await server.aclose()

    async def run_handler(self, conn: WsConnection) -> None:
        """The task of one open connection: its handler, then the closing handshake."""
        task = cast("asyncio.Task[None]", asyncio.current_task())
        self._tasks.add(task)
        code = 1000
        try:
            await self.handler(conn)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("connection handler failed")
            code = 1011
        finally:
            self._tasks.discard(task)
        conn.start_close(code)

    async def aclose(self) -> None:
        """Stop accepting, close every connection (1001), wait for the handlers."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.start_close(1001, "gateway shutting down")
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
