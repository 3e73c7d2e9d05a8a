"""Rewards: points for off-peak travel, recycling and volunteer hours, redeemable as fare credit.

This module owns the points rules. Points live in `ServicesState.points`, capped at the tariff's
`max_points` (points beyond it are not credited, and the explanation says so). They are earned:

- for off-peak travel, by `accrue_travel_points`, which runs after a fare decision is final
  (policies/services/routes.py, called from `decide`): it may add points to the new state but
  never touches the decision or its events, so points cannot change whether or what a fare
  charges, and a fare costs one cached local-time lookup more when rewards are on;
- for recycling, by the recycling rule (policies/services/recycling.py);
- for volunteer hours, by `RewardCredit` from an operator in `volunteer_operators` only (the
  terminal kind is checked at the gateway, the operator here), at most `max_hours_per_credit`.

`RedeemPoints` turns whole units of `redeem_unit_points` into `redeem_unit_value` of stored
value, paid for by the rewards programme's `operator` (the event's payee).
"""

from __future__ import annotations

from typing import Final

from policies import reasons
from policies.model import EVENT_FARE_CHARGED, EVENT_TAP_ON, CardState, Outcome
from policies.services._common import (
    Step,
    approve,
    decline,
    now_local,
    quantity_problem,
    services_of,
    updated,
)
from policies.services.commands import (
    EVENT_POINTS_REDEEMED,
    EVENT_REWARD_CREDIT,
    RedeemPoints,
    RewardCredit,
)
from policies.services.state import ServicesState, evolve
from policies.services.tariff import RewardsRules, in_windows
from policies.tariff import Tariff

TRAVEL_EVENT_TYPES: Final[frozenset[str]] = frozenset({EVENT_FARE_CHARGED, EVENT_TAP_ON})
"""Event types of a charged fare that earns off-peak points: a flat or GTFS fare, or the tap on
of a tap-on / tap-off journey (its tap off is a credit and earns nothing)."""

REWARD_PRODUCT: Final = "reward:volunteer"
REDEEM_PRODUCT: Final = "redeem:points"


def add_points(
    services: ServicesState, points: int, rules: RewardsRules
) -> tuple[ServicesState, int]:
    """`services` with up to `points` more points (never above `max_points`), and how many."""
    added = max(0, min(points, rules.max_points - services.points))
    if added == 0:
        return services, 0
    return evolve(services, points=services.points + added), added


def points_step(source: str, earned: int, added: int, total: int, rules: RewardsRules) -> Step:
    step: dict[str, object] = {
        "rule": "reward_points",
        "source": source,
        "points": added,
        "points_total": total,
    }
    if added < earned:
        step["max_points"] = rules.max_points
        step["not_credited"] = earned - added
    return step


def accrue_travel_points(outcome: Outcome, now_ms: int, tariff: Tariff) -> Outcome:
    """`outcome` with off-peak points added to its state when it charged an off-peak fare."""
    rules = tariff.services.rewards
    if rules is None or rules.offpeak_points <= 0:
        return outcome
    decision = outcome.decision
    new = outcome.state
    if new is None or not decision.approved or decision.amount <= 0:
        return outcome
    if not any(e.type in TRAVEL_EVENT_TYPES for e in outcome.events):
        return outcome
    local = now_local(tariff, now_ms)
    if not in_windows(rules.offpeak_windows, local.weekday, local.minute):
        return outcome
    services, added = add_points(services_of(new), rules.offpeak_points, rules)
    if added == 0:
        return outcome
    return Outcome(updated(new, services), decision, outcome.events)


def reward_product(command: RewardCredit) -> str:
    return REWARD_PRODUCT


def reward_credit(state: CardState, command: RewardCredit, now_ms: int, tariff: Tariff) -> Outcome:
    rules = tariff.services.rewards
    if rules is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.SERVICE_NOT_OFFERED,
            REWARD_PRODUCT,
            {"rule": "service_offered", "service": "rewards"},
        )
    if command.operator not in rules.volunteer_operators:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.NOT_AUTHORISED,
            REWARD_PRODUCT,
            {"rule": "volunteer_operator", "operator": command.operator},
        )
    problem = quantity_problem(command.hours, rules.max_hours_per_credit, "hours")
    if problem is not None:
        reason, step = problem
        return decline(state, command, now_ms, tariff, reason, REWARD_PRODUCT, step)
    hours = command.hours
    earned = hours * rules.volunteer_points_per_hour
    services, added = add_points(services_of(state), earned, rules)
    steps = (
        {
            "rule": "volunteer_hours",
            "hours": hours,
            "points_per_hour": rules.volunteer_points_per_hour,
        },
        points_step("volunteer", earned, added, services.points, rules),
    )
    new_state = state if added == 0 else updated(state, services)
    return approve(
        new_state, command, now_ms, tariff, 0, REWARD_PRODUCT, EVENT_REWARD_CREDIT, steps
    )


def redeem_product(command: RedeemPoints) -> str:
    return REDEEM_PRODUCT


def redeem_points(state: CardState, command: RedeemPoints, now_ms: int, tariff: Tariff) -> Outcome:
    rules = tariff.services.rewards
    if rules is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.SERVICE_NOT_OFFERED,
            REDEEM_PRODUCT,
            {"rule": "service_offered", "service": "rewards"},
        )
    problem = quantity_problem(command.points, rules.max_points, "points")
    if problem is not None:
        reason, step = problem
        return decline(state, command, now_ms, tariff, reason, REDEEM_PRODUCT, step)
    points = command.points
    unit = rules.redeem_unit_points
    if points % unit:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INVALID_QUANTITY,
            REDEEM_PRODUCT,
            {"rule": "redeem_unit", "points": points, "unit_points": unit},
        )
    services = services_of(state)
    if points > services.points:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_POINTS,
            REDEEM_PRODUCT,
            {"rule": "points_held", "points": services.points, "required": points},
        )
    credit = points // unit * rules.redeem_unit_value
    balance = state.balance
    if balance + credit > tariff.max_balance:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.BALANCE_LIMIT,
            REDEEM_PRODUCT,
            {
                "rule": "max_balance",
                "balance": balance,
                "amount": credit,
                "max": tariff.max_balance,
            },
        )
    new_services = evolve(services, points=services.points - points)
    return approve(
        updated(state, new_services, balance + credit),
        command,
        now_ms,
        tariff,
        -credit,
        REDEEM_PRODUCT,
        EVENT_POINTS_REDEEMED,
        (
            {
                "rule": "redeem_points",
                "points": points,
                "unit_points": unit,
                "unit_value": rules.redeem_unit_value,
                "credit": credit,
                "points_left": new_services.points,
            },
        ),
        payee=rules.operator,
    )
