"""Shared fixtures of the city-services tests: the demo tariff, Berlin wall-clock times, cards."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from policies import CardState, Outcome, Tariff, default_tariff
from policies.services.state import EMPTY_SERVICES, ServicesState

TARIFF: Tariff = default_tariff()
SERVICES = TARIFF.services
BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = TARIFF.double_tap_window_ms
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def at(text: str) -> int:
    """Epoch ms of a Berlin wall-clock time, e.g. at("2026-03-04 12:00") (a Wednesday)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp() * 1000)


# Wednesday 4 March 2026, midday: every demo venue is open, rewards off-peak window is on.
NOON = at("2026-03-04 12:00")


def card(balance: int = 10_000, category: str = "adult", **kw: object) -> CardState:
    return replace(CardState("card-1", balance, "active", category), **kw)  # type: ignore[arg-type]


def services(state: CardState | None) -> ServicesState:
    assert state is not None
    return EMPTY_SERVICES if state.services is None else state.services


def assert_declined(outcome: Outcome, state: CardState, reason: str) -> None:
    """A decline charges nothing, changes nothing and journals exactly one 'declined' event."""
    d = outcome.decision
    assert (d.approved, d.reason, d.amount) == (False, reason, 0), d
    assert outcome.state is state
    assert d.balance == state.balance
    assert [e.type for e in outcome.events] == ["declined"]
    assert d.explain and all("rule" in step for step in d.explain)


def rules(outcome: Outcome) -> list[str]:
    return [str(step["rule"]) for step in outcome.decision.explain]
