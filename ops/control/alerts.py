"""Alerts for the control room: a terminal gone silent, a decline spike on a line, one card
tapping in two far-apart places within minutes, Redis slow or down, a gateway gone.

Rules read the journal (through the tailer), the terminal health monitor and the gateways'
figures. One alert per (kind, subject) is raised at most once per COOLDOWN_S; each is kept in
memory (the latest MAX_KEPT) and appended to the `{cc}:alerts` stream, and offered to the
`alerts` subscribers.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import redis.exceptions as rexc
from redis.asyncio import Redis

log = logging.getLogger(__name__)

ALERTS_KEY: Final = "{cc}:alerts"
ALERTS_MAXLEN: Final = 100_000
#: Alerts kept in memory for the dashboard.
MAX_KEPT: Final = 500
#: Seconds before the same alert (kind and subject) is raised again.
COOLDOWN_S: Final = 600.0
#: Alerts waiting to be written to Redis (then dropped, counted).
WRITE_QUEUE: Final = 1_000

#: Decline spike: within DECLINE_WINDOW_S on one line, at least DECLINE_MIN declines making at
#: least DECLINE_SHARE of its taps.
DECLINE_WINDOW_S: Final = 300
DECLINE_MIN: Final = 10
DECLINE_SHARE: Final = 0.3
#: Far apart: two taps of one card FAR_KM or more apart, closer in time than the distance could
#: be covered at FAR_KMH, within FAR_WINDOW_S.
FAR_KM: Final = 3.0
FAR_KMH: Final = 120.0
FAR_WINDOW_S: Final = 1800
#: Cards whose last tap place is remembered for the far-apart rule.
MAX_CARDS_TRACKED: Final = 200_000
#: Lines whose recent declines are tracked.
MAX_LINES_TRACKED: Final = 5_000


@dataclass(frozen=True, slots=True)
class Stop:
    name: str
    lat: float
    lon: float


def load_stops(path: Path) -> dict[str, Stop]:
    """GTFS stops.txt: stop id -> name and position."""
    out: dict[str, Stop] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            try:
                out[row["stop_id"]] = Stop(
                    row.get("stop_name") or row["stop_id"],
                    float(row["stop_lat"]),
                    float(row["stop_lon"]),
                )
            except (KeyError, ValueError):
                continue
    return out


def km_between(a: Stop, b: Stop) -> float:
    """Great-circle distance (haversine), km."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


@dataclass
class AlertEngine:
    redis: Redis
    offer: Callable[[dict[str, Any]], None]
    stops: dict[str, Stop] = field(default_factory=dict)
    now: Callable[[], float] = time.time
    #: Simulated seconds per wall second of the city being watched, for the far-apart rule
    #: (1 for a real city; the demo's sped-up city sets its speed).
    clock_scale: float = 1.0
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_KEPT))
    dropped_writes: int = 0
    _last_raised: dict[tuple[str, str], float] = field(default_factory=dict)
    _to_write: deque[dict[str, Any]] = field(default_factory=deque)
    _wake: anyio.Event = field(default_factory=anyio.Event)
    #: alerts raised since start (the id's sequence part)
    raised: int = 0
    # line -> deque of (time_s, declined)
    _lines: OrderedDict[str, deque[tuple[float, bool]]] = field(default_factory=OrderedDict)
    # card -> (stop, time_s)
    _cards: OrderedDict[str, tuple[str, float]] = field(default_factory=OrderedDict)

    def raise_alert(
        self, kind: str, subject: str, severity: str, text: str, **extra: Any
    ) -> dict[str, Any] | None:
        now = self.now()
        key = (kind, subject)
        last = self._last_raised.get(key)
        if last is not None and now - last < COOLDOWN_S:
            return None
        self._last_raised[key] = now
        if len(self._last_raised) > 4 * MAX_KEPT:
            cutoff = now - COOLDOWN_S
            self._last_raised = {k: t for k, t in self._last_raised.items() if t >= cutoff}
        self.raised += 1
        alert = {
            "type": "alert",
            "id": f"{int(now * 1000)}-{self.raised}",
            "kind": kind,
            "subject": subject,
            "severity": severity,
            "at_ms": int(now * 1000),
            "text": text,
            **extra,
        }
        self.recent.append(alert)
        self.offer(alert)
        if len(self._to_write) < WRITE_QUEUE:
            self._to_write.append(alert)
            self._wake.set()
        else:
            self.dropped_writes += 1
        return alert

    async def run_writer(self) -> None:
        """Append raised alerts to the `{cc}:alerts` stream (off the rules' path)."""
        while True:
            while not self._to_write:
                await self._wake.wait()
                self._wake = anyio.Event()
            alert = self._to_write[0]
            fields = {k: str(v) for k, v in alert.items() if k != "type"}
            try:
                await self.redis.xadd(ALERTS_KEY, fields, maxlen=ALERTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
                self._to_write.popleft()
            except (rexc.RedisError, OSError):
                await anyio.sleep(1.0)

    # ------------------------------------------------------------------ journal rules

    def on_entry(self, jid: str, e: dict[str, str]) -> None:
        if e.get("op") != "commit":
            return
        try:
            t = int(e["time"]) / 1000
        except (KeyError, ValueError):
            return
        if t < self.now() - FAR_WINDOW_S:
            return  # history read at start-up: no alerts for the past
        route = e.get("route")
        if route:
            self._line_tap(route, t, e.get("result") == "declined")
        stop = e.get("stop")
        card = e.get("card")
        if stop and card and e.get("result") == "approved" and self.stops:
            self._card_at(card, stop, t)

    def _line_tap(self, route: str, t: float, declined: bool) -> None:
        window = self._lines.get(route)
        if window is None:
            window = self._lines[route] = deque()
            if len(self._lines) > MAX_LINES_TRACKED:
                self._lines.popitem(last=False)
        else:
            self._lines.move_to_end(route)
        window.append((t, declined))
        while window and window[0][0] < t - DECLINE_WINDOW_S:
            window.popleft()
        declines = sum(1 for _, d in window if d)
        if declines >= DECLINE_MIN and declines >= DECLINE_SHARE * len(window):
            self.raise_alert(
                "decline_spike",
                route,
                "warning",
                f"line {route}: {declines} of {len(window)} taps declined in the last "
                f"{DECLINE_WINDOW_S // 60} minutes",
                route=route,
                declines=declines,
                taps=len(window),
            )

    def _card_at(self, card: str, stop: str, t: float) -> None:
        here = self.stops.get(stop)
        prev = self._cards.get(card)
        self._cards[card] = (stop, t)
        self._cards.move_to_end(card)
        if len(self._cards) > MAX_CARDS_TRACKED:
            self._cards.popitem(last=False)
        if prev is None or here is None or prev[0] == stop:
            return
        there = self.stops.get(prev[0])
        dt = (t - prev[1]) * self.clock_scale
        if there is None or dt > FAR_WINDOW_S or dt < 0:
            return
        km = km_between(there, here)
        if km >= FAR_KM and km > FAR_KMH * max(dt, 1.0) / 3600:
            self.raise_alert(
                "far_apart",
                card,
                "warning",
                f"card {card} tapped at {there.name} and {here.name}, {km:.1f} km apart, "
                f"{dt / 60:.1f} minutes apart",
                card=card,
                stops=[prev[0], stop],
                km=round(km, 1),
                minutes=round(dt / 60, 1),
            )
