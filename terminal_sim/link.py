"""One simulated terminal's connection to the gateway, shared by the fleet driver
(`terminal_sim.driver`) and the city driver (`terminal_sim.citydriver`).

`TerminalLink` owns what every simulated terminal does on the wire: it opens the connection on
the lean websocket client and authenticates (adopting the welcome's `last_seq` and
`heartbeat_s`), keeps the taps not answered yet (each sent with the next seq, all of them sent
again after a reconnect), checks every `auth` against its pending tap and verifies its
signature, counts every `error` and retries the tap (same tap id) after a retryable one,
heartbeats when quiet, and reconnects with a growing delay after the connection closes.

What an answer means for the run (the drivers' counters and logs), and each driver's own twists
(outages, timeouts, retry delays), are left to subclasses through the hooks below. `LinkDriver`
is the small part of a driver the links lean on (gateway address and keys, result counters,
stopping flag, background tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlparse

import anyio
from nacl.signing import SigningKey, VerifyKey

from gateway.keys.signing import verify_auth, verify_offline_policy
from gateway.wire import protocol as wire
from terminal_sim.deny_holder import DenyHolder
from terminal_sim.handshake import authenticate
from terminal_sim.wsclient import HandshakeError, WsClosed, WsConnection, connect

#: Error codes after which the same tap is retried.
RETRYABLE = frozenset({wire.BUSY, wire.UNAVAILABLE, wire.INTERNAL})
#: Delay before the first reconnect attempt, seconds; it doubles after each failed one...
RECONNECT_DELAY_S = 0.05
#: ...up to this.
RECONNECT_MAX_DELAY_S = 1.0
#: How long stopping a driver waits for its background tasks to finish once cancelled.
STOP_TIMEOUT_S = 5.0


class LinkTerminal(Protocol):
    """What a link needs of the terminal it plays."""

    @property
    def terminal_id(self) -> str: ...

    @property
    def signing_key(self) -> SigningKey: ...


class LinkTap(Protocol):
    """What a link needs of a tap it sends."""

    tap_id: str
    card: str
    op: str
    fields: dict[str, object]
    terminal_time: int
    #: times the tap was sent
    attempts: int


class LinkCounters(Protocol):
    """The driver's result counters that links update."""

    signature_failures: int
    retries: int
    reconnects: int
    #: error code -> count
    error_codes: dict[str, int]


class LinkHost(Protocol):
    """What a link needs of the driver that runs it (`LinkDriver` has it all)."""

    host: str
    port: int
    path: str
    gateway_keys: dict[str, VerifyKey]
    stopping: bool

    @property
    def result(self) -> LinkCounters: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def count_code(self, code: str) -> None: ...


ResultT = TypeVar("ResultT", bound=LinkCounters)


class LinkDriver(Generic[ResultT]):
    """The part of a driver its links lean on: the gateway's address and keys, the result
    counters, the stopping flag and the background tasks (reconnects among them)."""

    def __init__(self, url: str, gateway_keys: Mapping[str, str], result: ResultT) -> None:
        u = urlparse(url)
        self.host, self.port, self.path = u.hostname or "127.0.0.1", u.port or 80, u.path or "/"
        self.gateway_keys = {k: VerifyKey(bytes.fromhex(v)) for k, v in gateway_keys.items()}
        self.result = result
        self.stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background; the driver cancels what is left when it stops."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def count_code(self, code: str) -> None:
        self.result.error_codes[code] = self.result.error_codes.get(code, 0) + 1

    async def stop_tasks(self, connections: list[WsConnection | None]) -> None:
        """Stop for good: no more reconnects, `connections` aborted, every background task
        cancelled and awaited. Runs on every way out of a run, a cancelled one too (Ctrl-C on
        the demo), so no task outlives its driver ("Task was destroyed but it is pending")."""
        self.stopping = True
        for conn in connections:
            if conn is not None:
                conn.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Shielded: a run being cancelled still waits (boundedly) for its tasks to end.
            with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_TIMEOUT_S):
                await asyncio.gather(*tasks, return_exceptions=True)


