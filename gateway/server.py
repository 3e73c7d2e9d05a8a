"""The gateway process: starts (or connects to) Redis, loads the signing key and the tariff,
runs the card actors and the websocket server, and gives each connection a terminal session.

Everything shares one anyio task group on the asyncio backend (uvloop in production); the
websocket server is `gateway.wire.ws_server` (websockets' Sans-I/O protocol on a plain asyncio
protocol).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio
import orjson
from redis.asyncio import Redis

from actors.card import CardActor, CardDeps, TapReply, TapRequest
from actors.card_store import StoreUnavailable
from actors.runtime import ActorRegistry
from gateway.config import GatewayConfig
from gateway.connections import Connections, now_ms
from gateway.control import ControlPlane
from gateway.deny_list import DenyList
from gateway.events import EventBus
from gateway.gc_monitor import GcMonitor
from gateway.health_http import health_app
from gateway.http_server import serve_http
from gateway.keys.authority import AuthSigner, GatewayAuthority, LocalSigner
from gateway.keys.keyholder import KeyholderSigner
from gateway.keys.signing import GatewaySigner, load_or_create_signing_key
from gateway.metrics import MetricSources, TapMetrics
from gateway.offline import OfflineLimits, OfflinePolicy
from gateway.presence import PresenceReporter
from gateway.provisioning import publish_gateway_key
from gateway.session import Phase, SessionDeps, TerminalSession
from gateway.store.redis_server import RedisServer
from gateway.store.redis_store import RedisStore
from gateway.tariffs.holder import TariffHolder, load_tariff, reload_tariff_on_sighup
from gateway.wire import protocol as wire
from gateway.wire.ws_server import ConnectionClosed, PreAuthLimits, WsConnection, WsServer

log = logging.getLogger(__name__)


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
    deny: DenyList
    control: ControlPlane
    taps: TapMetrics
    #: the port of /metrics, /healthz and /readyz (None: not served)
    metrics_port: int | None = None

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
            # A gateway killed with SIGKILL leaves this server running; the next start on the
            # same data folder stops it first (redis_server.stop_stale_server).
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
        store = await stack.enter_async_context(
            RedisStore.connect(store_url, ready_wait_s=config.redis_ready_wait_s)
        )
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
            expected_errors=(StoreUnavailable,),
        )
        await stack.enter_async_context(cards)
        connections = Connections(stale_after_ms=config.heartbeat_s * config.idle_heartbeats * 1000)
        # The operator-facing side gets its own Redis connections: none of it queues behind taps.
        control_client = Redis.from_url(store_url)
        stack.push_async_callback(control_client.aclose)
        deny = DenyList(authority, now_ms)
        control = ControlPlane(control_client, deny, connections, tariff, config.gateway_id)
        await control.start()
        taps = TapMetrics()
        deps = SessionDeps(
            store=store,
            cards=cards,
            auth=authority,
            connections=connections,
            now_ms=now_ms,
            new_challenge=lambda: os.urandom(32),
            heartbeat_s=config.heartbeat_s,
            deny=deny,
            offline=OfflinePolicy(authority, tariff.get, OfflineLimits(), now_ms),
            metrics=taps,
            max_frames_per_s=config.max_frames_per_s,
            frame_burst=config.frame_burst,
        )

        async def handler(ws: WsConnection) -> None:
            if len(connections) >= config.max_connections:
                await ws.close(1013, "gateway full")
                return
            session = TerminalSession(deps, ws.send)
            connections.attach(session, ws)
            pending_auth = True
            try:
                async for data in ws:
                    if not await session.on_frame(data):
                        await ws.close(1008, "protocol error")
                        break
                    if pending_auth and session.phase is Phase.READY:
                        pending_auth = False
                        ws.mark_authenticated()
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
                preauth=PreAuthLimits(
                    deadline_s=config.handshake_timeout_s,
                    per_address=config.max_preauth_per_address,
                    total=config.max_preauth_total,
                    expired_frame=wire.encode_error(
                        wire.TIMEOUT,
                        f"no hello and proof within {config.handshake_timeout_s:g} s",
                        fatal=True,
                    ),
                ),
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
            deny=deny,
            control=control,
            taps=taps,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(_reap_idle, gw)
            tg.start_soon(control.run)
            if config.tariff_path is not None:
                tg.start_soon(reload_tariff_on_sighup, tariff)
            if config.report_presence:
                reporter = PresenceReporter(
                    control_client,
                    config.gateway_id,
                    gw.url,
                    taps,
                    store.write_latency,
                    connections.terminals,
                    lambda: _presence_figures(gw),
                )
                tg.start_soon(reporter.run)
            if config.metrics_port is not None:
                app = health_app(_metric_sources(gw), _readiness_checks(gw))
                gw.metrics_port = await tg.start(
                    serve_http, app, config.metrics_host, config.metrics_port
                )
            try:
                yield gw
            finally:
                tg.cancel_scope.cancel()


def _presence_figures(gw: Gateway) -> dict[str, int | float | str]:
    store = gw.store.stats
    return {
        "connections": len(gw.connections),
        "terminals": gw.connections.ready,
        "resident": gw.cards.resident,
        "mailbox_depth": gw.cards.mailbox_depth,
        "mean_batch": round(store.mean_batch, 2),
        "failed_batches": store.failed_batches,
        "deny_version": gw.deny.version,
        "tariff": gw.tariff.current.version,
    }


def _metric_sources(gw: Gateway) -> MetricSources:
    def store_stats() -> dict[str, float]:
        st = gw.store.stats
        return {
            "batches": st.batches,
            "writes": st.writes,
            "mean_batch": st.mean_batch,
            "failed_batches": st.failed_batches,
        }

    def actors() -> dict[str, int]:
        return {
            "resident": gw.cards.resident,
            "busy": gw.cards.busy,
            "mailbox_depth": gw.cards.mailbox_depth,
            "activations": gw.cards.stats()["activations"],
        }

    return MetricSources(
        taps=gw.taps,
        store_latency=gw.store.write_latency,
        store_stats=store_stats,
        actors=actors,
        connections=lambda: {
            "open": len(gw.connections),
            "ready": gw.connections.ready,
            "preauth_open": gw.server.preauth_open,
            "preauth_refused": gw.server.preauth_refused,
            "preauth_expired": gw.server.preauth_expired,
            "frames_refused": gw.connections.frames_refused,
        },
        events=lambda: {"subscribers": gw.events.subscribers, "dropped": gw.events.dropped},
        signer=gw.authority.signer.stats,
        deny_version=lambda: gw.deny.version,
    )


#: What /readyz asks the signer to sign: auth-shaped, so the key holder accepts it.
_SIGNER_PROBE = b"citycard-auth-v1\nreadiness-probe\n"
#: Seconds each readiness probe may take.
READY_PROBE_TIMEOUT_S = 1.0


def _readiness_checks(gw: Gateway) -> dict[str, Callable[[], Awaitable[bool]]]:
    async def redis_ok() -> bool:
        return await gw.store.ping(READY_PROBE_TIMEOUT_S)

    async def signer_ok() -> bool:
        with anyio.move_on_after(READY_PROBE_TIMEOUT_S):
            try:
                await gw.authority.signer.sign(_SIGNER_PROBE)
                return True
            except Exception:
                return False
        return False

    return {"redis": redis_ok, "signer": signer_ok}


async def _reap_idle(gw: Gateway) -> None:
    """Close authenticated connections that sent nothing for `idle_heartbeats` heartbeat
    periods (the handshake deadline is each connection's own timer: WsServer's PreAuthLimits)."""
    limit_ms = gw.config.heartbeat_s * gw.config.idle_heartbeats * 1000
    period = gw.config.heartbeat_s / 2
    while True:
        await anyio.sleep(period)
        for ws, why in gw.connections.idle(limit_ms):
            # Say why, then close without waiting for the peer (a dead link would hold the
            # reaper up): the close handshake is bounded, and a peer that does not read gets
            # no frame and is dropped at once.
            if ws.send_nowait(wire.encode_error(wire.TIMEOUT, why, fatal=True)):
                ws.start_close(1008, "timeout")
            else:
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
