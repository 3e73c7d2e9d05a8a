"""Parking: sessions, the time tariff per started period, the daily maximum, lost exits.

Demo car park P-CENTRE: 75 cents per started 15 min, first 10 min free, at most 18.00 per 24 h
of stay, lost-ticket 25.00 after 24 h without exit. P-STATION: 1.50 per started hour, at most
9.00 per day, lost after 72 h (27.00)."""

from __future__ import annotations

import pytest

from policies import CardState, decide, reasons
from policies.services.commands import ParkingClose, ParkingEntry, ParkingExit
from policies.services.parking import parking_charge
from tests.policies.services.helpers import (
    DAY,
    HOUR,
    MIN,
    NOON,
    SERVICES,
    TARIFF,
    WINDOW,
    assert_declined,
    card,
    rules,
    services,
)

ENTER = ParkingEntry("pk-in-1", "parkco", "P-CENTRE")
EXIT = ParkingExit("pk-out-1", "parkco", "P-CENTRE")


def parked(minutes_ago: int = 0, balance: int = 10_000) -> CardState:
    outcome = decide(card(balance), ENTER, NOON - minutes_ago * MIN, TARIFF)
    assert outcome.decision.approved and outcome.state is not None
    return outcome.state


def test_entry_opens_a_session_for_free() -> None:
    state = card()
    outcome = decide(state, ENTER, NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance) == (True, "ok", 0, 10_000)
    assert d.product == "parking:P-CENTRE"
    session = services(outcome.state).parking
    assert session is not None
    assert (session.facility, session.operator, session.entry_ms) == ("P-CENTRE", "parkco", NOON)
    (event,) = outcome.events
    assert (event.type, event.operator) == ("parking_entry", "parkco")


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (5, 0),  # within the 10 free minutes
        (10, 0),  # exactly 10: still free
        (11, 75),  # one started 15-min period (the free time is a grace, not a deduction)
        (15, 75),
        (16, 150),  # a second period started
        (95, 525),  # 7 periods
        (6 * 60, 1_800),  # 24 periods = 18.00 = the daily maximum exactly
        (10 * 60, 1_800),  # 40 periods = 30.00, capped at 18.00
        (24 * 60, 1_800),  # one full day
        (24 * 60 + 20, 1_800 + 150),  # a day, then 2 periods of the next
        (50 * 60, 2 * 1_800 + 8 * 75),  # two full days, then 2 h = 8 periods of day three
    ],
)
def test_exit_charges_per_started_period_with_a_daily_maximum(minutes: int, expected: int) -> None:
    state = parked(minutes)
    outcome = decide(state, EXIT, NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.amount) == (True, expected)
    assert d.balance == 10_000 - expected
    assert services(outcome.state).parking is None
    (event,) = outcome.events
    assert (event.type, event.amount, event.operator) == ("parking_exit", expected, "parkco")
    assert rules(outcome)[0] in ("parking_free_time", "parking_time_tariff")


def test_explanation_of_the_time_tariff() -> None:
    outcome = decide(parked(10 * 60), EXIT, NOON, TARIFF)
    (step,) = outcome.decision.explain
    assert step == {
        "rule": "parking_time_tariff",
        "minutes": 600,
        "period_min": 15,
        "period_price": 75,
        "periods": 40,
        "full_days": 0,
        "daily_max": 1_800,
        "daily_max_applied": True,
        "amount": 1_800,
    }


def test_hourly_car_park() -> None:
    facility = SERVICES.parking["P-STATION"]
    assert parking_charge(facility, 1)[0] == 150  # no free time: one started hour
    assert parking_charge(facility, 3 * HOUR)[0] == 450
    assert parking_charge(facility, 3 * HOUR + 1)[0] == 600
    assert parking_charge(facility, 20 * HOUR)[0] == 900  # capped
    assert parking_charge(facility, 0)[0] == 0  # free_min 0 and no time: nothing started


def test_exit_without_session_is_declined() -> None:
    state = card()
    assert_declined(decide(state, EXIT, NOON, TARIFF), state, reasons.NO_PARKING_SESSION)


