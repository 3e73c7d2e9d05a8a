"""Terminal and system health for the control room, every REFRESH_S seconds from Redis:

- every registered terminal is **online** (connected to a gateway), **silent** (connected, but
  no tap for `silent_after_s` while it has been connected that long) or **offline** (not
  connected), with its last activity; changes go to the `health` subscribers, a terminal
  turning silent raises an alert;
- every gateway's per-second figures (`{cc}:gwstats`: taps, latency, Redis write latency) are
  merged into one time series for the charts; a gateway that stops reporting raises an alert;
- Redis itself: the round trip of a PING from here; slow or unreachable raises an alert.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import orjson
import redis.exceptions as rexc
from redis.asyncio import Redis

from gateway.presence import GATEWAYS_KEY, GW_STATS_KEY, gateway_key, terminals_key
from gateway.store.interface import Store
from ops.control.alerts import AlertEngine

log = logging.getLogger(__name__)

REFRESH_S: Final = 2.0
#: Seconds between two reads of the terminal registry.
REGISTRY_REFRESH_S: Final = 30.0
#: Terminals tracked at most (a bigger registry is shown in part, counted in full).
MAX_TERMINALS: Final = 100_000
#: Seconds of per-second figures kept for the charts.
SERIES_S: Final = 900
#: A PING slower than this (ms), or a gateway's Redis write p99 above it, is "Redis slow".
REDIS_SLOW_MS: Final = 50.0
#: Terminals listed in a snapshot (most urgent first).
LISTED: Final = 200


@dataclass
class TerminalHealth:
    terminal: str
    kind: str
    operator: str
    location: str
    status: str = "offline"
    last_seen_ms: int = 0
    last_tap_ms: int = 0
    since_ms: int = 0
    gateway: str = ""


@dataclass
class HealthMonitor:
    redis: Redis
    store: Store
    alerts: AlertEngine
    offer: Callable[[dict[str, Any]], None]
    silent_after_s: float = 600.0
    terminals: dict[str, TerminalHealth] = field(default_factory=dict)
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (second, taps, p50 ms, p99 ms, redis p99 ms), oldest first
    series: deque[tuple[int, int, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=SERIES_S)
    )
    redis_ping_ms: float | None = None
    redis_ok: bool = True
    _registry_at: float = 0.0
    _stats_cursor: str = "-"

    def on_entry(self, jid: str, e: dict[str, str]) -> None:
        """Journal entries tell when each terminal last tapped."""
        th = self.terminals.get(e.get("terminal", ""))
        if th is not None and e.get("time"):
            th.last_tap_ms = max(th.last_tap_ms, int(e["time"]))

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (rexc.RedisError, OSError) as exc:
                self._redis_down(exc)
            await anyio.sleep(REFRESH_S)

    async def refresh(self) -> None:
        t0 = time.perf_counter()
        await self.redis.ping()
        self.redis_ping_ms = round((time.perf_counter() - t0) * 1000, 2)
        if not self.redis_ok:
            self.redis_ok = True
            self.alerts.raise_alert("redis_back", "redis", "info", "Redis answers again")
        if self.redis_ping_ms > REDIS_SLOW_MS:
            self.alerts.raise_alert(
                "redis_slow", "redis", "warning",
                f"Redis PING took {self.redis_ping_ms:.0f} ms", ping_ms=self.redis_ping_ms,
            )
        if time.monotonic() - self._registry_at > REGISTRY_REFRESH_S:
            await self._read_registry()
            self._registry_at = time.monotonic()
        await self._read_presence()
        await self._read_figures()

    def _redis_down(self, exc: BaseException) -> None:
        if self.redis_ok:
            log.warning("Redis unreachable from the control room: %s", exc)
        self.redis_ok = False
        self.redis_ping_ms = None
        self.alerts.raise_alert("redis_down", "redis", "critical", f"Redis unreachable: {exc}")

    async def _read_registry(self) -> None:
        ids: list[str] = []
        async for key in self.redis.scan_iter(match="{cc:t:*}", count=1000, _type="HASH"):
            k = key.decode()
            ids.append(k[len("{cc:t:") : -1])
            if len(ids) >= MAX_TERMINALS:
                break
        for tid in ids:
            if tid in self.terminals:
                continue
            rec = await self.store.get_terminal(tid)
            if rec is not None:
                self.terminals[tid] = TerminalHealth(tid, rec.kind, rec.operator, rec.location)

    async def _read_presence(self) -> None:
        now_ms = time.time_ns() // 1_000_000
        connected: dict[str, tuple[str, dict[str, int]]] = {}
        seen_gateways: dict[str, dict[str, Any]] = {}
        for raw_id in await self.redis.smembers(GATEWAYS_KEY):
            gw = raw_id.decode()
            info = await self.redis.get(gateway_key(gw))
            if info is None:
                if gw in self.gateways:
                    self.alerts.raise_alert(
                        "gateway_down", gw, "critical", f"gateway {gw} stopped reporting"
                    )
                await self.redis.srem(GATEWAYS_KEY, gw)
                continue
            seen_gateways[gw] = orjson.loads(info)
            for tid, raw in (await self.redis.hgetall(terminals_key(gw))).items():
                connected[tid.decode()] = (gw, orjson.loads(raw))
        self.gateways = seen_gateways
        # A terminal enrolled since the last registry read shows up as soon as it connects.
        for tid in connected.keys() - self.terminals.keys():
            if len(self.terminals) >= MAX_TERMINALS:
                break
            rec = await self.store.get_terminal(tid)
            if rec is not None:
                self.terminals[tid] = TerminalHealth(tid, rec.kind, rec.operator, rec.location)
        silent_ms = self.silent_after_s * 1000
        for tid, th in self.terminals.items():
            c = connected.get(tid)
            if c is None:
                status = "offline"
            else:
                th.gateway, p = c
                th.since_ms, th.last_seen_ms = p["since"], max(th.last_seen_ms, p["last"])
                quiet_since = max(th.last_tap_ms, th.since_ms)
                status = "silent" if now_ms - quiet_since > silent_ms else "online"
            if status != th.status:
                old, th.status = th.status, status
                self.offer(
                    {"type": "health", "terminal": tid, "kind": th.kind, "status": status,
                     "was": old, "last_seen_ms": th.last_seen_ms, "at_ms": now_ms}
                )
                if status == "silent":
                    self.alerts.raise_alert(
                        "terminal_silent", tid, "warning",
                        f"{th.kind} {tid} at {th.location or '?'}: connected but no tap for "
                        f"{self.silent_after_s / 60:.0f} minutes",
                        terminal=tid, kind=th.kind,
                    )

    async def _read_figures(self) -> None:
        start = "-" if self._stats_cursor == "-" else f"({self._stats_cursor}"
        if self._stats_cursor == "-":
            # First read: only the last SERIES_S seconds.
            start = f"{(time.time_ns() // 1_000_000) - SERIES_S * 1000}-0"
        raw = await self.redis.xrange(GW_STATS_KEY, min=start, max="+", count=10_000)
        per_second: dict[int, list[dict[str, Any]]] = {}
        for sid, fields in raw:
            self._stats_cursor = sid.decode()
            line = {k.decode(): v.decode() for k, v in fields.items()}
            per_second.setdefault(int(line["t"]) // 1000, []).append(line)
        for second in sorted(per_second):
            lines = per_second[second]
            taps = sum(int(line["n"]) for line in lines)
            p50 = max(float(line["p50_ms"]) for line in lines)
            p99 = max(float(line["p99_ms"]) for line in lines)
            rp99 = max(float(line["redis_p99_ms"]) for line in lines)
            if self.series and self.series[-1][0] >= second:
                continue
            self.series.append((second, taps, p50, p99, rp99))
            if rp99 > REDIS_SLOW_MS:
                self.alerts.raise_alert(
                    "redis_slow", "redis-writes", "warning",
                    f"gateway writes to Redis at p99 {rp99:.0f} ms", redis_p99_ms=rp99,
                )

    def snapshot(self) -> dict[str, Any]:
        counts = {"online": 0, "silent": 0, "offline": 0}
        for th in self.terminals.values():
            counts[th.status] += 1
        order = {"silent": 0, "offline": 1, "online": 2}
        listed = sorted(
            self.terminals.values(), key=lambda t: (order[t.status], -t.last_seen_ms, t.terminal)
        )[:LISTED]
        return {
            "counts": counts,
            "terminals": [
                {"terminal": t.terminal, "kind": t.kind, "operator": t.operator,
                 "location": t.location, "status": t.status, "last_seen_ms": t.last_seen_ms,
                 "last_tap_ms": t.last_tap_ms, "gateway": t.gateway}
                for t in listed
            ],
            "gateways": self.gateways,
            "redis": {"ok": self.redis_ok, "ping_ms": self.redis_ping_ms},
            "series": list(self.series)[-300:],
        }
