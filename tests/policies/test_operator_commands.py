"""Operator commands in the pure core: refunds and corrections, blocking and unblocking —
every approval and decline, and properties (the balance moves by exactly the credit, block then
unblock restores the card, a blocked card refuses taps but takes operator commands, and the
same inputs give the same outcome)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    BalanceAdjustment,
    CardState,
    CardStatusChange,
    FareTap,
    Purchase,
    decide,
    default_tariff,
    reasons,
)
from policies.operator_commands import MAX_ADJUSTMENT, MAX_NOTE_CHARS

T0 = 1_767_225_600_000
TARIFF = default_tariff()


def card(balance: int = 1_000, status: str = "active") -> CardState:
    return CardState.from_dict({"card_id": "card-1", "balance": balance, "status": status})


def adjust(credit: int, note: str = "double charge", funder: str = "citycard") -> BalanceAdjustment:
    return BalanceAdjustment("control-room", funder, credit, note)


def status(s: str, note: str = "reported lost") -> CardStatusChange:
    return CardStatusChange("control-room", "alice", s, note)


def test_a_refund_credits_the_card_and_names_its_funder() -> None:
    out = decide(card(1_000), adjust(250, funder="metro"), T0, TARIFF)
    d = out.decision
    assert (d.approved, d.reason, d.amount, d.balance, d.product) == (
        True, reasons.OK, -250, 1_250, "adjustment")
    assert out.state is not None and out.state.balance == 1_250
    (event,) = out.events
    assert (event.type, event.amount, event.operator, event.detail) == (
        "balance_adjustment", -250, "metro", {"note": "double charge"})


def test_a_correction_debits_but_never_below_zero() -> None:
    assert decide(card(1_000), adjust(-400), T0, TARIFF).decision.balance == 600
    d = decide(card(100), adjust(-101), T0, TARIFF).decision
    assert (d.approved, d.reason, d.amount, d.balance) == (
        False, reasons.INSUFFICIENT_FUNDS, 0, 100)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (adjust(0), reasons.INVALID_AMOUNT),
        (adjust(MAX_ADJUSTMENT + 1), reasons.AMOUNT_TOO_LARGE),
        (adjust(-MAX_ADJUSTMENT - 1), reasons.AMOUNT_TOO_LARGE),
        (adjust(True), reasons.INVALID_AMOUNT),  # type: ignore[arg-type]
        (adjust(10, note=""), reasons.INVALID_NOTE),
        (adjust(10, note="   "), reasons.INVALID_NOTE),
        (adjust(10, note="x" * (MAX_NOTE_CHARS + 1)), reasons.INVALID_NOTE),
        (status("stolen"), reasons.UNSUPPORTED_OPERATION),
        (status("blocked", note=""), reasons.INVALID_NOTE),
        (adjust(10, funder=""), reasons.NOT_AUTHORISED),  # money no one funds
        (CardStatusChange("", "alice", "blocked", "lost"), reasons.NOT_AUTHORISED),
    ],
)
def test_bad_commands_are_declined_and_change_nothing(command: object, reason: str) -> None:
    before = card(1_000)
    out = decide(before, command, T0, TARIFF)  # type: ignore[arg-type]
    assert (out.decision.approved, out.decision.reason) == (False, reason)
    assert out.state is before and out.decision.amount == 0


def test_a_refund_beyond_the_maximum_balance_is_declined() -> None:
    full = card(TARIFF.max_balance - 5)
    assert decide(full, adjust(10), T0, TARIFF).decision.reason == reasons.BALANCE_LIMIT


def test_unknown_cards_are_declined() -> None:
    for command in (adjust(100), status("blocked")):
        d = decide(None, command, T0, TARIFF).decision
        assert (d.approved, d.reason, d.balance) == (False, reasons.UNKNOWN_CARD, 0)


def test_blocking_is_idempotent_and_unblocking_restores() -> None:
    c = card()
    blocked = decide(c, status("blocked"), T0, TARIFF)
    assert blocked.decision.approved and blocked.state is not None
    assert blocked.state.status == "blocked" and blocked.events[0].type == "card_blocked"
    again = decide(blocked.state, status("blocked"), T0 + 1, TARIFF)
    assert again.decision.approved and again.state is blocked.state
    back = decide(blocked.state, status("active", "found"), T0 + 2, TARIFF)
    assert back.state == c and back.events[0].type == "card_unblocked"


def test_a_blocked_card_takes_operator_commands_only() -> None:
    blocked = card(1_000, status="blocked")
    for tap in (FareTap("g", "metro", "METRO", "g"), Purchase("t", "shop", 100, "shop")):
        assert decide(blocked, tap, T0, TARIFF).decision.reason == reasons.CARD_BLOCKED
    refund = decide(blocked, adjust(300), T0, TARIFF)
    assert refund.decision.approved and refund.state is not None
    assert refund.state.balance == 1_300 and refund.state.status == "blocked"


@given(
    balance=st.integers(0, 1_000_000),
    credit=st.integers(-MAX_ADJUSTMENT, MAX_ADJUSTMENT).filter(bool),
)
def test_the_balance_moves_by_exactly_the_credit(balance: int, credit: int) -> None:
    before = card(balance)
    out = decide(before, adjust(credit), T0, TARIFF)
    assert out == decide(before, adjust(credit), T0, TARIFF)  # deterministic
    after = out.state.balance if out.state is not None else balance
    if out.decision.approved:
        assert after - balance == credit == -out.decision.amount
    else:
        assert after == balance and out.state is before
    assert sum(e.amount for e in out.events) == out.decision.amount


@given(balance=st.integers(-500, 10_000), note=st.text(min_size=1, max_size=40).filter(str.strip))
def test_block_then_unblock_is_the_card_again(balance: int, note: str) -> None:
    c = card(balance)
    blocked = decide(c, status("blocked", note), T0, TARIFF).state
    assert blocked is not None
    assert decide(blocked, status("active", note), T0, TARIFF).state == c
