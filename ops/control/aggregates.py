"""Today's figures, from the journal as the tailer reads it: taps and declines (by reason), by
terminal kind, boardings per line and per stop, and money per operator (charged to cards, and
credited). "Today" is the local day in the control room's time zone; at midnight the figures
start again. Every map has a bound: past it, new keys are counted under "other".
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

#: Distinct lines, stops, operators, reasons, kinds kept per day (then "other").
MAX_KEYS: Final = 5_000
#: Event types that count as a boarding (a fare charged or a journey begun).
BOARDING_EVENTS: Final = frozenset({"fare_charged", "tap_on"})


def _bump(counter: Counter[str], key: str, n: int = 1) -> None:
    if key not in counter and len(counter) >= MAX_KEYS:
        key = "other"
    counter[key] += n


class Today:
    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.day: date | None = None
        self._reset()

    def _reset(self) -> None:
        self.taps = 0
        self.approved = 0
        self.declined = 0
        self.declines: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.boardings_by_route: Counter[str] = Counter()
        self.boardings_by_stop: Counter[str] = Counter()
        self.charged: Counter[str] = Counter()
        self.credited: Counter[str] = Counter()

    def local_day(self, time_ms: int) -> date:
        return datetime.fromtimestamp(time_ms / 1000, self.zone).date()

    def on_entry(self, jid: str, e: dict[str, str]) -> None:
        if e.get("op") != "commit":
            return
        try:
            t = int(e["time"])
        except (KeyError, ValueError):
            return
        day = self.local_day(t)
        if self.day is None or day > self.day:
            self.day = day
            self._reset()
        elif day < self.day:
            return  # yesterday's entries read at start-up
        self.taps += 1
        _bump(self.by_kind, e.get("kind") or "unknown")
        if e.get("result") != "approved":
            self.declined += 1
            _bump(self.declines, e.get("reason") or "unknown")
            return
        self.approved += 1
        raw = e.get("events")
        if not raw:
            return
        try:
            events = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(events, list):
            return
        boarded = False
        for ev in events:
            if not isinstance(ev, dict):
                continue
            amount = ev.get("amount")
            payee = ev.get("operator")
            if isinstance(amount, int) and isinstance(payee, str) and amount:
                if amount > 0:
                    _bump(self.charged, payee, amount)
                else:
                    _bump(self.credited, payee, -amount)
            boarded = boarded or ev.get("type") in BOARDING_EVENTS
        if boarded:
            if e.get("route"):
                _bump(self.boardings_by_route, e["route"])
            if e.get("stop"):
                _bump(self.boardings_by_stop, e["stop"])

    def snapshot(self, top: int = 12) -> dict[str, Any]:
        operators = sorted(set(self.charged) | set(self.credited))
        revenue = sorted(
            (
                {
                    "operator": op,
                    "charged": self.charged[op],
                    "credited": self.credited[op],
                    "net": self.charged[op] - self.credited[op],
                }
                for op in operators
            ),
            key=lambda r: -int(r["charged"]),
        )
        return {
            "day": self.day.isoformat() if self.day else None,
            "taps": self.taps,
            "approved": self.approved,
            "declined": self.declined,
            "declines": self.declines.most_common(top),
            "by_kind": self.by_kind.most_common(),
            "lines": self.boardings_by_route.most_common(top),
            "stops": self.boardings_by_stop.most_common(top),
            "revenue": revenue[:top],
        }
