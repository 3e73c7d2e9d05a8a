"""Recycling credits: a kiosk reports material and weight; the card is credited per material.

This module owns the recycling rule. The material must be one the tariff credits and the weight a
positive number of grams no larger than the material's `max_deposit_g` (a plausibility bound: a
kiosk claiming 10 tonnes of cardboard is declined `implausible_quantity`). The credit is
`weight_g * rate_per_kg // 1000` (rounded down), clipped so that the card's recycling credit on
the local calendar day never exceeds `daily_max_credit` and the balance never exceeds the
tariff's `max_balance`; when nothing at all can be credited the deposit is declined
(`daily_limit`, `balance_limit`). Reward points (`points_per_kg`) accrue in the same proportion
as the credit was clipped. The credit is a negative amount funded by the kiosk's operator.
"""

from __future__ import annotations

from policies import reasons
from policies.model import CardState, Outcome
from policies.services._common import (
    Step,
    approve,
    decline,
    now_local,
    quantity_problem,
    services_of,
    updated,
)
from policies.services.commands import EVENT_RECYCLE_CREDIT, RecycleDeposit
from policies.services.rewards import add_points, points_step
from policies.services.state import evolve
from policies.tariff import Tariff


def recycle_product(command: RecycleDeposit) -> str:
    return "recycle:" + command.material


def recycle(state: CardState, command: RecycleDeposit, now_ms: int, tariff: Tariff) -> Outcome:
    product = "recycle:" + command.material
    rules = tariff.services.recycling
    if rules is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.SERVICE_NOT_OFFERED,
            product,
            {"rule": "service_offered", "service": "recycling"},
        )
    material = rules.materials.get(command.material)
    if material is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.UNKNOWN_MATERIAL,
            product,
            {"rule": "material_known", "material": command.material},
        )
    problem = quantity_problem(command.weight_g, material.max_deposit_g, "weight_g")
    if problem is not None:
        reason, step = problem
        return decline(state, command, now_ms, tariff, reason, product, step)
    weight = command.weight_g
    full = weight * material.rate_per_kg // 1000
    steps: list[Step] = [
        {
            "rule": "recycling_rate",
            "material": command.material,
            "weight_g": weight,
            "rate_per_kg": material.rate_per_kg,
            "credit": full,
        }
    ]
    services = services_of(state)
    day = now_local(tariff, now_ms).day
    today = services.recycle_day[1] if services.recycle_day[0] == day else 0
    credit = min(full, max(0, rules.daily_max_credit - today))
    if credit < full:
        steps.append(
            {
                "rule": "recycling_daily_limit",
                "credited_today": today,
                "max_per_day": rules.daily_max_credit,
                "credit": credit,
            }
        )
        if credit == 0:
            return decline(state, command, now_ms, tariff, reasons.DAILY_LIMIT, product, *steps)
    balance = state.balance
    room = max(0, tariff.max_balance - balance)
    if credit > room:
        steps.append(
            {"rule": "max_balance", "balance": balance, "max": tariff.max_balance, "credit": room}
        )
        if room == 0:
            return decline(state, command, now_ms, tariff, reasons.BALANCE_LIMIT, product, *steps)
        credit = room
    new_services = evolve(services, recycle_day=(day, today + credit))
    rewards = tariff.services.rewards
    if rewards is not None and material.points_per_kg > 0:
        earned = weight * material.points_per_kg // 1000
        if credit < full:
            earned = earned * credit // full
        new_services, added = add_points(new_services, earned, rewards)
        steps.append(points_step("recycling", earned, added, new_services.points, rewards))
    new_state = (
        state if new_services == services else updated(state, new_services, balance + credit)
    )
    return approve(
        new_state, command, now_ms, tariff, -credit, product, EVENT_RECYCLE_CREDIT, tuple(steps)
    )
