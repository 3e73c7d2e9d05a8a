"""`RedisPipe`: one lean, pipelined Redis connection for the tap path's group commits and card
loads. asyncio only.

redis-py reads a pipeline's replies one coroutine call each (``await conn.read_response()``
through several layers per reply); on the tap path that cost more than building the commands.
Here the connection is a plain `asyncio.Protocol`: `data_received` feeds hiredis and hands each
complete reply to the batch waiting for it, in order, and the batch's future is resolved when its
last reply arrives. Commands go out pre-encoded as RESP (the caller encodes them), a batch in one
`transport.write`.

Error replies come back as `hiredis.ReplyError` values in the reply list (one failing command
does not fail its batch). A connection that breaks, times out or sends what hiredis cannot parse
is closed and every batch on it fails with `PipeError` (the caller cannot know which commands
ran); the next `round_trip` connects afresh. `redis://`, `rediss://` (TLS) and `unix://` URLs
are understood, with username, password and database number.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, cast

import hiredis
from redis.asyncio.connection import parse_url

#: Batches sent and not yet answered on one connection; more waits are refused.
MAX_BATCHES_IN_FLIGHT: Final = 64


class PipeError(ConnectionError):
    """The connection failed, timed out or broke the protocol; the batch's outcome is unknown."""


def resp_bulk(b: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(b), b)


def resp_command(*args: bytes) -> bytes:
    """One command as RESP (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(map(resp_bulk, args))


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, from a Redis URL."""

    host: str | None
    port: int
    path: str | None
    tls: bool
    username: str | None
    password: str | None
    db: int

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        kw: dict[str, Any] = dict(parse_url(url))
        path = kw.get("path")
        tls = url.startswith("rediss://")
        return cls(
            host=None if path else str(kw.get("host", "localhost")),
            port=int(kw.get("port", 6379)),
            path=str(path) if path else None,
            tls=tls,
            username=kw.get("username"),
            password=kw.get("password"),
            db=int(kw.get("db", 0) or 0),
        )

    def setup_commands(self) -> list[bytes]:
        cmds: list[bytes] = []
        if self.password is not None:
            if self.username:
                cmds.append(resp_command(b"AUTH", self.username.encode(), self.password.encode()))
            else:
                cmds.append(resp_command(b"AUTH", self.password.encode()))
        if self.db:
            cmds.append(resp_command(b"SELECT", b"%d" % self.db))
        return cmds


class _Batch:
    __slots__ = ("expected", "future", "replies")

    def __init__(self, expected: int, future: asyncio.Future[list[Any]]) -> None:
        self.expected = expected
        self.future = future
        self.replies: list[Any] = []


class _RespProtocol(asyncio.Protocol):
    """Replies, in order, to the batches waiting on this connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Batch] = deque()
        self._reader = hiredis.Reader()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self.waiting
        try:
            reply = reader.gets()
            while reply is not False:
                if not waiting:
                    raise PipeError("a reply nobody asked for")
                batch = waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.expected:
                    waiting.popleft()
                    if not batch.future.done():
                        batch.future.set_result(batch.replies)
                reply = reader.gets()
        except (hiredis.ProtocolError, PipeError) as exc:
            self.fail(PipeError(f"protocol error from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(PipeError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, err: PipeError) -> None:
        """Fail every waiting batch and close (idempotent)."""
        self.lost = True
        waiting = self.waiting
        while waiting:
            fut = waiting.popleft().future
            if not fut.done():
                fut.set_exception(err)
        if self.transport is not None:
            self.transport.close()


class RedisPipe:
    """Batches of pre-encoded commands over one connection, replies in order.

    Concurrent `round_trip`s are allowed (their replies stay in order); the caller bounds the
    batch size. Each round trip is bounded by `timeout` as a whole.
    """

    def __init__(self, url: str, *, timeout: float, connect_timeout: float) -> None:
        self._endpoint = Endpoint.from_url(url)
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._proto: _RespProtocol | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        return self._proto is not None and not self._proto.lost

    async def _connection(self) -> _RespProtocol:
        proto = self._proto
        if proto is not None and not proto.lost:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and not proto.lost:
                return proto
            self._proto = None
            proto = await self._open()
            self._proto = proto
            return proto

    async def _open(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()
        ep = self._endpoint
        proto: _RespProtocol | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if ep.path is not None:
                    _, proto = await loop.create_unix_connection(_RespProtocol, ep.path)
                else:
                    assert ep.host is not None
                    ctx = ssl.create_default_context() if ep.tls else None
                    _, proto = await loop.create_connection(
                        _RespProtocol, ep.host, ep.port, ssl=ctx
                    )
                setup = ep.setup_commands()
                if setup:
                    for reply in await self._send(proto, setup):
                        if isinstance(reply, hiredis.ReplyError):
                            raise PipeError(f"connection setup refused: {reply}")
        except BaseException as exc:
            if proto is not None:  # never leave a half-set-up connection open
                proto.fail(PipeError("connection setup failed"))
            if isinstance(exc, (OSError, TimeoutError)) and not isinstance(exc, PipeError):
                raise PipeError(f"cannot connect to Redis: {type(exc).__name__}: {exc}") from exc
            raise
        return proto

    @staticmethod
    def _send(proto: _RespProtocol, cmds: list[bytes]) -> asyncio.Future[list[Any]]:
        if len(proto.waiting) >= MAX_BATCHES_IN_FLIGHT:
            raise PipeError(f"{MAX_BATCHES_IN_FLIGHT} batches already in flight")
        assert proto.transport is not None
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        proto.waiting.append(_Batch(len(cmds), fut))
        proto.transport.write(b"".join(cmds))
        return fut

    async def round_trip(self, cmds: list[bytes]) -> list[Any]:
        """Send `cmds` in one write; their replies in order (error replies as
        `hiredis.ReplyError` values). `PipeError` if the connection fails or the round trip
        takes longer than `timeout`: then the connection is closed. A cancelled round trip
        leaves the connection usable (its replies are read and dropped)."""
        if not cmds:
            return []
        proto = await self._connection()
        fut = self._send(proto, cmds)
        try:
            async with asyncio.timeout(self._timeout):
                return await fut
        except TimeoutError:
            proto.fail(PipeError(f"no reply from Redis within {self._timeout} s"))
            raise PipeError(f"no reply from Redis within {self._timeout} s") from None

    def close(self) -> None:
        """Close the connection; waiting batches fail with `PipeError`."""
        if self._proto is not None:
            self._proto.fail(PipeError("connection closed"))
            self._proto = None
