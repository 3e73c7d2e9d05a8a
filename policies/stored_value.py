"""Stored value: loading money onto the card.

This module owns the v1 top-up rule: the amount must be a positive integer no larger than the
tariff's per-top-up maximum, and the resulting balance must stay within the tariff's maximum
balance (a cap on what is lost with a lost card, and a regulatory limit on e-money). A top-up is
a credit, so the decision's amount is negative. Refunds and reward credits will live here too.
"""

from __future__ import annotations

from policies import reasons
from policies.amounts import amount_problem
from policies.model import EVENT_TOPUP, CardState, Outcome, TopUp
from policies.outcomes import approved, declined
from policies.tariff import Tariff

PRODUCT = "topup"


def topup_product(command: TopUp) -> str:
    return PRODUCT


def topup(state: CardState, command: TopUp, now_ms: int, tariff: Tariff) -> Outcome:
    amount = command.amount
    problem = amount_problem(amount, tariff.max_topup, "max_topup")
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
    if balance + amount > tariff.max_balance:
        return declined(
            state,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reasons.BALANCE_LIMIT,
            PRODUCT,
            (
                {
                    "rule": "max_balance",
                    "balance": balance,
                    "amount": amount,
                    "max": tariff.max_balance,
                },
            ),
        )
    new_state = CardState(
        state.card_id, balance + amount, state.status, state.category, state.recent_taps
    )
    return approved(
        new_state,
        command.terminal_id,
        command.operator,
        now_ms,
        tariff,
        reasons.OK,
        -amount,
        PRODUCT,
        EVENT_TOPUP,
        ({"rule": "topup", "amount": amount},),
    )
