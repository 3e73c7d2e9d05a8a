"""Example tests: one or more per v1 rule of `decide`, against the default city tariff."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from policies import (
    MAX_RECENT_TAPS,
    CardState,
    Command,
    FareTap,
    Outcome,
    Purchase,
    Tariff,
    TopUp,
    decide,
    default_tariff,
    reasons,
)

T0 = 1_767_225_600_000
TARIFF = default_tariff()
WINDOW = TARIFF.double_tap_window_ms


def card(balance: int = 1_000, status: str = "active", **kw: object) -> CardState:
    return CardState.from_dict({"card_id": "card-1", "balance": balance, "status": status} | kw)


def tap(network: str = "METRO", gate: str = "gate-A", terminal: str = "gate-A-1") -> FareTap:
    return FareTap(terminal, "metro-op", network, gate)


def buy(amount: object) -> Purchase:
    return Purchase("till-1", "shop-op", amount, "bakery")  # type: ignore[arg-type]


def top(amount: object) -> TopUp:
    return TopUp("kiosk-1", "city", amount)  # type: ignore[arg-type]


def assert_declined(outcome: Outcome, state: CardState | None, reason: str) -> None:
    """A decline charges nothing, changes nothing and journals exactly one 'declined' event."""
    d = outcome.decision
    assert (d.approved, d.reason, d.amount) == (False, reason, 0)
    assert outcome.state is state
    assert d.balance == (state.balance if state else 0)
    assert d.tariff_version == TARIFF.version
    assert d.explain, "every decision says which rule applied"
    (event,) = outcome.events
    assert (event.type, event.reason, event.amount) == ("declined", reason, 0)
    assert event.card_id == (state.card_id if state else None)
    assert_serialisable(outcome)


def assert_serialisable(outcome: Outcome) -> None:
    orjson.dumps(outcome.decision.to_dict())
    for event in outcome.events:
        orjson.dumps(event.to_dict())


# -- card checks shared by every operation -----------------------------------------------------


@pytest.mark.parametrize("command", [tap(), buy(100), top(100)], ids=["tap", "buy", "top"])
def test_unknown_card(command: Command) -> None:
    outcome = decide(None, command, T0, TARIFF)
    assert_declined(outcome, None, reasons.UNKNOWN_CARD)
    assert outcome.decision.explain == ({"rule": "card_known"},)
    assert outcome.events[0].terminal_id == command.terminal_id
    assert outcome.events[0].operator == command.operator
    assert outcome.events[0].time_ms == T0


@pytest.mark.parametrize("command", [tap(), buy(100), top(100)], ids=["tap", "buy", "top"])
def test_blocked_card(command: Command) -> None:
    state = card(status="blocked")
    assert_declined(decide(state, command, T0, TARIFF), state, reasons.CARD_BLOCKED)


def test_blocked_card_even_on_a_repeat_tap() -> None:
    state = card(status="blocked", recent_taps=[["gate-A", T0 - 1]])
    assert_declined(decide(state, tap(), T0, TARIFF), state, reasons.CARD_BLOCKED)


@dataclass(frozen=True)
class Teleport:
    terminal_id: str
    operator: str


@pytest.mark.parametrize("state", [None, card()], ids=["unknown", "known"])
def test_unsupported_operation(state: CardState | None) -> None:
    outcome = decide(state, Teleport("t-1", "op"), T0, TARIFF)  # type: ignore[arg-type]
    assert_declined(outcome, state, reasons.UNSUPPORTED_OPERATION)
    assert outcome.events[0].terminal_id == "t-1"


def test_unsupported_operation_without_attribution() -> None:
    outcome = decide(card(), object(), T0, TARIFF)  # type: ignore[arg-type]
    assert outcome.decision.reason == reasons.UNSUPPORTED_OPERATION
    assert outcome.events[0].terminal_id == ""


# -- FareTap ------------------------------------------------------------------------------------


def test_fare_charged() -> None:
    state = card(1_000, category="child")
    outcome = decide(state, tap("METRO"), T0, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance) == (True, reasons.OK, 250, 750)
    assert d.product == "fare:METRO"
    assert d.explain == ({"rule": "flat_fare", "network": "METRO", "fare": 250},)
    assert outcome.state == CardState("card-1", 750, "active", "child", (("gate-A", T0),))
    (event,) = outcome.events
    assert (event.type, event.amount, event.balance) == ("fare_charged", 250, 750)
    assert (event.terminal_id, event.operator, event.time_ms) == ("gate-A-1", "metro-op", T0)
    assert_serialisable(outcome)


@pytest.mark.parametrize(("network", "fare"), [("BUS", 200), ("TRAM", 200), ("METRO", 250)])
def test_fare_per_network(network: str, fare: int) -> None:
    assert decide(card(), tap(network), T0, TARIFF).decision.amount == fare


def test_unknown_network() -> None:
    state = card()
    outcome = decide(state, tap("FERRY"), T0, TARIFF)
    assert_declined(outcome, state, reasons.UNKNOWN_NETWORK)
    assert outcome.decision.product == "fare:FERRY"


def test_insufficient_funds_for_fare() -> None:
    state = card(249)
    outcome = decide(state, tap("METRO"), T0, TARIFF)
    assert_declined(outcome, state, reasons.INSUFFICIENT_FUNDS)
    assert outcome.decision.explain[-1] == {
        "rule": "sufficient_funds",
        "balance": 249,
        "required": 250,
    }


def test_exact_balance_pays_the_fare() -> None:
    assert decide(card(250), tap("METRO"), T0, TARIFF).decision.balance == 0


def test_free_network_still_records_the_tap() -> None:
    tariff = Tariff("free", "EUR", {"FREE": 0}, WINDOW, 50_000, 1, 1)
    outcome = decide(card(0), tap("FREE"), T0, tariff)
    assert (outcome.decision.reason, outcome.decision.amount) == (reasons.OK, 0)
    assert outcome.state is not None
    assert outcome.state.recent_taps == (("gate-A", T0),)


@pytest.mark.parametrize("later", [0, 1, WINDOW - 1])
def test_repeat_tap_inside_window(later: int) -> None:
    state = decide(card(), tap(), T0, TARIFF).state
    assert state is not None
    outcome = decide(state, tap(terminal="gate-A-2"), T0 + later, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance) == (True, reasons.REPEAT_TAP, 0, 750)
    assert outcome.state is state
    assert d.explain == (
        {"rule": "double_tap", "gate": "gate-A", "last_tap_ms": T0, "window_ms": WINDOW},
    )
    (event,) = outcome.events
    assert (event.type, event.amount, event.reason) == ("repeat_tap", 0, reasons.REPEAT_TAP)


def test_window_is_strict() -> None:
    state = decide(card(), tap(), T0, TARIFF).state
    assert state is not None
    outcome = decide(state, tap(), T0 + WINDOW, TARIFF)
    assert (outcome.decision.reason, outcome.decision.amount) == (reasons.OK, 250)
    assert outcome.state is not None
    assert outcome.state.recent_taps == (("gate-A", T0 + WINDOW),)


def test_repeat_on_another_gate_is_charged() -> None:
    state = decide(card(), tap(gate="gate-A"), T0, TARIFF).state
    assert state is not None
    assert decide(state, tap(gate="gate-B"), T0 + 1, TARIFF).decision.amount == 250


def test_repeat_tap_needs_no_funds() -> None:
    state = decide(card(250), tap(), T0, TARIFF).state
    assert state is not None and state.balance == 0
    assert decide(state, tap(), T0 + 10, TARIFF).decision.reason == reasons.REPEAT_TAP


def test_repeats_do_not_extend_the_window() -> None:
    state = decide(card(), tap(), T0, TARIFF).state
    assert state is not None
    assert decide(state, tap(), T0 + 50_000, TARIFF).state is state
    assert decide(state, tap(), T0 + WINDOW + 1_000, TARIFF).decision.amount == 250


def test_zero_window_disables_repeat_protection() -> None:
    tariff = Tariff("nowin", "EUR", {"METRO": 250}, 0, 50_000, 1, 1)
    state = decide(card(), tap(), T0, tariff).state
    assert state is not None
    assert decide(state, tap(), T0, tariff).decision.amount == 250


def test_recent_taps_drop_expired_entries() -> None:
    state = card(
        recent_taps=[["gate-old", T0 - WINDOW], ["gate-B", T0 - 10], ["gate-A", T0 - WINDOW]]
    )
    outcome = decide(state, tap(gate="gate-A"), T0, TARIFF)
    assert outcome.decision.reason == reasons.OK
    assert outcome.state is not None
    assert outcome.state.recent_taps == (("gate-B", T0 - 10), ("gate-A", T0))


def test_recent_taps_are_bounded_newest_kept() -> None:
    state = card(5_000)
    for i in range(MAX_RECENT_TAPS + 3):
        new = decide(state, tap(network="BUS", gate=f"bus-{i}"), T0 + i, TARIFF).state
        assert new is not None
        state = new
        assert len(state.recent_taps) <= MAX_RECENT_TAPS
    assert state.recent_taps[0] == ("bus-3", T0 + 3)
    assert state.recent_taps[-1] == (f"bus-{MAX_RECENT_TAPS + 2}", T0 + MAX_RECENT_TAPS + 2)
    # The forgotten gate is charged again; that is the accepted cost of the bound.
    assert decide(state, tap(network="BUS", gate="bus-0"), T0 + 20, TARIFF).decision.amount == 200


def test_small_clock_skew_still_counts_as_repeat() -> None:
    # Another gateway process recorded the tap with a clock a little ahead of ours.
    state = card(recent_taps=[["gate-A", T0 + 500]])
    assert decide(state, tap(), T0, TARIFF).decision.reason == reasons.REPEAT_TAP


def test_tap_from_far_future_is_ignored_and_pruned() -> None:
    # The clock jumped back by more than a window: that old record must not grant free rides.
    state = card(recent_taps=[["gate-A", T0 + WINDOW], ["gate-B", T0 + 3_600_000]])
    outcome = decide(state, tap(), T0, TARIFF)
    assert outcome.decision.amount == 250
    assert outcome.state is not None
    assert outcome.state.recent_taps == (("gate-A", T0),)


# -- Purchase -----------------------------------------------------------------------------------


def test_purchase() -> None:
    state = card(1_000, recent_taps=[["gate-A", T0]])
    outcome = decide(state, buy(400), T0, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance, d.product) == (
        True,
        reasons.OK,
        400,
        600,
        "purchase",
    )
    assert d.explain == ({"rule": "purchase", "merchant": "bakery", "amount": 400},)
    assert outcome.state == CardState("card-1", 600, "active", "adult", (("gate-A", T0),))
    assert [e.type for e in outcome.events] == ["purchase"]
    assert_serialisable(outcome)


@pytest.mark.parametrize("amount", [0, -1, -400, True, False, 1.5, 400.0, "400", None])
def test_purchase_invalid_amount(amount: object) -> None:
    state = card()
    assert_declined(decide(state, buy(amount), T0, TARIFF), state, reasons.INVALID_AMOUNT)


def test_purchase_limit() -> None:
    rich = card(10**9)
    assert decide(rich, buy(TARIFF.max_purchase), T0, TARIFF).decision.reason == reasons.OK
    outcome = decide(rich, buy(TARIFF.max_purchase + 1), T0, TARIFF)
    assert_declined(outcome, rich, reasons.AMOUNT_TOO_LARGE)
    assert outcome.decision.explain == ({"rule": "max_purchase", "amount": 20_001, "max": 20_000},)


@pytest.mark.parametrize(
    ("amount", "reason"), [(10**30, reasons.AMOUNT_TOO_LARGE), (-(10**30), reasons.INVALID_AMOUNT)]
)
def test_absurd_amounts_keep_the_decision_serialisable(amount: int, reason: str) -> None:
    state = card()
    for command in (buy(amount), top(amount)):
        outcome = decide(state, command, T0, TARIFF)
        assert_declined(outcome, state, reason)
        assert outcome.decision.explain[0]["amount_huge"] is True


def test_purchase_insufficient_funds() -> None:
    state = card(399)
    assert_declined(decide(state, buy(400), T0, TARIFF), state, reasons.INSUFFICIENT_FUNDS)
    assert decide(card(400), buy(400), T0, TARIFF).decision.balance == 0


# -- TopUp --------------------------------------------------------------------------------------


def test_topup_is_a_credit() -> None:
    outcome = decide(card(1_000), top(2_000), T0, TARIFF)
    d = outcome.decision
    assert (d.approved, d.reason, d.amount, d.balance, d.product) == (
        True,
        reasons.OK,
        -2_000,
        3_000,
        "topup",
    )
    assert d.explain == ({"rule": "topup", "amount": 2_000},)
    (event,) = outcome.events
    assert (event.type, event.amount, event.balance) == ("topup", -2_000, 3_000)
    assert_serialisable(outcome)


@pytest.mark.parametrize("amount", [0, -5, True, 2.0, "5", None])
def test_topup_invalid_amount(amount: object) -> None:
    state = card()
    assert_declined(decide(state, top(amount), T0, TARIFF), state, reasons.INVALID_AMOUNT)


def test_topup_limit() -> None:
    assert decide(card(0), top(TARIFF.max_topup), T0, TARIFF).decision.reason == reasons.OK
    state = card(0)
    outcome = decide(state, top(TARIFF.max_topup + 1), T0, TARIFF)
    assert_declined(outcome, state, reasons.AMOUNT_TOO_LARGE)


def test_topup_balance_limit() -> None:
    state = card(40_000)
    assert decide(state, top(10_000), T0, TARIFF).decision.balance == 50_000
    outcome = decide(state, top(10_001), T0, TARIFF)
    assert_declined(outcome, state, reasons.BALANCE_LIMIT)
    assert outcome.decision.explain == (
        {"rule": "max_balance", "balance": 40_000, "amount": 10_001, "max": 50_000},
    )


def test_decide_does_not_touch_its_inputs() -> None:
    state = card(1_000, recent_taps=[["gate-A", T0 - WINDOW]])
    before = state.to_dict()
    tariff_before = TARIFF.to_dict()
    for command in (tap(), buy(10), top(10)):
        decide(state, command, T0, TARIFF)
    assert state.to_dict() == before
    assert TARIFF.to_dict() == tariff_before
