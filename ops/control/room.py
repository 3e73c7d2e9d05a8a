"""A running control room: its Redis connections, the journal tailer and what listens to it
(today's figures, health, alerts, live subscriptions), started and stopped together.

`open_control_room` starts everything in the caller's task group and serves the web
application (`ops.control.app`) on its own port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from redis.asyncio import Redis

from gateway.http_server import serve_http
from gateway.store.redis_store import RedisStore
from gateway.tariffs.holder import load_tariff
from ops.control.actions import ControlContext
from ops.control.aggregates import Today
from ops.control.alerts import AlertEngine, Stop, load_stops
from ops.control.health import HealthMonitor
from ops.control.streams import Hub
from ops.control.tailer import JournalTailer
from ops.reports.journal import cursor_before, day_bounds
from policies import Tariff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlConfig:
    redis_url: str
    host: str = "127.0.0.1"
    port: int = 8780
    #: The tariff operator commands are decided under (None: the built-in default).
    tariff_path: Path | None = None
    #: GTFS stops.txt giving stop names and positions (for the far-apart alert and labels).
    stops_path: Path | None = None
    timezone: str = "UTC"
    #: A connected terminal with no tap for this long is "silent".
    silent_after_s: float = 600.0
    #: Simulated seconds per wall second (a sped-up simulated city; 1 for a real one).
    clock_scale: float = 1.0
    #: Send the HSTS header and mark cookies Secure (behind TLS).
    secure_cookies: bool = False
    #: The gateway websocket URL the handheld apps are given (None: a live gateway's own).
    apps_gateway_url: str | None = None


@dataclass
class ControlRoom:
    config: ControlConfig
    redis: Redis
    store: RedisStore
    tariff: Tariff
    stops: dict[str, Stop]
    tailer: JournalTailer
    hub: Hub
    today: Today
    alerts: AlertEngine
    health: HealthMonitor
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"

    @property
    def actions(self) -> ControlContext:
        return ControlContext(self.redis, self.store, lambda: self.tariff)

    def summary(self) -> dict[str, Any]:
        health = self.health.snapshot()
        return {
            "type": "summary",
            "at_ms": time.time_ns() // 1_000_000,
            "today": self.today.snapshot(),
            "stop_names": {s: self.stops[s].name for s, _ in self.today.snapshot()["stops"]
                           if s in self.stops},
            "health": health,
            "alerts": list(self.alerts.recent)[-20:][::-1],
            "journal_head": self.tailer.head,
            "subscribers": len(self.hub.subscribers),
            "dropped": self.hub.dropped_total,
        }


def day_start_cursor(zone: ZoneInfo, now_s: float | None = None) -> str | None:
    """A journal cursor just before today's first entry (the local day's first instant in
    `zone`, as the reports count days)."""
    today = datetime.fromtimestamp(time.time() if now_s is None else now_s, zone).date()
    return cursor_before(day_bounds(today, zone.key)[0])


@asynccontextmanager
async def open_control_room(
    config: ControlConfig, app_factory: Callable[[ControlRoom], Any] | None = None
) -> AsyncIterator[ControlRoom]:
    """Run a control room until the context exits."""
    from ops.control.app import control_app

    zone = ZoneInfo(config.timezone)
    async with AsyncExitStack() as stack:
        redis = Redis.from_url(config.redis_url)
        stack.push_async_callback(redis.aclose)
        store = await stack.enter_async_context(RedisStore.connect(config.redis_url))
        tariff = await anyio.to_thread.run_sync(load_tariff, config.tariff_path)
        stops = load_stops(config.stops_path) if config.stops_path else {}
        hub = Hub()
        tailer = JournalTailer(store, after=day_start_cursor(zone))
        today = Today(zone)
        alerts = AlertEngine(redis, hub.on_alert, stops, clock_scale=config.clock_scale)
        health = HealthMonitor(redis, store, alerts, hub.on_health, config.silent_after_s)
        for listener in (today.on_entry, health.on_entry, alerts.on_entry, hub.on_entry):
            tailer.listen(listener)
        room = ControlRoom(config, redis, store, tariff, stops, tailer, hub, today, alerts,
                           health)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tailer.run)
            tg.start_soon(health.run)
            tg.start_soon(alerts.run_writer)
            app = (app_factory or control_app)(room)
            room.port = await tg.start(serve_http, app, config.host, config.port)
            try:
                yield room
            finally:
                tg.cancel_scope.cancel()
