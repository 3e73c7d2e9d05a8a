"""Taxi: the driver's handheld charges the metered amount, within per-tap and per-day limits.

This module owns the taxi rule. The amount must be a positive int no larger than the tariff's
`max_per_tap`, and the card's taxi spending on the local calendar day (timezone of the services
tariff) must stay within `max_per_day`. A `trip_id` makes a re-tap of the same trip safe: the
same terminal, trip and amount is answered `repeat_tap` with nothing charged, a different amount
for a trip already charged is declined `duplicate_trip`. The payee is the terminal's operator
(the driver's registration or the taxi company); the handheld's terminal id identifies the driver,
so settlement's per-terminal breakdown is the driver's earnings ledger.
"""

from __future__ import annotations

from policies import reasons
from policies.amounts import amount_problem
from policies.model import EVENT_REPEAT_TAP, CardState, Outcome
from policies.services._common import (
    approve,
    decline,
    funds_step,
    now_local,
    services_of,
    updated,
)
from policies.services.commands import EVENT_TAXI_FARE, TaxiFare
from policies.services.state import MAX_TRIPS, evolve
from policies.tariff import Tariff

PRODUCT = "taxi"


def taxi_product(command: TaxiFare) -> str:
    return PRODUCT


def taxi_fare(state: CardState, command: TaxiFare, now_ms: int, tariff: Tariff) -> Outcome:
    rules = tariff.services.taxi
    if rules is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.SERVICE_NOT_OFFERED,
            PRODUCT,
            {"rule": "service_offered", "service": "taxi"},
        )
    amount = command.amount
    problem = amount_problem(amount, rules.max_per_tap, "taxi_max_per_tap")
    if problem is not None:
        reason, step = problem
        return decline(state, command, now_ms, tariff, reason, PRODUCT, step)
    services = services_of(state)
    trip = command.trip_id
    if trip:
        for terminal, seen_trip, seen_amount in services.trips:
            if terminal == command.terminal_id and seen_trip == trip:
                step = {"rule": "trip_once", "trip_id": trip, "charged": seen_amount}
                if seen_amount == amount:
                    return approve(
                        state,
                        command,
                        now_ms,
                        tariff,
                        0,
                        PRODUCT,
                        EVENT_REPEAT_TAP,
                        (step,),
                        reason=reasons.REPEAT_TAP,
                    )
                return decline(
                    state, command, now_ms, tariff, reasons.DUPLICATE_TRIP, PRODUCT, step
                )
    day = now_local(tariff, now_ms).day
    spent = services.taxi_day[1] if services.taxi_day[0] == day else 0
    limit = {
        "rule": "taxi_daily_limit",
        "spent_today": spent,
        "amount": amount,
        "max_per_day": rules.max_per_day,
    }
    if spent + amount > rules.max_per_day:
        return decline(state, command, now_ms, tariff, reasons.DAILY_LIMIT, PRODUCT, limit)
    balance = state.balance
    if balance < amount:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            PRODUCT,
            limit,
            funds_step(balance, amount),
        )
    trips = services.trips
    if trip:
        trips = (*trips, (command.terminal_id, trip, amount))[-MAX_TRIPS:]
    new_services = evolve(services, taxi_day=(day, spent + amount), trips=trips)
    metered = {
        "rule": "taxi_metered",
        "amount": amount,
        "driver": command.terminal_id,
        "operator": command.operator,
    }
    if trip:
        metered["trip_id"] = trip
    return approve(
        updated(state, new_services, balance - amount),
        command,
        now_ms,
        tariff,
        amount,
        PRODUCT,
        EVENT_TAXI_FARE,
        (metered, limit),
    )