TermT = TypeVar("TermT", bound=LinkTerminal)
TapT = TypeVar("TapT", bound=LinkTap)
HostT = TypeVar("HostT", bound=LinkHost)


class TerminalLink(ABC, Generic[TermT, TapT, HostT]):
    """One simulated terminal: its connection, sequence numbers and unanswered taps."""

    #: Reconnect attempts after a close before the terminal gives up.
    max_reconnects: ClassVar[int]
    #: What a failed reconnect attempt may raise and still be tried again.
    reconnect_errors: ClassVar[tuple[type[BaseException], ...]] = (
        OSError,
        ConnectionError,
        TimeoutError,
        wire.ProtocolError,
        WsClosed,  # the gateway closed the connection during the handshake: try again
        HandshakeError,  # the upgrade was refused or reset (e.g. a gateway restarting)
    )

    def __init__(self, t: TermT, driver: HostT) -> None:
        self.t = t
        self.driver = driver
        self.conn: WsConnection | None = None
        self.seq = 0
        self.pending: dict[str, TapT] = {}
        self.ready = False
        self.reconnecting = False
        self.heartbeat_s = float(wire.DEFAULT_HEARTBEAT_S)
        self.last_sent = 0.0
        self.deny = DenyHolder()
        #: the gateway's signed offline policy, when this terminal asked for one (verified)
        self.offline_policy: wire.OfflinePolicyFields | None = None

    # ------------------------------------------------------------------ hooks

    @abstractmethod
    def _decided(self, tap: TapT, msg: dict[str, Any]) -> None:
        """A verified `auth` answered `tap` (already removed from `pending`)."""

    @abstractmethod
    def _failed(self, tap: TapT, code: str) -> None:
        """`tap` ended with error `code` (already removed from `pending`)."""

    @abstractmethod
    def _retry_delay(self, tap: TapT) -> float:
        """Seconds before `tap`, answered with a retryable error, is sent again."""

    def _may_retry(self) -> bool:
        """Whether a tap answered with a retryable error is retried now."""
        return True

    def _rejected(self, tap: TapT, code: str) -> None:
        """`tap` was answered with a non-retryable error: it fails."""
        del self.pending[tap.tap_id]
        self._failed(tap, code)

    def _unknown_auth(self, msg: dict[str, Any]) -> None:
        """An `auth` for a tap that is not pending."""
        self.driver.count_code("unexpected_auth")

    def _held(self, tap: TapT) -> None:
        """`tap` waits for a connection before it is sent."""

    def _sending(self, tap: TapT, now: float) -> None:
        """`tap` is about to be sent (again), at `now` (time.monotonic)."""

    def _before_adopt(self, conn: WsConnection) -> None:
        """Called once the handshake is done, before `conn` is adopted; may abort it and
        raise."""

    def _deny_updated(self, version: int) -> None:
        """The terminal's deny list reached `version` (verified)."""

    def _offline(self) -> bool:
        """Whether the terminal has no network now (no reconnect attempts meanwhile)."""
        return False

    def _wants_offline_policy(self) -> bool:
        """Whether this terminal decides offline (asks for the offline policy in `hello`)."""
        return False

    def _reconnect_wait(self, delay: float) -> float:
        """Seconds to sleep before the next reconnect attempt, `delay` being the back-off."""
        return delay

    # ------------------------------------------------------------------ the connection

    async def open(self) -> None:
        d = self.driver
        conn = await connect(d.host, d.port, d.path, max_frame=wire.MAX_FRAME_BYTES * 16)
        try:
            welcome = await authenticate(
                conn,
                self.t.terminal_id,
                self.t.signing_key,
                self.deny.version,
                self._wants_offline_policy(),
            )
        except BaseException:
            conn.abort()
            raise
        self._before_adopt(conn)
        self.seq = max(self.seq, int(welcome["last_seq"]))
        self.heartbeat_s = float(welcome["heartbeat_s"])
        self.last_sent = time.monotonic()
        conn.on_message = self._on_message
        conn.on_close = self._on_close
        self.conn = conn
        self.ready = True
        for payload in conn.take_queued():  # what the gateway sent right after `welcome`
            self._on_message(payload)
        for tap in list(self.pending.values()):
            self._send(tap)

    def tap(self, tap: TapT) -> None:
        self.pending[tap.tap_id] = tap
        if self.ready:
            self._send(tap)
        else:
            self._held(tap)

    def _send(self, tap: TapT) -> None:
        if self.conn is None:
            return  # sent again after the reconnect
        self.seq += 1
        tap.attempts += 1
        now = time.monotonic()
        self.last_sent = now
        self._sending(tap, now)
        try:
            self.conn.send_text(
                wire.encode_tap(
                    self.seq, tap.tap_id, tap.card, tap.op, tap.terminal_time, tap.fields
                )
            )
        except WsClosed:
            self._on_close(
                self.conn.close_code if self.conn else None, "send on a closed connection"
            )

    def _on_message(self, data: bytes) -> None:
        try:
            msg = wire.decode_gateway_message(data)
        except wire.ProtocolError:
            self.driver.count_code("undecodable")
            return
        mtype = msg["type"]
        if mtype == wire.AUTH:
            self._on_auth(msg)
        elif mtype == wire.ERROR:
            self._on_error(msg)
        elif mtype == wire.OFFLINE_POLICY:
            fields = wire.offline_policy_from_message(msg)
            if verify_offline_policy(self.driver.gateway_keys, fields, msg["sig"]):
                self.offline_policy = fields
            else:
                self.driver.result.signature_failures += 1
        elif mtype == wire.DENY_LIST:
            if self.deny.receive(msg, self.driver.gateway_keys):
                self._deny_updated(self.deny.version)
            elif self.deny.bad_signatures:
                self.driver.result.signature_failures += self.deny.bad_signatures
                self.deny.bad_signatures = 0

    def _on_auth(self, msg: dict[str, Any]) -> None:
        d = self.driver
        tap = self.pending.get(msg["tap_id"])
        if tap is None:
            self._unknown_auth(msg)
            return
        if msg["terminal_id"] != self.t.terminal_id or msg["card"] != tap.card:
            d.count_code("unexpected_auth")
            return
        # An unknown key id does not verify.
        if not verify_auth(d.gateway_keys, wire.auth_fields_from_message(msg), msg["sig"]):
            d.result.signature_failures += 1
            return
        del self.pending[tap.tap_id]
        self._decided(tap, msg)

    def _on_error(self, msg: dict[str, Any]) -> None:
        d = self.driver
        code = msg["code"]
        d.count_code(code)
        tap_id = msg.get("tap_id")
        tap = self.pending.get(tap_id) if isinstance(tap_id, str) else None
        if tap is None:
            return
        if code not in RETRYABLE:
            self._rejected(tap, code)
        elif self._may_retry():
            d.result.retries += 1
            asyncio.get_running_loop().call_later(self._retry_delay(tap), self._retry, tap)

    def heartbeat_if_quiet(self, now: float) -> None:
        """Real terminals heartbeat when they have nothing else to say (protocol section 4)."""
        if self.ready and self.conn is not None and now - self.last_sent > self.heartbeat_s / 2:
            self.last_sent = now
            with contextlib.suppress(WsClosed):
                self.conn.send_text(wire.encode_heartbeat(int(now * 1000)))

    def _retry(self, tap: TapT) -> None:
        if self.ready and tap.tap_id in self.pending:
            self._send(tap)

    def _on_close(self, code: int | None, reason: str) -> None:
        self.ready = False
        self.conn = None
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        if not self.driver.stopping and not self.reconnecting:
            self.reconnecting = True
            self.driver.spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delay = RECONNECT_DELAY_S
        try:
            for _ in range(self.max_reconnects):
                if self.driver.stopping:
                    return
                await asyncio.sleep(self._reconnect_wait(delay))
                if self._offline():
                    continue
                try:
                    await self.open()
                    self.driver.result.reconnects += 1
                    return
                except self.reconnect_errors:
                    delay = min(RECONNECT_MAX_DELAY_S, delay * 2)
        finally:
            self.reconnecting = False
