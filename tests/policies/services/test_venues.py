"""Venues: paid entries, opening hours (Berlin local time), memberships, the tourist card's one
entry per listed venue, and discounts. Demo: museum-city 9.00, Tue-Sun 10-18; cinema-lux 11.00,
daily 14:00-02:00; library-central free, weekdays 9-20 and Saturday 10-16; gym-north 6.00."""

from __future__ import annotations

from policies import decide, reasons
from policies.services.commands import VenueEntry
from policies.services.state import MAX_VENUE_TAPS, Membership, ServicesState
from policies.transit_state import HeldProduct
from tests.policies.services.helpers import (
    DAY,
    HOUR,
    NOON,
    TARIFF,
    WINDOW,
    assert_declined,
    at,
    card,
    rules,
    services,
)


def enter(venue: str, terminal: str = "gate-1") -> VenueEntry:
    return VenueEntry(terminal, "culture-op", venue)


def tourist(activated: int | None = None) -> HeldProduct:
    return HeldProduct(
        "tourist-48h",
        NOON - DAY,
        "city-tourism",
        3_900,
        48,
        "hours",
        networks=None,
        activated_ms=activated,
        expires_ms=None if activated is None else activated + 48 * HOUR,
        venues=("museum-city", "cinema-lux"),
        discounts=("tourist-shops",),
    )


def test_paid_entry() -> None:
    outcome = decide(card(), enter("museum-city"), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.amount, d.balance, d.product) == (True, 900, 9_100, "venue:museum-city")
    assert d.explain == (
        {"rule": "venue_entry", "venue": "museum-city", "kind": "museum"},
        {"rule": "entry_price", "price": 900},
    )
    (event,) = outcome.events
    assert (event.type, event.operator) == ("venue_entry", "culture-op")


def test_free_library_entry_is_approved_with_amount_zero() -> None:
    outcome = decide(card(0), enter("library-central"), NOON, TARIFF)
    assert (outcome.decision.approved, outcome.decision.amount) == (True, 0)


def test_opening_hours_in_local_time() -> None:
    state = card()
    monday = at("2026-03-02 12:00")  # the museum is closed on Mondays
    outcome = decide(state, enter("museum-city"), monday, TARIFF)
    assert_declined(outcome, state, reasons.OUTSIDE_HOURS)
    step = outcome.decision.explain[0]
    assert (step["local_day"], step["local_time"]) == ("mon", "12:00")
    assert decide(state, enter("museum-city"), at("2026-03-04 09:59"), TARIFF).decision.reason == (
        "outside_hours"
    )
    assert decide(state, enter("museum-city"), at("2026-03-04 10:00"), TARIFF).decision.approved
    assert not decide(state, enter("museum-city"), at("2026-03-04 18:00"), TARIFF).decision.approved
    # Summer time: 10:00 in Berlin is 08:00 UTC in July; the rule follows the local clock.
    assert decide(state, enter("museum-city"), at("2026-07-01 10:00"), TARIFF).decision.approved


def test_overnight_hours_run_past_midnight() -> None:
    state = card()
    assert decide(state, enter("cinema-lux"), at("2026-03-04 23:30"), TARIFF).decision.approved
    assert decide(state, enter("cinema-lux"), at("2026-03-05 01:59"), TARIFF).decision.approved
    late = decide(state, enter("cinema-lux"), at("2026-03-05 02:00"), TARIFF)
    assert late.decision.reason == reasons.OUTSIDE_HOURS


def test_double_tap_at_the_turnstile_is_not_charged_twice() -> None:
    first = decide(card(), enter("gym-north"), NOON, TARIFF)
    assert first.state is not None
    again = decide(first.state, enter("gym-north"), NOON + WINDOW - 1, TARIFF)
    assert (again.decision.reason, again.decision.amount) == (reasons.REPEAT_TAP, 0)
    later = decide(first.state, enter("gym-north"), NOON + WINDOW, TARIFF)
    assert later.decision.amount == 600


def test_venue_memory_is_bounded() -> None:
    state = card(50_000)
    for i in range(MAX_VENUE_TAPS + 2):
        outcome = decide(state, enter("gym-north"), NOON + i * WINDOW, TARIFF)
        assert outcome.state is not None
        state = outcome.state
    assert len(services(state).venue_taps) == MAX_VENUE_TAPS


def test_membership_admits_for_free() -> None:
    gym = Membership("gym-annual", frozenset({"gym-north", "pool-east"}), NOON + 30 * DAY)
    state = card(services=ServicesState(memberships=(gym,)))
    outcome = decide(state, enter("gym-north"), NOON, TARIFF)
    assert (outcome.decision.amount, rules(outcome)) == (0, ["venue_entry", "membership"])
    expired = decide(state, enter("gym-north"), NOON + 30 * DAY, TARIFF)
    assert expired.decision.amount == 600


def test_tourist_card_gives_one_entry_per_listed_venue_and_activates() -> None:
    state = card(products=(tourist(),))
    first = decide(state, enter("museum-city"), NOON, TARIFF)
    d = first.decision
    assert (d.approved, d.amount) == (True, 0)
    assert d.explain[1] == {
        "rule": "entitlement",
        "product": "tourist-48h",
        "grant": f"tourist-48h@{NOON - DAY}",
        "one_entry_per_venue": True,
    }
    assert first.state is not None
    assert first.state.products[0].activated_ms == NOON
    assert services(first.state).used == ((f"tourist-48h@{NOON - DAY}", "museum-city"),)
    # The second museum visit is paid; the cinema entry (opens 14:00) is still included.
    second = decide(first.state, enter("museum-city"), NOON + HOUR, TARIFF)
    assert (second.decision.approved, second.decision.amount) == (True, 900)
    assert second.state is not None
    cinema = decide(second.state, enter("cinema-lux"), NOON + 8 * HOUR, TARIFF)
    assert (cinema.decision.approved, cinema.decision.amount) == (True, 0)
    # A card never activated still has its entries (it activates on first use)...
    later = decide(state, enter("cinema-lux"), NOON + 56 * HOUR, TARIFF)
    assert (later.decision.approved, later.decision.amount) == (True, 0)
    # ...but once the 48 h from activation are over, nothing is included any more.
    old = card(products=(tourist(NOON - 49 * HOUR),))
    used_up = decide(old, enter("cinema-lux"), NOON + 8 * HOUR, TARIFF)
    assert (used_up.decision.approved, used_up.decision.amount) == (True, 1_100)


def test_category_discount_on_entry() -> None:
    outcome = decide(card(category="student"), enter("cinema-lux"), at("2026-03-04 20:00"), TARIFF)
    assert outcome.decision.amount == 550
    assert rules(outcome) == ["venue_entry", "entry_price", "discount"]


def test_unknown_venue_and_insufficient_funds() -> None:
    state = card(100)
    assert_declined(decide(state, enter("opera"), NOON, TARIFF), state, reasons.UNKNOWN_VENUE)
    assert_declined(
        decide(state, enter("museum-city"), NOON, TARIFF), state, reasons.INSUFFICIENT_FUNDS
    )
