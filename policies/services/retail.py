"""Retail micropayments: the till states the amount, the merchant category picks discounts.

This module owns the retail payment rule (`RetailPayment`, the `purchase` op of retail and venue
tills): the amount must be a positive int within the tariff's `max_purchase` (the same check as
the v1 `Purchase` in policies/retail.py), the best discount of the network for the card's rider
category, merchant and merchant category comes off (policies/services/discounts.py), and the
balance must cover what is left. The payee is the merchant, so settlement gives a per-merchant
ledger (with a per-till breakdown by terminal id).
"""

from __future__ import annotations

from policies import reasons
from policies.amounts import amount_problem
from policies.model import CardState, Outcome
from policies.services._common import Step, approve, decline, funds_step, with_balance
from policies.services.commands import EVENT_RETAIL_PAYMENT, RetailPayment
from policies.services.discounts import best_discount
from policies.services.entitlements import use_grant
from policies.tariff import Tariff


def retail_product(command: RetailPayment) -> str:
    return "retail:" + command.category


def retail_payment(
    state: CardState, command: RetailPayment, now_ms: int, tariff: Tariff
) -> Outcome:
    product = "retail:" + command.category
    amount = command.amount
    problem = amount_problem(amount, tariff.max_purchase, "max_purchase")
    if problem is not None:
        reason, step = problem
        return decline(state, command, now_ms, tariff, reason, product, step)
    saving, discount, grant = best_discount(
        state,
        now_ms,
        tariff,
        amount,
        merchant=command.merchant,
        merchant_category=command.category,
    )
    charge = amount - saving
    steps: tuple[Step, ...] = (
        {
            "rule": "retail_payment",
            "merchant": command.merchant,
            "category": command.category,
            "amount": amount,
        },
    )
    if discount is not None:
        steps = (*steps, discount)
    balance = state.balance
    if balance < charge:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            product,
            *steps,
            funds_step(balance, charge),
        )
    if grant is not None:
        state = use_grant(state, grant, now_ms, tariff)
    return approve(
        with_balance(state, balance - charge),
        command,
        now_ms,
        tariff,
        charge,
        product,
        EVENT_RETAIL_PAYMENT,
        steps,
        payee=command.merchant,
    )
