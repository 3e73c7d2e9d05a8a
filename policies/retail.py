"""Retail purchases: paying a merchant's till or handheld from the card's stored value.

This module owns the v1 purchase rule: the amount the terminal states must be a positive integer
no larger than the tariff's per-purchase maximum, and the balance must cover it (no overdraft).
This is the core's plain `Purchase` command; terminals of kind `retail` and `venue` send
`RetailPayment` instead (policies/services/retail.py: merchant category, discount network, the
merchant as payee), and taxis, car parks and venues have their own rules in policies/services/.
"""

from __future__ import annotations

from dataclasses import replace

from policies import reasons
from policies.amounts import amount_problem
from policies.model import EVENT_PURCHASE, CardState, Outcome, Purchase
from policies.outcomes import approved, declined
from policies.tariff import Tariff

PRODUCT = "purchase"


def purchase_product(command: Purchase) -> str:
    return PRODUCT


def purchase(state: CardState, command: Purchase, now_ms: int, tariff: Tariff) -> Outcome:
    amount = command.amount
    problem = amount_problem(amount, tariff.max_purchase, "max_purchase")
    if problem is not None:
        reason, step = problem
        return declined(
            state,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reason,
            PRODUCT,
            (step,),
        )
    balance = state.balance
    if balance < amount:
        return declined(
            state,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            PRODUCT,
            ({"rule": "sufficient_funds", "balance": balance, "required": amount},),
        )
    # replace() carries every other field (products, transit, services) over unchanged.
    new_state = replace(state, balance=balance - amount)
    return approved(
        new_state,
        command.terminal_id,
        command.operator,
        now_ms,
        tariff,
        reasons.OK,
        amount,
        PRODUCT,
        EVENT_PURCHASE,
        ({"rule": "purchase", "merchant": command.merchant, "amount": amount},),
    )
