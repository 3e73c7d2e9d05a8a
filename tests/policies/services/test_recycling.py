"""Recycling credits. Demo: PET 0.40/kg (20 points/kg, at most 15 kg a deposit), glass 0.05/kg,
cardboard 0.03/kg (at most 25 kg), aluminium 0.80/kg (40 points/kg, at most 10 kg); at most 5.00
of recycling credit per card and local day."""

from __future__ import annotations

from dataclasses import replace

from policies import decide, reasons
from policies.services.commands import RecycleDeposit
from tests.policies.services.helpers import (
    NOON,
    TARIFF,
    assert_declined,
    at,
    card,
    rules,
    services,
)


def deposit(material: str, weight: object) -> RecycleDeposit:
    return RecycleDeposit("kiosk-7", "green-city", material, weight)  # type: ignore[arg-type]


def test_deposit_is_credited_by_rate_and_weight() -> None:
    outcome = decide(card(1_000), deposit("pet", 2_500), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance, d.product) == (
        True,
        "ok",
        -100,
        1_100,
        "recycle:pet",
    )
    assert d.explain[0] == {
        "rule": "recycling_rate",
        "material": "pet",
        "weight_g": 2_500,
        "rate_per_kg": 40,
        "credit": 100,
    }
    assert d.explain[1] == {
        "rule": "reward_points",
        "source": "recycling",
        "points": 50,
        "points_total": 50,
    }
    (event,) = outcome.events
    # A credit is funded by the kiosk's operator (settlement: it owes the clearing house).
    assert (event.type, event.amount, event.operator) == ("recycle_credit", -100, "green-city")
    assert services(outcome.state).points == 50


def test_ten_tonnes_of_cardboard_is_declined() -> None:
    state = card()
    outcome = decide(state, deposit("cardboard", 10_000_000), NOON, TARIFF)
    assert_declined(outcome, state, reasons.IMPLAUSIBLE_QUANTITY)
    assert outcome.decision.explain == (
        {"rule": "plausible_quantity", "weight_g": 10_000_000, "max": 25_000},
    )


def test_bad_weights_and_materials() -> None:
    state = card()
    for weight in (0, -5, 1.5, "100", None, True):
        assert_declined(
            decide(state, deposit("pet", weight), NOON, TARIFF), state, reasons.INVALID_QUANTITY
        )
    huge = decide(state, deposit("pet", 10**30), NOON, TARIFF)
    assert_declined(huge, state, reasons.IMPLAUSIBLE_QUANTITY)
    assert huge.decision.explain[0]["weight_g"] == 2**53 - 1  # clipped: still signable JSON
    assert_declined(
        decide(state, deposit("uranium", 100), NOON, TARIFF), state, reasons.UNKNOWN_MATERIAL
    )


def test_daily_limit_clips_then_declines_and_resets_next_day() -> None:
    first = decide(card(), deposit("aluminium", 10_000), NOON, TARIFF)  # 8.00 computed
    d = first.decision
    assert d.amount == -500
    assert rules(first) == ["recycling_rate", "recycling_daily_limit", "reward_points"]
    assert d.explain[2]["points"] == 250  # 400 points scaled by the 500/800 credited
    assert first.state is not None
    again = decide(first.state, deposit("pet", 1_000), NOON + 1, TARIFF)
    assert_declined(again, first.state, reasons.DAILY_LIMIT)
    tomorrow = decide(first.state, deposit("pet", 1_000), at("2026-03-05 00:01"), TARIFF)
    assert tomorrow.decision.amount == -40


def test_tiny_deposit_earns_nothing_but_is_approved() -> None:
    state = card()
    outcome = decide(state, deposit("glass", 100), NOON, TARIFF)  # 0.5 cent, 0.5 point
    assert (outcome.decision.approved, outcome.decision.amount) == (True, 0)


def test_credit_stops_at_the_maximum_balance() -> None:
    near = card(TARIFF.max_balance - 10)
    outcome = decide(near, deposit("pet", 5_000), NOON, TARIFF)
    assert (outcome.decision.amount, outcome.decision.balance) == (-10, TARIFF.max_balance)
    full = card(TARIFF.max_balance)
    assert_declined(decide(full, deposit("pet", 5_000), NOON, TARIFF), full, reasons.BALANCE_LIMIT)


def test_without_a_recycling_section_nothing_is_credited() -> None:
    tariff = replace(TARIFF, services=replace(TARIFF.services, recycling=None))
    state = card()
    assert_declined(
        decide(state, deposit("pet", 1_000), NOON, tariff), state, reasons.SERVICE_NOT_OFFERED
    )
