"""Property tests: invariants of `decide` over arbitrary states, commands, times and tariffs."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    MAX_RECENT_TAPS,
    CardState,
    Command,
    Outcome,
    Tariff,
    decide,
    default_tariff,
    reasons,
)
from policies.model import EVENT_TYPES
from tests.policies.strategies import (
    BASE_MS,
    card_states,
    commands,
    maybe_card_states,
    tariffs,
    time_steps,
    times,
)

any_tariff = st.one_of(st.just(default_tariff()), tariffs)
journeys = st.lists(st.tuples(commands, time_steps), max_size=40)


def run(
    state: CardState | None, steps: list[tuple[Command, int]], tariff: Tariff
) -> list[tuple[CardState | None, Outcome]]:
    """Apply `steps` in order; returns (state before, outcome) for each."""
    now = BASE_MS
    trace = []
    for command, step in steps:
        now += step
        outcome = decide(state, command, now, tariff)
        trace.append((state, outcome))
        state = outcome.state
    return trace


def check_shape(before: CardState | None, outcome: Outcome, tariff: Tariff) -> None:
    """What must hold of every single outcome, whatever the input."""
    d = outcome.decision
    assert d.reason in reasons.REASONS
    assert d.approved == (d.reason in reasons.APPROVING)
    assert d.tariff_version == tariff.version
    assert d.explain and all("rule" in step for step in d.explain)
    (event,) = outcome.events
    assert event.type in EVENT_TYPES
    assert (event.amount, event.balance, event.reason) == (d.amount, d.balance, d.reason)
    assert (event.type == "declined") == (not d.approved)
    # Everything the gateway will journal or sign must serialise.
    orjson.dumps(d.to_dict())
    orjson.dumps(event.to_dict())
    if outcome.state is not None:
        assert len(outcome.state.recent_taps) <= MAX_RECENT_TAPS
        assert outcome.state.card_id == (before.card_id if before else None)
    if before is None:
        assert outcome.state is None and not d.approved


@given(maybe_card_states, commands, times, any_tariff)
def test_decide_never_raises_and_outcomes_are_well_formed(
    state: CardState | None, command: Command, now: int, tariff: Tariff
) -> None:
    check_shape(state, decide(state, command, now, tariff), tariff)


@given(card_states, journeys, any_tariff)
def test_money_is_conserved(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    trace = run(state, steps, tariff)
    for before, outcome in trace:
        assert before is not None and outcome.state is not None
        assert outcome.state.balance - before.balance == -outcome.decision.amount
        assert outcome.decision.balance == outcome.state.balance
        check_shape(before, outcome, tariff)
    final = trace[-1][1].state if trace else state
    assert final is not None
    assert final.balance - state.balance == -sum(o.decision.amount for _, o in trace)


@given(card_states, journeys, any_tariff)
def test_balance_never_goes_negative(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    for _, outcome in run(state, steps, tariff):
        assert outcome.state is not None and outcome.state.balance >= 0


@given(card_states, journeys, any_tariff)
def test_topups_never_exceed_max_balance(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    for before, outcome in run(state, steps, tariff):
        assert before is not None and outcome.state is not None
        if outcome.decision.amount < 0:
            assert outcome.state.balance <= tariff.max_balance


@given(maybe_card_states, commands, times, any_tariff)
def test_decide_is_deterministic(
    state: CardState | None, command: Command, now: int, tariff: Tariff
) -> None:
    first = decide(state, command, now, tariff)
    second = decide(state, command, now, tariff)
    assert first == second
    assert first.decision.to_dict() == second.decision.to_dict()


@given(maybe_card_states, journeys, any_tariff)
def test_declines_never_change_state(
    state: CardState | None, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    for before, outcome in run(state, steps, tariff):
        if not outcome.decision.approved:
            assert outcome.state is before
            assert outcome.decision.amount == 0


@given(card_states, journeys, any_tariff)
def test_repeat_taps_never_charge(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    for before, outcome in run(state, steps, tariff):
        if outcome.decision.reason == reasons.REPEAT_TAP:
            assert outcome.decision.amount == 0
            assert outcome.state is before


@given(card_states, journeys, any_tariff)
def test_a_gate_is_charged_at_most_once_per_window(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    # Starting from no remembered taps and with time moving forward only, two charged fares
    # at one gate are always at least a full window apart (with <= 3 gates the bound never bites).
    state = CardState(state.card_id, state.balance, state.status, state.category, ())
    forward = [(command, abs(step)) for command, step in steps]
    now = BASE_MS
    last_charge: dict[str, int] = {}
    for command, step in forward:
        now += step
        outcome = decide(state, command, now, tariff)
        gate = getattr(command, "gate", None)
        if gate is not None and outcome.decision.reason == reasons.OK:
            if gate in last_charge:
                assert now - last_charge[gate] >= tariff.double_tap_window_ms
            last_charge[gate] = now
        assert outcome.state is not None
        state = outcome.state


@given(card_states)
def test_state_round_trips_through_plain_data(state: CardState) -> None:
    assert CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state


@given(card_states, journeys, any_tariff)
def test_states_produced_by_decide_round_trip(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff
) -> None:
    for _, outcome in run(state, steps, tariff):
        assert outcome.state is not None
        plain = orjson.loads(orjson.dumps(outcome.state.to_dict()))
        assert CardState.from_dict(plain) == outcome.state


@given(tariffs)
def test_tariff_round_trips_through_plain_data(tariff: Tariff) -> None:
    assert Tariff.from_dict(orjson.loads(orjson.dumps(tariff.to_dict()))) == tariff
