"""Shared by the transit product tests: tariffs built in the test, local times, tap shortcuts.

Tariffs are built here from plain data (the form of a tariff file's sections), so each test
shows the rules it relies on; the C-TRAN feed is the copied real feed of tests/data/gtfs/.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from policies import (
    CardState,
    Command,
    FareTap,
    Outcome,
    TapOff,
    TapOn,
    Tariff,
    decide,
)
from tests.policies.gtfs.helpers import CTRAN, feed

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")


def at(local: str, zone: ZoneInfo = LA) -> int:
    """Epoch ms of a wall-clock time, e.g. "2025-10-06T07:30" (Los Angeles by default)."""
    return int(datetime.fromisoformat(local).replace(tzinfo=zone).timestamp() * 1000)


BASE: dict[str, Any] = {
    "version": "test-transit.1",
    "currency": "USD",
    "network_fares": {"METRO": 250, "TRAM": 200},
    "double_tap_window_ms": 60_000,
    "max_balance": 50_000,
    "max_purchase": 20_000,
    "max_topup": 20_000,
}

CATEGORIES: dict[str, Any] = {
    "adult": {"gtfs": "ADULT"},
    "youth": {"gtfs": "YOUTH", "flat_percent": 50},
    "senior": {"gtfs": "HONORED_CITIZEN", "flat_percent": 50},
    "student": {"gtfs": "YOUTH", "flat_percent": 50},
}


def ctran_tariff(**transit: Any) -> Tariff:
    """A tariff pricing C-TRAN's networks from the feed (HOP card, medium 2) and METRO / TRAM
    flat; `transit` adds or replaces fields of the transit section."""
    section: dict[str, Any] = {
        "gtfs": {"feed": "ctran", "fare_media": "2"},
        "categories": CATEGORIES,
        **transit,
    }
    return Tariff.from_dict({**BASE, "transit": section}, feed=feed(CTRAN))


def flat_tariff(**transit: Any) -> Tariff:
    """Flat fares only (no feed), with a transit section in `timezone` (default Berlin)."""
    section: dict[str, Any] = {"timezone": "Europe/Berlin", **transit}
    return Tariff.from_dict({**BASE, "currency": "EUR", "transit": section})


def card(balance: int = 10_000, category: str = "adult", **fields: Any) -> CardState:
    return CardState("card-1", balance, "active", category, **fields)


def bus(route: str, stop: str = "8126", terminal: str = "bus-1", op: str = "ctran") -> FareTap:
    return FareTap(terminal, op, "LOCAL", terminal, route=route, stop=stop)


def metro(gate: str = "gate-1", op: str = "metro-op") -> FareTap:
    return FareTap(gate, op, "METRO", gate)


def on(
    network: str = "METRO",
    gate: str = "in-1",
    route: str | None = None,
    stop: str | None = None,
    op: str = "metro-op",
) -> TapOn:
    return TapOn(gate, op, network, gate, route=route, stop=stop)


def off(
    network: str = "METRO",
    gate: str = "out-1",
    stop: str | None = None,
    op: str = "metro-op",
) -> TapOff:
    return TapOff(gate, op, network, gate, stop=stop)


def run(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> tuple[CardState, list[Outcome]]:
    """Decide `steps` ((command, epoch ms), ...) in order; the final state and every outcome."""
    outcomes = []
    for command, now in steps:
        outcome = decide(state, command, now, tariff)
        outcomes.append(outcome)
        assert outcome.state is not None
        state = outcome.state
    return state, outcomes


def rule(outcome: Outcome, name: str) -> dict[str, Any]:
    """The explain step of `outcome` whose rule is `name` (exactly one)."""
    steps = [dict(s) for s in outcome.decision.explain if s.get("rule") == name]
    assert len(steps) == 1, (name, outcome.decision.explain)
    return steps[0]


# ------------------------------------------------------------------------------------------------
# A small zonal feed (made up, in the test): the real feeds have no fare areas, and tap on /
# tap off only changes a fare when the destination matters.
# ------------------------------------------------------------------------------------------------

ZONAL_FILES: dict[str, str] = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
    "RAIL,Zone Rail,https://example.org,Europe/Berlin\n",
    "routes.txt": "route_id,agency_id,route_short_name,route_type,network_id\nR1,RAIL,R1,2,RAIL\n",
    "stops.txt": "stop_id,stop_name\nA1,Centre\nA2,Centre East\nB1,Suburb\nC1,Airport\n",
    "areas.txt": "area_id,area_name\nZA,Zone A\nZB,Zone B\nZC,Zone C\n",
    "stop_areas.txt": "area_id,stop_id\nZA,A1\nZA,A2\nZB,B1\nZC,C1\n",
    "fare_products.txt": "fare_product_id,fare_product_name,amount,currency\n"
    "ONE_ZONE,One zone,2.00,EUR\nTWO_ZONES,Two zones,3.00,EUR\nTHREE_ZONES,Three zones,4.50,EUR\n",
    "fare_leg_rules.txt": "network_id,from_area_id,to_area_id,fare_product_id\n"
    "RAIL,ZA,ZA,ONE_ZONE\nRAIL,ZA,ZB,TWO_ZONES\nRAIL,ZA,ZC,THREE_ZONES\n"
    "RAIL,ZB,ZA,TWO_ZONES\nRAIL,ZB,ZB,ONE_ZONE\nRAIL,ZB,ZC,TWO_ZONES\n"
    "RAIL,ZC,ZA,THREE_ZONES\nRAIL,ZC,ZB,TWO_ZONES\nRAIL,ZC,ZC,ONE_ZONE\n",
}


def zonal_tariff(**transit: Any) -> Tariff:
    """The zonal rail feed above (EUR, Europe/Berlin) plus METRO / TRAM flat."""
    from policies.gtfs import parse_feed

    zonal = parse_feed(ZONAL_FILES, name="zonal")
    section: dict[str, Any] = {"gtfs": {"feed": "zonal"}, **transit}
    return Tariff.from_dict({**BASE, "currency": "EUR", "transit": section}, feed=zonal)
