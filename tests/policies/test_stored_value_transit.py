"""Stored value on transit: the one-time negative balance allowance (Octopus-style) recovered at
the next top-up, and the automatic top-up request for the funding side."""

from __future__ import annotations

import orjson

from policies import CardState, Purchase, TopUp, decide, reasons
from policies.transit_state import AutoTopup
from tests.policies.transit_helpers import at, bus, card, ctran_tariff, metro, rule, run

T = ctran_tariff(negative_limit=300)
T0 = at("2025-10-06T08:00")
MIN = 60_000


def test_one_negative_tap_then_declined_until_topped_up() -> None:
    state, outs = run(card(100), [(metro("a"), T0), (metro("b"), T0 + MIN)], T)
    first, second = outs
    assert (first.decision.approved, first.decision.amount, first.decision.balance) == (
        True,
        250,
        -150,
    )
    assert rule(first, "negative_allowance") == {
        "rule": "negative_allowance",
        "balance_after": -150,
        "limit": 300,
    }
    assert (second.decision.reason, second.state) == (reasons.NEGATIVE_BALANCE, state)
    # Even a fare of 0 passes (nothing to pay), but a paid one does not.
    top = decide(state, TopUp("kiosk", "city", 1_000), T0 + 2 * MIN, T)
    assert (top.decision.amount, top.decision.balance) == (-1_000, 850)
    assert rule(top, "negative_recovered") == {
        "rule": "negative_recovered",
        "recovered": 150,
        "allowance_restored": True,
    }
    assert top.state is not None
    assert decide(top.state, metro("c"), T0 + 3 * MIN, T).decision.approved


def test_the_allowance_has_a_limit() -> None:
    out = decide(card(0), metro(), T0, ctran_tariff(negative_limit=200))
    assert out.decision.reason == reasons.INSUFFICIENT_FUNDS
    assert rule(out, "sufficient_funds")["negative_limit"] == 200
    # 0 (the default) means no overdraft at all: v1 behaviour.
    assert decide(card(100), metro(), T0, ctran_tariff()).decision.reason == "insufficient_funds"


def test_a_small_top_up_does_not_restore_the_allowance() -> None:
    state, _ = run(card(100), [(metro("a"), T0)], T)
    state, (top,) = run(state, [(TopUp("kiosk", "city", 100), T0 + MIN)], T)
    assert state.balance == -50 and rule(top, "negative_recovered")["allowance_restored"] is False
    assert decide(state, metro("b"), T0 + 2 * MIN, T).decision.reason == reasons.NEGATIVE_BALANCE


def test_only_transit_may_go_negative() -> None:
    out = decide(card(100), Purchase("till", "shop", 150, "bakery"), T0, T)
    assert out.decision.reason == reasons.INSUFFICIENT_FUNDS


def test_auto_topup_requested_once_when_a_charge_crosses_the_threshold() -> None:
    state = card(800, auto_topup=AutoTopup(threshold=500, amount=2_000))
    steps = [(metro("a"), T0), (bus("050"), T0 + MIN), (metro("c"), T0 + 9 * MIN)]
    state, outs = run(state, steps, T)
    first, second, _ = outs
    assert [len(o.events) for o in outs] == [1, 2, 1]  # 550, 425 (asks), 175: asked once
    charge, request = second.events
    assert (charge.type, charge.amount) == ("fare_charged", 125)
    assert (request.type, request.amount, request.balance, request.product) == (
        "auto_topup_requested",
        0,
        425,
        "auto_topup",
    )
    assert request.detail == {"amount": 2_000, "threshold": 500}
    assert request.operator == charge.operator and request.terminal_id == charge.terminal_id
    assert rule(second, "auto_topup") == {
        "rule": "auto_topup",
        "threshold": 500,
        "requested": 2_000,
    }
    assert state.auto_topup is not None and state.auto_topup.pending_ms == T0 + MIN
    assert CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state
    # The funding side's top-up clears the request; the next crossing asks again.
    state, _ = run(state, [(TopUp("bank", "city-funding", 2_000), T0 + 10 * MIN)], T)
    assert state.auto_topup is not None and state.auto_topup.pending_ms is None
    assert not first.events[0].detail


def test_auto_topup_after_any_charge_not_after_declines_or_credits() -> None:
    state = card(600, auto_topup=AutoTopup(threshold=500, amount=1_000))
    out = decide(state, Purchase("till", "shop", 200, "bakery"), T0, T)
    assert [e.type for e in out.events][-1] == "auto_topup_requested"
    declined = decide(card(10, auto_topup=AutoTopup(500, 1_000)), metro(), T0, ctran_tariff())
    assert len(declined.events) == 1 and not declined.decision.approved
    top = decide(card(10, auto_topup=AutoTopup(500, 1_000)), TopUp("k", "c", 100), T0, T)
    assert len(top.events) == 1
