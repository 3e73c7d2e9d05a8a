"""Facility access without payment. Demo: school-north-grounds open to residents (adult, senior,
student, youth, child) every day 18:00-07:00; depot-staff-gate to staff cards at any time."""

from __future__ import annotations

from policies import decide, reasons
from policies.services.commands import FacilityAccess
from tests.policies.services.helpers import TARIFF, assert_declined, at, card

SCHOOL = FacilityAccess("school-gate-1", "city-schools", "school-north-grounds")


def test_open_at_night_for_residents() -> None:
    state = card()
    outcome = decide(state, SCHOOL, at("2026-03-04 22:00"), TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance) == (True, "ok", 0, state.balance)
    assert d.explain == (
        {"rule": "facility_access", "facility": "school-north-grounds", "category": "adult"},
    )
    assert outcome.state is state
    assert outcome.events[0].type == "facility_access"
    assert decide(state, SCHOOL, at("2026-03-05 06:59"), TARIFF).decision.approved


def test_closed_by_day() -> None:
    state = card()
    outcome = decide(state, SCHOOL, at("2026-03-05 07:00"), TARIFF)
    assert_declined(outcome, state, reasons.OUTSIDE_HOURS)
    assert outcome.decision.explain[0]["local_time"] == "07:00"


def test_category_rules() -> None:
    staff = card(category="staff")
    assert_declined(
        decide(staff, SCHOOL, at("2026-03-04 22:00"), TARIFF), staff, reasons.CATEGORY_NOT_ALLOWED
    )
    depot = FacilityAccess("depot-1", "citybus", "depot-staff-gate")
    assert decide(staff, depot, at("2026-03-04 12:00"), TARIFF).decision.approved
    adult = card()
    assert_declined(
        decide(adult, depot, at("2026-03-04 12:00"), TARIFF), adult, reasons.CATEGORY_NOT_ALLOWED
    )


def test_unknown_facility() -> None:
    state = card()
    outcome = decide(state, FacilityAccess("x", "y", "moon-base"), at("2026-03-04 22:00"), TARIFF)
    assert_declined(outcome, state, reasons.UNKNOWN_FACILITY)
