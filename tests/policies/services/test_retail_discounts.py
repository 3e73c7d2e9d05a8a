"""Retail micropayments and the discount network.

Demo discounts: seniors 10% at bakeries on weekday mornings 07:00-10:00; students and youth 50%
at museums and cinemas; seniors 30% at museums, cinemas and pools; 10% at souvenir shops, cafes
and cinemas for cards holding an entitlement that lists "tourist-shops" (the tourist card)."""

from __future__ import annotations

from policies import decide, reasons
from policies.services.commands import RetailPayment
from policies.services.state import Membership, ServicesState
from policies.transit_state import HeldProduct
from tests.policies.services.helpers import (
    HOUR,
    NOON,
    TARIFF,
    assert_declined,
    at,
    card,
    rules,
)

WED_8 = at("2026-03-04 08:00")
SAT_8 = at("2026-03-07 08:00")


def pay(amount: object, category: str = "bakery", merchant: str = "baker-anna") -> RetailPayment:
    return RetailPayment("till-3", "mall-acquirer", amount, merchant, category)  # type: ignore[arg-type]


def tourist_card(bought: int = NOON - HOUR) -> HeldProduct:
    return HeldProduct(
        "tourist-48h",
        bought,
        "city-tourism",
        3_900,
        48,
        "hours",
        networks=None,
        venues=("museum-city", "cinema-lux"),
        discounts=("tourist-shops",),
    )


def test_payment_without_discount_goes_to_the_merchant() -> None:
    outcome = decide(card(), pay(1_250), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance, d.product) == (
        True,
        "ok",
        1_250,
        8_750,
        "retail:bakery",
    )
    assert d.explain == (
        {"rule": "retail_payment", "merchant": "baker-anna", "category": "bakery", "amount": 1_250},
    )
    (event,) = outcome.events
    # The merchant is the payee (settlement), the till is the terminal.
    assert (event.type, event.operator, event.terminal_id) == (
        "retail_payment",
        "baker-anna",
        "till-3",
    )


def test_senior_morning_discount_at_the_bakery() -> None:
    outcome = decide(card(category="senior"), pay(999), WED_8, TARIFF)
    d = outcome.decision
    assert (d.amount, d.balance) == (900, 9_100)  # 10% of 999 = 99.9, rounded down to 99
    assert d.explain[1] == {
        "rule": "discount",
        "discount": "senior-bakery-morning",
        "percent": 10,
        "category": "senior",
        "saved": 99,
    }


def test_discount_windows_categories_and_scope() -> None:
    senior = card(category="senior")
    assert decide(senior, pay(1_000), at("2026-03-04 10:00"), TARIFF).decision.amount == 1_000
    assert decide(senior, pay(1_000), SAT_8, TARIFF).decision.amount == 1_000
    assert decide(card(), pay(1_000), WED_8, TARIFF).decision.amount == 1_000  # adult
    assert decide(senior, pay(1_000, "butcher"), WED_8, TARIFF).decision.amount == 1_000


def test_expired_concession_falls_back_to_the_default_category() -> None:
    expired = card(category="senior", category_until_ms=WED_8 - 1)
    outcome = decide(expired, pay(1_000), WED_8, TARIFF)
    assert outcome.decision.amount == 1_000
    valid = card(category="senior", category_until_ms=WED_8 + 1)
    assert decide(valid, pay(1_000), WED_8, TARIFF).decision.amount == 900


def test_entitlement_discount_needs_the_tourist_card_and_activates_it() -> None:
    assert decide(card(), pay(2_000, "souvenir"), NOON, TARIFF).decision.amount == 2_000
    state = card(products=(tourist_card(),))
    outcome = decide(state, pay(2_000, "souvenir"), NOON, TARIFF)
    d = outcome.decision
    assert d.amount == 1_800
    assert d.explain[1]["entitlement"] == "tourist-48h@" + str(NOON - HOUR)
    assert outcome.state is not None
    (product,) = outcome.state.products
    assert product.activated_ms == NOON  # first use of the tourist card
    assert product.expires_ms == NOON + 48 * HOUR
    expired = decide(outcome.state, pay(2_000, "souvenir"), NOON + 48 * HOUR, TARIFF)
    assert expired.decision.amount == 2_000


def test_membership_entitles_to_listed_discounts() -> None:
    membership = Membership(
        "friends-of-museum", frozenset(), NOON + HOUR, discounts=frozenset({"tourist-shops"})
    )
    state = card(services=ServicesState(memberships=(membership,)))
    outcome = decide(state, pay(1_000, "cafe"), NOON, TARIFF)
    assert outcome.decision.amount == 900
    assert outcome.decision.explain[1]["entitlement"] == "membership"
    assert decide(state, pay(1_000, "cafe"), NOON + HOUR, TARIFF).decision.amount == 1_000


def test_discounted_price_is_what_must_be_covered() -> None:
    state = card(950, category="senior")
    assert decide(state, pay(1_000), WED_8, TARIFF).decision.approved
    poor = card(899, category="senior")
    outcome = decide(poor, pay(1_000), WED_8, TARIFF)
    assert_declined(outcome, poor, reasons.INSUFFICIENT_FUNDS)
    assert rules(outcome) == ["retail_payment", "discount", "sufficient_funds"]


def test_bad_amounts() -> None:
    state = card()
    for amount, reason in (
        (0, reasons.INVALID_AMOUNT),
        (-1, reasons.INVALID_AMOUNT),
        ("5", reasons.INVALID_AMOUNT),
        (TARIFF.max_purchase + 1, reasons.AMOUNT_TOO_LARGE),
    ):
        assert_declined(decide(state, pay(amount), NOON, TARIFF), state, reason)
