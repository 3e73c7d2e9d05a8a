"""Operator commands: what the control room does to a card by hand — a refund or correction of
its balance, and blocking or unblocking it — decided here like any tap, so that each is a
deterministic decision with one event, journaled, settled and replayable.

Both work on a blocked card (refunding or unblocking one is the point); neither earns reward
points or triggers an automatic top-up. The event of an adjustment names who funds the credit
(or receives the debit), which is whom settlement attributes the money to.
"""

from __future__ import annotations

from typing import Final

from policies import reasons
from policies.evolve import evolve
from policies.model import (
    EVENT_BALANCE_ADJUSTMENT,
    EVENT_CARD_BLOCKED,
    EVENT_CARD_UNBLOCKED,
    BalanceAdjustment,
    CardState,
    CardStatusChange,
    Event,
    Outcome,
)
from policies.outcomes import approved, declined
from policies.tariff import Tariff

#: Largest refund or correction one command makes, minor units.
MAX_ADJUSTMENT: Final = 100_000
#: Longest note (the operator's reason) kept with a command.
MAX_NOTE_CHARS: Final = 200
ADJUSTMENT_PRODUCT: Final = "adjustment"
STATUS_PRODUCT: Final = "card_status"
STATUSES: Final = ("active", "blocked")


def adjustment_product(command: BalanceAdjustment) -> str:
    return ADJUSTMENT_PRODUCT


def status_product(command: CardStatusChange) -> str:
    return STATUS_PRODUCT


def _note_problem(note: object) -> dict[str, object] | None:
    if not isinstance(note, str) or not note.strip():
        return {"rule": "note_given"}
    if len(note) > MAX_NOTE_CHARS:
        return {"rule": "note_length", "max": MAX_NOTE_CHARS}
    return None


def _attribution_problem(command: BalanceAdjustment | CardStatusChange) -> dict[str, object] | None:
    """Money and blocks must be attributable: a named operator and terminal."""
    for name in ("operator", "terminal_id"):
        value = getattr(command, name)
        if not isinstance(value, str) or not value.strip():
            return {"rule": "attributed", "missing": name}
    return None


def _with_note(outcome: Outcome, note: str) -> Outcome:
    """The outcome with the note on its (single) event."""
    e = outcome.events[0]
    event = Event(
        e.type, e.card_id, e.amount, e.balance, e.operator, e.terminal_id, e.time_ms, e.reason,
        e.tariff_version, e.product, {"note": note},
    )
    return Outcome(outcome.state, outcome.decision, (event,))


def balance_adjustment(
    state: CardState, command: BalanceAdjustment, now_ms: int, tariff: Tariff
) -> Outcome:
    def refuse(reason: str, step: dict[str, object]) -> Outcome:
        return declined(state, command.terminal_id, command.operator, now_ms, tariff, reason,
                        ADJUSTMENT_PRODUCT, (step,))

    who = _attribution_problem(command)
    if who is not None:
        return refuse(reasons.NOT_AUTHORISED, who)
    note = _note_problem(command.note)
    if note is not None:
        return refuse(reasons.INVALID_NOTE, note)
    credit = command.credit
    if isinstance(credit, bool) or not isinstance(credit, int) or credit == 0:
        return refuse(reasons.INVALID_AMOUNT, {"rule": "credit_nonzero_int"})
    if abs(credit) > MAX_ADJUSTMENT:
        return refuse(reasons.AMOUNT_TOO_LARGE, {"rule": "max_adjustment", "max": MAX_ADJUSTMENT})
    if state.balance + credit < 0:
        return refuse(
            reasons.INSUFFICIENT_FUNDS,
            {"rule": "adjustment_covered", "balance": state.balance, "credit": credit},
        )
    if credit > 0 and state.balance + credit > tariff.max_balance:
        return refuse(
            reasons.BALANCE_LIMIT,
            {"rule": "max_balance", "balance": state.balance, "max": tariff.max_balance},
        )
    outcome = approved(
        evolve(state, balance=state.balance + credit),
        command.terminal_id, command.operator, now_ms, tariff, reasons.OK, -credit,
        ADJUSTMENT_PRODUCT, EVENT_BALANCE_ADJUSTMENT,
        ({"rule": "operator_adjustment", "credit": credit},),
    )
    return _with_note(outcome, command.note)


def card_status_change(
    state: CardState, command: CardStatusChange, now_ms: int, tariff: Tariff
) -> Outcome:
    problem = _attribution_problem(command)
    reason = reasons.NOT_AUTHORISED
    if problem is None:
        problem, reason = _note_problem(command.note), reasons.INVALID_NOTE
    if problem is not None:
        return declined(state, command.terminal_id, command.operator, now_ms, tariff,
                        reason, STATUS_PRODUCT, (problem,))
    if command.status not in STATUSES:
        return declined(
            state, command.terminal_id, command.operator, now_ms, tariff,
            reasons.UNSUPPORTED_OPERATION, STATUS_PRODUCT,
            ({"rule": "status_known", "statuses": list(STATUSES)},),
        )
    new_state = state if state.status == command.status else evolve(state, status=command.status)
    outcome = approved(
        new_state, command.terminal_id, command.operator, now_ms, tariff, reasons.OK, 0,
        STATUS_PRODUCT, EVENT_CARD_BLOCKED if command.status == "blocked" else EVENT_CARD_UNBLOCKED,
        ({"rule": "operator_status", "status": command.status, "was": state.status},),
    )
    return _with_note(outcome, command.note)
