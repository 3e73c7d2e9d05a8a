"""Stored value: loading money onto the card, the negative balance it recovers, automatic top-up.

This module owns the top-up rule: the amount must be a positive integer no larger than the
tariff's per-top-up maximum, and the resulting balance must stay within the tariff's maximum
balance (a cap on what is lost with a lost card, and a regulatory limit on e-money). A top-up is
a credit, so the decision's amount is negative. A top-up onto a negative balance (the one-time
transit allowance, policies/transit.py) recovers it first, and says so; it also answers an
outstanding automatic top-up request.

It also owns automatic top-up (`request_auto_topup`, applied by `decide` after every rule): when
an approved charge leaves the balance below the card's `AutoTopup.threshold`, an
`auto_topup_requested` event (amount 0; `detail` says how much to load) is added for the
funding side, once: no new request is made until a top-up arrives.
"""

from __future__ import annotations

from dataclasses import replace

from policies import reasons
from policies.amounts import amount_problem
from policies.evolve import evolve
from policies.model import EVENT_AUTO_TOPUP_REQUESTED, EVENT_TOPUP, CardState, Event, Outcome, TopUp
from policies.outcomes import approved, declined
from policies.tariff import Tariff

PRODUCT = "topup"
AUTO_TOPUP_PRODUCT = "auto_topup"


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
    auto = state.auto_topup
    if auto is not None and auto.pending_ms is not None:
        new_state = evolve(
            state, balance=balance + amount, auto_topup=replace(auto, pending_ms=None)
        )
    else:
        new_state = evolve(state, balance=balance + amount)
    if balance < 0:
        explain: tuple[dict[str, object], ...] = (
            {"rule": "topup", "amount": amount},
            {
                "rule": "negative_recovered",
                "recovered": min(-balance, amount),
                "allowance_restored": balance + amount >= 0,
            },
        )
    else:
        explain = ({"rule": "topup", "amount": amount},)
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
        explain,
    )


def request_auto_topup(before: CardState, outcome: Outcome, now_ms: int) -> Outcome:
    """`outcome` with an auto top-up request added when its charge crossed the threshold.

    Called by `decide` only for a card whose `auto_topup` is set."""
    state = outcome.state
    decision = outcome.decision
    if state is None or state is before or not decision.approved or decision.amount <= 0:
        return outcome
    auto = state.auto_topup
    if auto is None or auto.pending_ms is not None or state.balance >= auto.threshold:
        return outcome
    new_state = replace(state, auto_topup=replace(auto, pending_ms=now_ms))
    first = outcome.events[0]
    request = Event(
        EVENT_AUTO_TOPUP_REQUESTED,
        state.card_id,
        0,
        state.balance,
        first.operator,
        first.terminal_id,
        now_ms,
        reasons.OK,
        decision.tariff_version,
        AUTO_TOPUP_PRODUCT,
        {"amount": auto.amount, "threshold": auto.threshold},
    )
    explain = (
        *decision.explain,
        {"rule": "auto_topup", "threshold": auto.threshold, "requested": auto.amount},
    )
    return Outcome(new_state, replace(decision, explain=explain), (*outcome.events, request))
