"""Bad input to the services, as the issue lists it: negative or absurd amounts, unknown product,
venue, material or facility, 10 tonnes of cardboard, outside opening hours. Each is a declined
decision with a documented reason code, nothing charged, the state object handed back as is."""

from __future__ import annotations

import pytest

from policies import Command, decide, reasons
from policies.services.commands import (
    FacilityAccess,
    ParkingEntry,
    RecycleDeposit,
    RedeemPoints,
    RetailPayment,
    RewardCredit,
    TaxiFare,
    VenueEntry,
)
from tests.policies.services.helpers import NOON, TARIFF, assert_declined, at, card

CASES: list[tuple[str, Command, int, str]] = [
    (
        "negative till amount",
        RetailPayment("t", "o", -250, "m", "bakery"),
        NOON,
        reasons.INVALID_AMOUNT,
    ),
    (
        "absurd till amount",
        RetailPayment("t", "o", 10**15, "m", "bakery"),
        NOON,
        reasons.AMOUNT_TOO_LARGE,
    ),
    ("negative taxi meter", TaxiFare("t", "o", -1), NOON, reasons.INVALID_AMOUNT),
    ("absurd taxi meter", TaxiFare("t", "o", 9_999_999), NOON, reasons.AMOUNT_TOO_LARGE),
    ("unknown car park", ParkingEntry("t", "o", "P-ATLANTIS"), NOON, reasons.UNKNOWN_FACILITY),
    ("unknown venue", VenueEntry("t", "o", "louvre"), NOON, reasons.UNKNOWN_VENUE),
    (
        "unknown material",
        RecycleDeposit("t", "o", "plutonium", 100),
        NOON,
        reasons.UNKNOWN_MATERIAL,
    ),
    (
        "10 tonnes of cardboard",
        RecycleDeposit("t", "o", "cardboard", 10_000_000),
        NOON,
        reasons.IMPLAUSIBLE_QUANTITY,
    ),
    ("negative weight", RecycleDeposit("t", "o", "pet", -300), NOON, reasons.INVALID_QUANTITY),
    (
        "museum on a Monday",
        VenueEntry("t", "o", "museum-city"),
        at("2026-03-02 12:00"),
        reasons.OUTSIDE_HOURS,
    ),
    (
        "schoolyard at noon",
        FacilityAccess("t", "o", "school-north-grounds"),
        NOON,
        reasons.OUTSIDE_HOURS,
    ),
    ("unknown facility", FacilityAccess("t", "o", "area-51"), NOON, reasons.UNKNOWN_FACILITY),
    (
        "a week of volunteering at once",
        RewardCredit("t", "city", 168),
        NOON,
        reasons.IMPLAUSIBLE_QUANTITY,
    ),
    ("negative points", RedeemPoints("t", "o", -100), NOON, reasons.INVALID_QUANTITY),
]


@pytest.mark.parametrize(("name", "command", "now", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_declined_with_a_documented_reason(
    name: str, command: Command, now: int, reason: str
) -> None:
    state = card()
    outcome = decide(state, command, now, TARIFF)
    assert_declined(outcome, state, reason)
    assert reason in reasons.REASONS


def test_far_future_time_does_not_break_local_time() -> None:
    state = card()
    outcome = decide(state, VenueEntry("t", "o", "gym-north"), 10**17, TARIFF)
    assert outcome.decision.reason in reasons.REASONS
