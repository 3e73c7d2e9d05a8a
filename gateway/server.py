"""The gateway process: starts (or connects to) Redis, loads the signing key and the tariff,
runs the card actors and the websocket server, and gives each connection a terminal session.

Everything shares one anyio task group on the asyncio backend (uvloop in production); the
websocket server is `gateway.ws_server` (websockets' Sans-I/O protocol on a plain asyncio
protocol).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import orjson

from actors.card import CardActor, CardDeps, TapReply, TapRequest
from actors.runtime import ActorRegistry
from actors.terminal import Phase, SessionDeps, TerminalSession
from gateway.admin import publish_gateway_key
from gateway.authority import AuthSigner, GatewayAuthority, LocalSigner
from gateway.config import GatewayConfig
from gateway.events import EventBus
from gateway.gc_monitor import GcMonitor
from gateway.keyholder import KeyholderSigner
from gateway.redis_server import RedisServer
from gateway.redis_store import RedisStore
from gateway.signing import GatewaySigner, load_or_create_signing_key
from gateway.tariff_io import TariffError, load_tariff_file
from gateway.ws_server import ConnectionClosed, WsConnection, WsServer
from policies import Tariff, default_tariff

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TariffHolder:
    """The tariff in force; replaced whole when a new version is loaded, never mutated.

    `reload()` (also on SIGHUP) re-reads `path`: a valid tariff applies to every tap decided
    after the swap (a tap being decided keeps the tariff it started with); an invalid one is
    refused, logged, and the current tariff stays."""

    def __init__(self, tariff: Tariff, path: Path | None = None) -> None:
        self.current = tariff
        self.path = path

    def get(self) -> Tariff:
        return self.current

    def reload(self) -> Tariff:
        """Load `path` again and swap it in; `TariffError` (current tariff kept) if invalid."""
        if self.path is None:
            raise TariffError("no tariff file to reload (the gateway runs the default tariff)")
        old = self.current
        try:
            new = load_tariff(self.path)
        except TariffError as exc:
            log.error("tariff reload refused, keeping %s: %s", old.version, exc)
            raise
        self.current = new
        log.warning("tariff reloaded: %s -> %s (%s)", old.version, new.version, self.path)
        return new


def load_tariff(path: Path | None) -> Tariff:
    """The tariff in file `path` (and its GTFS feed); the built-in default when None."""
    if path is None:
        return default_tariff()
    return load_tariff_file(path)


async def reload_tariff_on_sighup(holder: TariffHolder) -> None:
    """Reload the tariff file on every SIGHUP (reading it in a worker thread)."""
    try:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                # An invalid file is logged by reload(); the current tariff stays.
                with contextlib.suppress(TariffError):
                    await anyio.to_thread.run_sync(holder.reload)
    except (NotImplementedError, RuntimeError) as exc:
        # Signals need the main thread of a POSIX process; elsewhere use TariffHolder.reload().
        log.info("SIGHUP tariff reload unavailable here: %s", exc)


@dataclass(eq=False)
class _Conn:
    session: TerminalSession
    ws: WsConnection


class Connections:
    """Live authenticated terminals of this process, by terminal id.

    A second connection for a terminal id is refused while the first is alive; a first
    connection silent for longer than the idle limit is taken as dead and replaced, so a bus
    validator that lost its mobile link can come back before TCP notices.
    """

    def __init__(self, stale_after_ms: int) -> None:
        self._by_id: dict[str, _Conn] = {}
        self._ws: dict[TerminalSession, WsConnection] = {}
        self._stale_after_ms = stale_after_ms

    def attach(self, session: TerminalSession, ws: WsConnection) -> None:
        self._ws[session] = ws

    def detach(self, session: TerminalSession) -> None:
        self._ws.pop(session, None)

    def claim(self, terminal_id: str, session: TerminalSession) -> bool:
        held = self._by_id.get(terminal_id)
        if held is not None and held.session is not session:
            if now_ms() - held.session.last_activity_ms < self._stale_after_ms:
                return False
            held.session.close()
            self._close_soon(held.ws)
        ws = self._ws.get(session)
        if ws is None:
            return False
        self._by_id[terminal_id] = _Conn(session, ws)
        return True

    def release(self, terminal_id: str, session: TerminalSession) -> None:
        held = self._by_id.get(terminal_id)
        if held is not None and held.session is session:
            del self._by_id[terminal_id]

    def _close_soon(self, ws: WsConnection) -> None:
        ws.abort()

    def idle(self, older_than_ms: int, handshake_ms: int) -> list[WsConnection]:
        """Connections silent for `older_than_ms`, or still unauthenticated after
        `handshake_ms`."""
        now = now_ms()
        return [
            ws
            for s, ws in self._ws.items()
            if s.last_activity_ms < now - older_than_ms
            or (s.phase is not Phase.READY and s.connected_ms < now - handshake_ms)
        ]

    def __len__(self) -> int:
        return len(self._ws)


@dataclass
class Gateway:
    """A running gateway; `url` is where terminals connect."""

    config: GatewayConfig
    server: WsServer
    store: RedisStore
    cards: ActorRegistry[str, TapRequest, TapReply]
    authority: GatewayAuthority
    events: EventBus
    tariff: TariffHolder
    redis_url: str
    connections: Connections

    @property
    def port(self) -> int:
        sock = next(iter(self.server.sockets))
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/"


@asynccontextmanager
async def open_gateway(config: GatewayConfig) -> AsyncIterator[Gateway]:
    """Run a gateway until the context exits."""
    async with AsyncExitStack() as stack:
        redis_url = config.redis_url
        if redis_url is None:
            embedded = RedisServer(
                data_dir=config.data_dir / "redis", appendfsync=config.appendfsync
            )
            # On this thread, not a worker: the server is tied to the starting thread's life
            # (RedisServer.die_with_parent), and a worker thread may exit when idle.
            embedded.start()
            stack.callback(embedded.stop)
            redis_url = embedded.url
            store_url = embedded.local_url
        else:
            store_url = redis_url
        key_path = config.data_dir / "keys" / "gateway.key"
        key = load_or_create_signing_key(key_path)
        signer: AuthSigner
        if config.signer == "keyholder":
            # The key lives on in a child process; this one keeps only the public key.
            signer = await stack.enter_async_context(KeyholderSigner.start(key_path))
        else:
            signer = LocalSigner(GatewaySigner(key))
        del key
        tariff = TariffHolder(load_tariff(config.tariff_path), config.tariff_path)
        authority = GatewayAuthority(signer, lambda: tariff.current.currency)
        store = await stack.enter_async_context(RedisStore.connect(store_url))
        await anyio.to_thread.run_sync(
            publish_gateway_key, redis_url, signer.key_id, signer.public_key_hex
        )
        events = EventBus()
        card_deps = CardDeps(
            store=store, tariff=tariff.get, sign=authority.auth_frame, events=events
        )
        cards: ActorRegistry[str, TapRequest, TapReply] = ActorRegistry(
            lambda card: CardActor(card, card_deps),
            name="cards",
            mailbox_size=config.card_mailbox,
            max_resident=config.max_resident_cards,
            idle_timeout_s=config.card_idle_s,
            # A tap for an idle card is decided in its terminal's task: no hand-off to a worker.
            # CardActor.handle bounds its own waits (the store refuses writes it cannot send
            # within MAX_QUEUE_WAIT_S, and each round trip is bounded by its socket timeout).
            inline=True,
        )
        await stack.enter_async_context(cards)
        connections = Connections(stale_after_ms=config.heartbeat_s * config.idle_heartbeats * 1000)
        deps = SessionDeps(
            store=store,
            cards=cards,
            auth=authority,
            connections=connections,
            now_ms=now_ms,
            new_challenge=lambda: os.urandom(32),
            heartbeat_s=config.heartbeat_s,
        )

        async def handler(ws: WsConnection) -> None:
            if len(connections) >= config.max_connections:
                await ws.close(1013, "gateway full")
                return
            session = TerminalSession(deps, ws.send)
            connections.attach(session, ws)
            try:
                async for data in ws:
                    if not await session.on_frame(data):
                        await ws.close(1008, "protocol error")
                        break
            except ConnectionClosed:
                pass
            finally:
                session.close()
                connections.detach(session)

        server = await stack.enter_async_context(
            WsServer.serve(
                handler,
                config.host,
                config.port,
                max_size=config.max_ws_message,
                max_queue=config.max_ws_queue,
            )
        )
        gw = Gateway(
            config=config,
            server=server,
            store=store,
            cards=cards,
            authority=authority,
            events=events,
            tariff=tariff,
            redis_url=redis_url,
            connections=connections,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(_reap_idle, gw)
            if config.tariff_path is not None:
                tg.start_soon(reload_tariff_on_sighup, tariff)
            try:
                yield gw
            finally:
                tg.cancel_scope.cancel()


async def _reap_idle(gw: Gateway) -> None:
    """Close connections that sent nothing for `idle_heartbeats` heartbeat periods, and those
    that did not complete hello/proof within the handshake timeout."""
    limit_ms = gw.config.heartbeat_s * gw.config.idle_heartbeats * 1000
    handshake_ms = int(gw.config.handshake_timeout_s * 1000)
    period = min(gw.config.heartbeat_s, gw.config.handshake_timeout_s) / 2
    while True:
        await anyio.sleep(period)
        for ws in gw.connections.idle(limit_ms, handshake_ms):
            # Close without waiting for the peer: a dead link would hold the reaper up.
            ws.abort()


async def serve_forever(config: GatewayConfig) -> None:
    """Serve until SIGTERM or SIGINT, then close connections, drain writes and stop Redis."""
    # Only the serving process tunes the collector; tests and the demo keep CPython's defaults.
    gc_monitor = GcMonitor().install()
    await until_signalled(_serve, config, gc_monitor)


async def until_signalled(fn: Callable[..., Awaitable[None]], *args: object) -> None:
    """Run `fn(*args)` until it returns or SIGTERM / SIGINT arrives; then cancel it, so its
    contexts close in order (connections, pending writes, the embedded Redis)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await fn(*args)
        tg.cancel_scope.cancel()


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.warning("signal %s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


async def _serve(config: GatewayConfig, gc_monitor: GcMonitor) -> None:
    async with open_gateway(config) as gw:
        print(
            f"citycard gateway listening on {gw.url} (redis {gw.redis_url}, "
            f"key {gw.authority.key_id})",
            flush=True,
        )
        if config.stats_interval_s <= 0:
            await anyio.sleep_forever()
        while True:
            await anyio.sleep(config.stats_interval_s)
            print(orjson.dumps(stats_line(gw, gc_monitor)).decode(), flush=True)


def stats_line(gw: Gateway, gc_monitor: GcMonitor) -> dict[str, object]:
    """One line of operating figures for the log."""
    store = gw.store.stats
    return {
        "connections": len(gw.connections),
        "cards": gw.cards.stats(),
        "store": {
            "writes": store.writes,
            "batches": store.batches,
            "mean_batch": round(store.mean_batch, 2),
            "failed_batches": store.failed_batches,
        },
        "events": {"published": gw.events.published},
        "signer": gw.authority.signer.stats(),
        "gc": gc_monitor.snapshot(),
    }
