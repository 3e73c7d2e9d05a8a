"""Rewards: volunteer hours (authorised operators only), off-peak travel points that never change
a fare, and redemption as fare credit. Demo: 50 points an hour (at most 12 h a credit), 5 points
per fare charged on weekdays 10:00-15:00, 100 points = 0.50, at most 100,000 points."""

from __future__ import annotations

from dataclasses import replace

from policies import CardState, FareTap, decide, reasons
from policies.services.commands import RedeemPoints, RewardCredit
from policies.services.state import ServicesState
from tests.policies.services.helpers import (
    NOON,
    TARIFF,
    assert_declined,
    at,
    card,
    rules,
    services,
)

NO_REWARDS = replace(TARIFF, services=replace(TARIFF.services, rewards=None))
METRO = FareTap("gate-9", "metro-op", "METRO", "gate-9")


def with_points(points: int, balance: int = 1_000) -> CardState:
    return card(balance, services=ServicesState(points=points))


def test_volunteer_hours_become_points() -> None:
    outcome = decide(card(), RewardCredit("kiosk-2", "city-volunteering", 3), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.amount, d.product) == (True, 0, "reward:volunteer")
    assert rules(outcome) == ["volunteer_hours", "reward_points"]
    assert services(outcome.state).points == 150
    assert outcome.events[0].type == "reward_credit"


def test_only_authorised_operators_credit_hours() -> None:
    state = card()
    outcome = decide(state, RewardCredit("kiosk-2", "shop-op", 3), NOON, TARIFF)
    assert_declined(outcome, state, reasons.NOT_AUTHORISED)


def test_implausible_and_invalid_hours() -> None:
    state = card()
    for hours, reason in (
        (13, reasons.IMPLAUSIBLE_QUANTITY),
        (0, reasons.INVALID_QUANTITY),
        (-2, reasons.INVALID_QUANTITY),
    ):
        outcome = decide(state, RewardCredit("k", "city", hours), NOON, TARIFF)
        assert_declined(outcome, state, reason)


def test_points_stop_at_the_maximum() -> None:
    outcome = decide(with_points(99_990), RewardCredit("k", "city", 1), NOON, TARIFF)
    assert services(outcome.state).points == 100_000
    assert outcome.decision.explain[1] == {
        "rule": "reward_points",
        "source": "volunteer",
        "points": 10,
        "points_total": 100_000,
        "max_points": 100_000,
        "not_credited": 40,
    }


def test_redeem_points_as_fare_credit() -> None:
    outcome = decide(with_points(350), RedeemPoints("kiosk-2", "city", 300), NOON, TARIFF)
    d = outcome.decision
    assert (d.approved, d.amount, d.balance, d.product) == (True, -150, 1_150, "redeem:points")
    assert services(outcome.state).points == 50
    (event,) = outcome.events
    assert (event.type, event.operator) == ("points_redeemed", "city-rewards")


def test_redeem_refusals() -> None:
    state = with_points(350)
    for points, reason in (
        (150, reasons.INVALID_QUANTITY),  # not whole units of 100
        (400, reasons.INSUFFICIENT_POINTS),
        (0, reasons.INVALID_QUANTITY),
        (200_000, reasons.IMPLAUSIBLE_QUANTITY),
    ):
        outcome = decide(state, RedeemPoints("k", "city", points), NOON, TARIFF)
        assert_declined(outcome, state, reason)
    full = with_points(350, TARIFF.max_balance)
    outcome = decide(full, RedeemPoints("k", "city", 100), NOON, TARIFF)
    assert_declined(outcome, full, reasons.BALANCE_LIMIT)


def test_off_peak_fare_earns_points_without_changing_the_fare() -> None:
    state = card()
    with_rewards = decide(state, METRO, NOON, TARIFF)
    without = decide(state, METRO, NOON, NO_REWARDS)
    assert with_rewards.decision == without.decision
    assert with_rewards.events == without.events
    assert services(with_rewards.state).points == 5
    assert without.state is not None and without.state.services is None


def test_peak_repeat_and_declined_fares_earn_nothing() -> None:
    state = card()
    peak = decide(state, METRO, at("2026-03-04 08:00"), TARIFF)
    assert peak.state is not None and peak.state.services is None
    repeat = decide(peak.state, METRO, at("2026-03-04 08:00") + 1_000, TARIFF)
    assert repeat.state is peak.state
    poor = card(0)
    assert decide(poor, METRO, NOON, TARIFF).state is poor


def test_fare_rules_keep_the_services_data() -> None:
    state = with_points(70, 1_000)
    outcome = decide(state, METRO, at("2026-03-04 08:00"), TARIFF)
    assert outcome.decision.amount > 0
    assert services(outcome.state).points == 70