def test_exit_at_another_car_park_is_declined() -> None:
    state = parked(30)
    other = ParkingExit("ps-out", "parkco", "P-STATION")
    outcome = decide(state, other, NOON, TARIFF)
    assert_declined(outcome, state, reasons.NO_PARKING_SESSION)
    assert outcome.decision.explain[0]["open_at"] == "P-CENTRE"


def test_double_tap_at_entry_and_exit_are_repeats() -> None:
    state = parked(0)
    again = decide(state, ENTER, NOON + WINDOW - 1, TARIFF)
    assert (again.decision.reason, again.decision.amount) == (reasons.REPEAT_TAP, 0)
    assert again.state is state
    out = decide(parked(60), EXIT, NOON, TARIFF)
    assert out.decision.amount == 300
    repeat = decide(out.state, EXIT, NOON + 5_000, TARIFF)
    assert (repeat.decision.approved, repeat.decision.reason, repeat.decision.amount) == (
        True,
        reasons.REPEAT_TAP,
        0,
    )
    late = decide(out.state, EXIT, NOON + WINDOW, TARIFF)
    assert late.decision.reason == reasons.NO_PARKING_SESSION


def test_second_entry_while_a_session_is_open_is_declined() -> None:
    state = parked(120)
    outcome = decide(state, ParkingEntry("ps-in", "stationpark", "P-STATION"), NOON, TARIFF)
    assert_declined(outcome, state, reasons.PARKING_SESSION_OPEN)


def test_lost_exit_is_charged_at_the_next_entry_to_the_sessions_operator() -> None:
    state = parked(24 * 60 + 1)  # open for more than lost_after_min (24 h)
    outcome = decide(state, ParkingEntry("ps-in", "stationpark", "P-STATION"), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.amount, d.balance) == (True, 2_500, 7_500)
    assert d.product == "parking_lost:P-CENTRE"
    assert rules(outcome) == ["lost_exit", "parking_session_opened"]
    (event,) = outcome.events
    # Attributed to the operator of the lost session, not to the terminal that saw the entry.
    assert (event.type, event.operator, event.terminal_id) == (
        "parking_lost",
        "parkco",
        "ps-in",
    )
    session = services(outcome.state).parking
    assert session is not None and session.facility == "P-STATION"


def test_lost_exit_with_too_little_balance_declines_the_entry() -> None:
    state = parked(2 * DAY // MIN, balance=1_000)
    assert_declined(decide(state, ENTER, NOON, TARIFF), state, reasons.INSUFFICIENT_FUNDS)


def test_insufficient_funds_at_exit_keeps_the_session_open() -> None:
    state = parked(10 * 60, balance=1_000)
    outcome = decide(state, EXIT, NOON, TARIFF)
    assert_declined(outcome, state, reasons.INSUFFICIENT_FUNDS)
    assert rules(outcome) == ["parking_time_tariff", "sufficient_funds"]


def test_operator_close_charges_the_time_tariff_or_the_lost_amount() -> None:
    close = ParkingClose("pk-desk", "parkco", "P-CENTRE")
    early = decide(parked(60), close, NOON, TARIFF)
    assert (early.decision.amount, early.events[0].type) == (300, "parking_exit")
    assert rules(early) == ["parking_time_tariff", "operator_close"]
    late = decide(parked(30 * 60), close, NOON, TARIFF)
    assert (late.decision.amount, late.events[0].type) == (2_500, "parking_lost")
    assert services(late.state).parking is None


def test_only_the_sessions_operator_may_close_it() -> None:
    state = parked(60)
    outcome = decide(state, ParkingClose("x", "other-op", "P-CENTRE"), NOON, TARIFF)
    assert_declined(outcome, state, reasons.NOT_AUTHORISED)


def test_unknown_car_park() -> None:
    state = card()
    for command in (
        ParkingEntry("t", "parkco", "P-NOWHERE"),
        ParkingExit("t", "parkco", "P-NOWHERE"),
    ):
        assert_declined(decide(state, command, NOON, TARIFF), state, reasons.UNKNOWN_FACILITY)


def test_clock_going_back_charges_nothing_negative() -> None:
    state = parked(-30)  # entry stamped 30 min in the future (two gateways' clocks)
    outcome = decide(state, EXIT, NOON, TARIFF)
    assert outcome.decision.amount == 0
