"""Taxi: the metered amount from the driver's handheld, per-tap and per-day limits, trip ids,
and attribution to the driver (terminal) and operator. Demo limits: 150.00 a tap, 300.00 a day."""

from __future__ import annotations

from policies import decide, reasons
from policies.services.commands import TaxiFare
from policies.services.state import MAX_TRIPS
from tests.policies.services.helpers import (
    NOON,
    TARIFF,
    assert_declined,
    at,
    card,
    rules,
    services,
)


def fare(amount: object, trip: str = "", driver: str = "taxi-17") -> TaxiFare:
    return TaxiFare(driver, "cityCabs", amount, trip)  # type: ignore[arg-type]


def test_metered_amount_is_charged_and_attributed() -> None:
    outcome = decide(card(), fare(2_340, "trip-1"), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance, d.product) == (
        True,
        "ok",
        2_340,
        7_660,
        "taxi",
    )
    assert d.explain[0] == {
        "rule": "taxi_metered",
        "amount": 2_340,
        "driver": "taxi-17",
        "operator": "cityCabs",
        "trip_id": "trip-1",
    }
    assert d.explain[1]["rule"] == "taxi_daily_limit"
    (event,) = outcome.events
    assert (event.type, event.operator, event.terminal_id) == ("taxi_fare", "cityCabs", "taxi-17")


def test_per_tap_limit() -> None:
    state = card(50_000)
    assert decide(state, fare(15_000), NOON, TARIFF).decision.approved
    assert_declined(decide(state, fare(15_001), NOON, TARIFF), state, reasons.AMOUNT_TOO_LARGE)


def test_per_day_limit_resets_on_the_next_local_day() -> None:
    state = card(50_000)
    for i in range(2):
        outcome = decide(state, fare(15_000), NOON + i, TARIFF)
        assert outcome.decision.approved and outcome.state is not None
        state = outcome.state
    assert services(state).taxi_day[1] == 30_000
    over = decide(state, fare(1), NOON + 10, TARIFF)
    assert_declined(over, state, reasons.DAILY_LIMIT)
    assert over.decision.explain[0] == {
        "rule": "taxi_daily_limit",
        "spent_today": 30_000,
        "amount": 1,
        "max_per_day": 30_000,
    }
    # 23:59 is still the same local day; 00:00 Berlin is a new one.
    assert decide(state, fare(1), at("2026-03-04 23:59"), TARIFF).decision.reason == "daily_limit"
    assert decide(state, fare(1), at("2026-03-05 00:00"), TARIFF).decision.approved


def test_retapped_trip_is_not_charged_twice() -> None:
    first = decide(card(), fare(1_200, "trip-9"), NOON, TARIFF)
    assert first.state is not None
    again = decide(first.state, fare(1_200, "trip-9"), NOON + 90_000, TARIFF)
    assert (again.decision.approved, again.decision.reason, again.decision.amount) == (
        True,
        reasons.REPEAT_TAP,
        0,
    )
    assert again.state is first.state
    other_amount = decide(first.state, fare(1_300, "trip-9"), NOON, TARIFF)
    assert_declined(other_amount, first.state, reasons.DUPLICATE_TRIP)
    # Same trip id on another driver's handheld is another trip.
    assert decide(first.state, fare(1_200, "trip-9", "taxi-18"), NOON, TARIFF).decision.amount == (
        1_200
    )


def test_trip_memory_is_bounded() -> None:
    state = card(50_000)
    for i in range(MAX_TRIPS + 3):
        outcome = decide(state, fare(100, f"t{i}"), NOON + i, TARIFF)
        assert outcome.state is not None
        state = outcome.state
    assert len(services(state).trips) == MAX_TRIPS


def test_insufficient_funds() -> None:
    state = card(500)
    outcome = decide(state, fare(800), NOON, TARIFF)
    assert_declined(outcome, state, reasons.INSUFFICIENT_FUNDS)
    assert rules(outcome) == ["taxi_daily_limit", "sufficient_funds"]


def test_bad_amounts() -> None:
    state = card()
    for amount in (0, -500, 1.5, "12", True, None, 10**40):
        outcome = decide(state, fare(amount), NOON, TARIFF)
        expected = reasons.AMOUNT_TOO_LARGE if amount == 10**40 else reasons.INVALID_AMOUNT
        assert_declined(outcome, state, expected)
