"""The control room's alert rules on journal entries, with an injected clock: a decline spike on
a line, one card in two far-apart places (in the city's own time when it runs sped up), the
cooldown, and where alerts go."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio import Redis

from ops.control.alerts import (
    COOLDOWN_S,
    DECLINE_MIN,
    AlertEngine,
    Stop,
    km_between,
)

pytestmark = pytest.mark.anyio

#: Two real C-TRAN stops about 8.6 km apart, and one beside the first.
STOPS = {
    "A": Stop("Vancouver Mall", 45.6567, -122.5860),
    "B": Stop("Fisher's Landing", 45.6127, -122.4964),
    "A2": Stop("Vancouver Mall east", 45.6570, -122.5850),
}


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def engine(clock: Clock, **kw: Any) -> tuple[AlertEngine, list[dict[str, Any]]]:
    offered: list[dict[str, Any]] = []
    # The Redis writer task is not started: alerts only queue for it here.
    return AlertEngine(cast(Redis, None), offered.append, STOPS, now=clock, **kw), offered


def tap(clock: Clock, card: str = "c1", stop: str = "A", route: str = "", result: str = "approved",
        at: float | None = None) -> dict[str, str]:
    t = clock.t if at is None else at
    e = {"op": "commit", "card": card, "stop": stop, "result": result, "time": str(int(t * 1000))}
    if route:
        e["route"] = route
    return e


async def test_a_card_in_two_far_apart_places_is_raised_once() -> None:
    assert 8 < km_between(STOPS["A"], STOPS["B"]) < 9.5
    clock = Clock()
    alerts, offered = engine(clock)
    alerts.on_entry("1-0", tap(clock, stop="A"))
    clock.t += 60
    alerts.on_entry("2-0", tap(clock, stop="B"))
    assert [a["kind"] for a in offered] == ["far_apart"]
    assert offered[0]["card"] == "c1" and offered[0]["stops"] == ["A", "B"]
    # The cooldown: the same card again at once is not raised twice.
    clock.t += 60
    alerts.on_entry("3-0", tap(clock, stop="A"))
    assert len(offered) == 1
    clock.t += COOLDOWN_S + 1
    alerts.on_entry("4-0", tap(clock, stop="B"))  # 10 minutes after A: plausible
    clock.t += 30
    alerts.on_entry("5-0", tap(clock, stop="A"))
    assert len(offered) == 2


async def test_a_plausible_journey_or_a_near_stop_raises_nothing() -> None:
    clock = Clock()
    alerts, offered = engine(clock)
    alerts.on_entry("1-0", tap(clock, stop="A"))
    clock.t += 20 * 60  # 8.6 km in 20 minutes: a bus ride
    alerts.on_entry("2-0", tap(clock, stop="B"))
    alerts.on_entry("3-0", tap(clock, card="c2", stop="A"))
    clock.t += 10
    alerts.on_entry("4-0", tap(clock, card="c2", stop="A2"))  # next door
    alerts.on_entry("5-0", tap(clock, card="c3", stop="A", result="declined"))
    clock.t += 10
    alerts.on_entry("6-0", tap(clock, card="c3", stop="B"))  # a decline is not a presence
    assert offered == []


async def test_a_sped_up_city_is_judged_in_its_own_time() -> None:
    clock = Clock()
    alerts, offered = engine(clock, clock_scale=300.0)
    alerts.on_entry("1-0", tap(clock, stop="A"))
    clock.t += 4  # 4 wall seconds at 300x: 20 minutes of the city's time
    alerts.on_entry("2-0", tap(clock, stop="B"))
    assert offered == []
    alerts.on_entry("3-0", tap(clock, card="c9", stop="A"))
    clock.t += 0.05  # 15 city seconds for 8.6 km: not a journey
    alerts.on_entry("4-0", tap(clock, card="c9", stop="B"))
    assert [a["kind"] for a in offered] == ["far_apart"]


async def test_a_decline_spike_on_a_line() -> None:
    clock = Clock()
    alerts, offered = engine(clock)
    for i in range(30):
        alerts.on_entry(f"{i}-0", tap(clock, card=f"ok{i}", route="37"))
    for i in range(DECLINE_MIN - 1):
        clock.t += 1
        alerts.on_entry(f"d{i}", tap(clock, card=f"d{i}", route="37", result="declined"))
    assert offered == []  # 9 of 39: not yet
    for i in range(5):
        clock.t += 1
        alerts.on_entry(f"e{i}", tap(clock, card=f"e{i}", route="37", result="declined"))
    assert [a["kind"] for a in offered] == ["decline_spike"]
    assert offered[0]["route"] == "37" and offered[0]["declines"] >= DECLINE_MIN
    # Another line's declines are its own.
    for i in range(5):
        alerts.on_entry(f"x{i}", tap(clock, card=f"x{i}", route="4", result="declined"))
    assert len(offered) == 1


async def test_history_read_at_start_raises_nothing() -> None:
    clock = Clock()
    alerts, offered = engine(clock)
    old = clock.t - 3 * 3600
    alerts.on_entry("1-0", tap(clock, stop="A", at=old))
    alerts.on_entry("2-0", tap(clock, stop="B", at=old + 1))
    assert offered == []


async def test_alerts_are_kept_and_queued_for_redis_with_a_bound() -> None:
    clock = Clock()
    alerts, _ = engine(clock)
    made = alerts.raise_alert("redis_down", "redis", "critical", "Redis unreachable")
    assert made is not None and made in alerts.recent and alerts.raised == 1
    assert alerts.raise_alert("redis_down", "redis", "critical", "again") is None
    for i in range(1_100):
        alerts.raise_alert("terminal_silent", f"t{i}", "warning", "silent")
    assert len(alerts.recent) <= 500 and alerts.dropped_writes > 0
