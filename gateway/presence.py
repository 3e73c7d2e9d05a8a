"""What one gateway process tells the control room about itself, through Redis, off the tap
path: every second a line of figures on the `{cc}:gwstats` stream (taps and their latency over
the second, connections, card actors, Redis write latency), and every few seconds which
terminals it holds connected, with their last activity.

Readers (ops.control) take a gateway whose `{cc}:gw:<id>` key has expired as gone. A failed
write is logged once per outage and retried at the next period; nothing here can slow a tap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import anyio
import orjson
import redis.exceptions as rexc
from redis.asyncio import Redis

from gateway.metrics import LatencyHistogram, LatencySnapshot, TapMetrics
from gateway.session import TerminalSession

log = logging.getLogger(__name__)

#: The stream of every gateway's per-second figures.
GW_STATS_KEY: Final = "{cc}:gwstats"
#: Entries the stats stream keeps (about a day for one gateway).
GW_STATS_MAXLEN: Final = 100_000
#: The set of gateway ids that reported themselves.
GATEWAYS_KEY: Final = "{cc}:gateways"
#: Seconds between two lines of figures.
STATS_INTERVAL_S: Final = 1.0
#: Seconds between two reports of the connected terminals.
PRESENCE_INTERVAL_S: Final = 3.0
#: A gateway's keys expire this long after its last report.
PRESENCE_TTL_S: Final = 15


def gateway_key(gateway_id: str) -> str:
    return f"{{cc}}:gw:{gateway_id}"


def terminals_key(gateway_id: str) -> str:
    return f"{{cc}}:gw:{gateway_id}:terminals"


@dataclass
class PresenceReporter:
    client: Redis
    gateway_id: str
    url: str
    taps: TapMetrics
    store_latency: LatencyHistogram
    sessions: Callable[[], list[TerminalSession]]
    figures: Callable[[], Mapping[str, int | float | str]]
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    _failing: bool = False

    async def run(self) -> None:
        last_taps = self.taps.latency.snapshot()
        last_store = self.store_latency.snapshot()
        next_presence = 0.0
        while True:
            await anyio.sleep(STATS_INTERVAL_S)
            taps, store = self.taps.latency.snapshot(), self.store_latency.snapshot()
            line = self._line(taps.since(last_taps), store.since(last_store))
            last_taps, last_store = taps, store
            now = time.monotonic()
            try:
                await self.client.xadd(
                    GW_STATS_KEY,
                    line,  # type: ignore[arg-type]  # redis-py's dict type is invariant
                    maxlen=GW_STATS_MAXLEN,
                    approximate=True,
                )
                if now >= next_presence:
                    next_presence = now + PRESENCE_INTERVAL_S
                    await self._report_presence()
                if self._failing:
                    log.warning("gateway figures reach Redis again")
                    self._failing = False
            except (rexc.RedisError, OSError) as exc:
                if not self._failing:
                    log.warning("gateway figures not written to Redis: %s", exc)
                    self._failing = True

    def _line(self, taps: LatencySnapshot, store: LatencySnapshot) -> dict[str, str | int | float]:
        totals = self.taps.totals()
        line: dict[str, str | int | float] = {
            "gw": self.gateway_id,
            "t": time.time_ns() // 1_000_000,
            "taps": sum(totals.values()),
            "approved": totals.get("approved", 0),
            "declined": totals.get("declined", 0),
            "errors": totals.get("error", 0),
            "duplicates": totals.get("duplicate", 0),
            "n": taps.count,
            "p50_ms": _ms(taps.quantile(0.5)),
            "p99_ms": _ms(taps.quantile(0.99)),
            "redis_p99_ms": _ms(store.quantile(0.99)),
            "redis_batches": store.count,
        }
        for k, v in self.figures().items():
            line[k] = v
        return line

    async def _report_presence(self) -> None:
        sessions = self.sessions()
        info = {
            "url": self.url,
            "started_ms": self.started_ms,
            "reported_ms": time.time_ns() // 1_000_000,
            "terminals": len(sessions),
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(GATEWAYS_KEY, self.gateway_id)
            pipe.set(gateway_key(self.gateway_id), orjson.dumps(info), ex=PRESENCE_TTL_S)
            tkey = terminals_key(self.gateway_id)
            pipe.delete(tkey)
            if sessions:
                pipe.hset(
                    tkey,
                    mapping={
                        s.terminal.terminal_id: orjson.dumps(
                            {
                                "since": s.connected_ms,
                                "last": s.last_activity_ms,
                                "taps": s.stats["taps"],
                            }
                        )
                        for s in sessions
                        if s.terminal is not None
                    },
                )
                pipe.expire(tkey, PRESENCE_TTL_S)
            await pipe.execute()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3) if seconds != float("inf") else -1.0
