"""Helpers every services rule shares: reading and replacing the card's services state, the
rider category, local time, and the decline / approve builders with the payee attribution.

This module owns the conventions of the services rules: a new card state is always built with
`dataclasses.replace`, so the fields other rules own (transit products, journeys) are carried
over whatever they are; the party owed money (or funding a credit) is the event's `operator`,
which is what settlement (ops/settlement.py) sums; explanations are tuples of small dicts, each
with a "rule" key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from operator import attrgetter

from policies import reasons
from policies._validate import MAX_SAFE_INT
from policies.concessions import effective_category
from policies.model import CardState, Outcome
from policies.outcomes import approved, declined
from policies.services.commands import ServiceCommand
from policies.services.local_time import LocalTime, local_time
from policies.services.state import EMPTY_SERVICES, ServicesState
from policies.tariff import Tariff

Step = Mapping[str, object]


def services_of(state: CardState) -> ServicesState:
    found = state.services
    return EMPTY_SERVICES if found is None else found


_CARD_FIELDS = fields(CardState)
_card_values = attrgetter(*(f.name for f in _CARD_FIELDS))
_BALANCE = [f.name for f in _CARD_FIELDS].index("balance")
_SERVICES = [f.name for f in _CARD_FIELDS].index("services")
_POSITIONAL = all(f.init and f.kw_only is not True for f in _CARD_FIELDS)
"""Every field can be passed positionally, in order: then a state is rebuilt from its own values
(twice as fast as `dataclasses.replace`, which dominated the cost of a service decision)."""


def updated(state: CardState, services: ServicesState, balance: int | None = None) -> CardState:
    """`state` with new services data (and balance); every other field carried over."""
    if not _POSITIONAL:
        if balance is None:
            return replace(state, services=services)
        return replace(state, balance=balance, services=services)
    values = list(_card_values(state))
    values[_SERVICES] = services
    if balance is not None:
        values[_BALANCE] = balance
    return CardState(*values)


def with_balance(state: CardState, balance: int) -> CardState:
    """`state` with a new balance; every other field carried over."""
    if not _POSITIONAL:
        return replace(state, balance=balance)
    values = list(_card_values(state))
    values[_BALANCE] = balance
    return CardState(*values)


def rider_category(state: CardState, now_ms: int, tariff: Tariff) -> str:
    """The rider category the services rules apply (discounts, facility access): the same one
    fares use (policies/concessions.py: an expired concession falls back to the tariff's
    default category). A category the transit tariff does not define stays as the card says:
    services match categories by name and simply find no discount or access for it."""
    if state.category_until_ms is None:
        return state.category
    resolved = effective_category(state, now_ms, tariff.transit)
    return state.category if resolved is None else resolved.name


def now_local(tariff: Tariff, now_ms: int) -> LocalTime:
    zone = tariff.services.timezone
    return local_time(tariff.transit.timezone if zone is None else zone, now_ms)


def decline(
    state: CardState,
    command: ServiceCommand,
    now_ms: int,
    tariff: Tariff,
    reason: str,
    product: str,
    *steps: Step,
) -> Outcome:
    """Refuse: nothing charged, `state` itself handed back, one "declined" event."""
    return declined(
        state, command.terminal_id, command.operator, now_ms, tariff, reason, product, steps
    )


def approve(
    new_state: CardState,
    command: ServiceCommand,
    now_ms: int,
    tariff: Tariff,
    amount: int,
    product: str,
    event_type: str,
    steps: tuple[Step, ...],
    *,
    payee: str | None = None,
    reason: str = reasons.OK,
) -> Outcome:
    """Accept; `payee` (default: the terminal's operator) is who is owed `amount` (or who funds
    a credit) and becomes the event's `operator`."""
    return approved(
        new_state,
        command.terminal_id,
        command.operator if payee is None else payee,
        now_ms,
        tariff,
        reason,
        amount,
        product,
        event_type,
        steps,
    )


def funds_step(balance: int, required: int) -> Step:
    return {"rule": "sufficient_funds", "balance": balance, "required": required}


def quantity_problem(value: object, maximum: int, what: str) -> tuple[str, Step] | None:
    """(reason, step) when a stated quantity (grams, hours, points) is not a positive int or is
    above `maximum`; like `policies.amounts.amount_problem` for quantities that are not money."""
    if isinstance(value, bool) or not isinstance(value, int):
        return reasons.INVALID_QUANTITY, {
            "rule": "quantity_positive_int",
            "quantity": what,
            "type": type(value).__name__,
        }
    if value <= 0:
        return reasons.INVALID_QUANTITY, {
            "rule": "quantity_positive_int",
            what: max(value, -MAX_SAFE_INT),
        }
    if value > maximum:
        # The echoed value is clipped so a 40-digit claim cannot make the decision unsigned.
        return reasons.IMPLAUSIBLE_QUANTITY, {
            "rule": "plausible_quantity",
            what: min(value, MAX_SAFE_INT),
            "max": maximum,
        }
    return None
