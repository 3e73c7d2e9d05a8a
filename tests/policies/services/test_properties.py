"""Properties of the services rules over arbitrary cards, commands, times and journeys: outcomes
are well formed and replayable, money is conserved and attributed, no service charges a negative
amount or credits a positive one, the daily limits hold, and rewards never change a fare."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import CardState, Command, FareTap, Outcome, decide, reasons
from policies.model import EVENT_TYPES
from policies.services.commands import (
    SERVICE_COMMAND_TYPES,
    FacilityAccess,
    RecycleDeposit,
    RedeemPoints,
    RewardCredit,
    TaxiFare,
)
from policies.services.local_time import local_time
from tests.policies.services.helpers import NOON, TARIFF, services
from tests.policies.services.strategies import (
    card_states,
    commands,
    materials,
    quantities,
    terminals,
    time_steps,
    times,
)

CHARGES = SERVICE_COMMAND_TYPES - {RecycleDeposit, RedeemPoints, RewardCredit, FacilityAccess}
CREDITS = {RecycleDeposit, RedeemPoints}
NO_MONEY = {RewardCredit, FacilityAccess}
ZONE = TARIFF.services.timezone or "UTC"
journeys = st.lists(st.tuples(commands, time_steps), max_size=30)


def run(
    state: CardState, steps: list[tuple[Command, int]]
) -> list[tuple[CardState, Command, int, Outcome]]:
    now = NOON
    trace = []
    for command, step in steps:
        now += step
        outcome = decide(state, command, now, TARIFF)
        trace.append((state, command, now, outcome))
        assert outcome.state is not None
        state = outcome.state
    return trace


def check_outcome(before: CardState, command: Command, outcome: Outcome) -> None:
    d = outcome.decision
    assert d.reason in reasons.REASONS
    assert d.approved == (d.reason in reasons.APPROVING)
    assert d.explain and all("rule" in step for step in d.explain)
    (event,) = outcome.events
    assert event.type in EVENT_TYPES
    assert (event.amount, event.balance, event.reason) == (d.amount, d.balance, d.reason)
    assert d.balance == (outcome.state.balance if outcome.state else 0)
    orjson.dumps(d.to_dict())
    orjson.dumps(event.to_dict())
    after = outcome.state
    assert after is not None
    if not d.approved:
        assert after is before and d.amount == 0
    # What the store persists must load back as the same state.
    assert CardState.from_dict(orjson.loads(orjson.dumps(after.to_dict()))) == after
    assert after.balance == before.balance - d.amount
    kind = type(command)
    if kind in CHARGES:
        assert d.amount >= 0
    elif kind in CREDITS:
        assert d.amount <= 0
    elif kind in NO_MONEY:
        assert d.amount == 0
    if kind in SERVICE_COMMAND_TYPES and before.balance >= 0:
        assert after.balance >= 0
        if before.balance <= TARIFF.max_balance:
            assert after.balance <= TARIFF.max_balance
    points = services(after).points
    assert 0 <= points <= max(services(before).points, 100_000)


@given(card_states, commands, times)
def test_outcomes_are_well_formed_and_replayable(
    state: CardState, command: Command, now: int
) -> None:
    outcome = decide(state, command, now, TARIFF)
    check_outcome(state, command, outcome)
    again = decide(state, command, now, TARIFF)
    assert again == outcome  # same inputs, same decision, events and state


@settings(max_examples=150)
@given(card_states, journeys)
def test_money_is_conserved_and_attributed(
    state: CardState, steps: list[tuple[Command, int]]
) -> None:
    receivable: dict[str, int] = defaultdict(int)  # what each payee is owed (credits: negative)
    charged = credited = 0
    for before, command, _, outcome in run(state, steps):
        check_outcome(before, command, outcome)
        for event in outcome.events:
            receivable[event.operator] += event.amount
            if event.amount > 0:
                charged += event.amount
                assert event.operator  # every charge is attributed
            else:
                credited -= event.amount
    final = state if not steps else run(state, steps)[-1][3].state
    assert final is not None
    # balances + operator receivables = opening balances (credits issued are negative receivables)
    assert final.balance + sum(receivable.values()) == state.balance
    assert charged - credited == state.balance - final.balance


@settings(max_examples=150)
@given(
    card_states,
    st.lists(
        st.tuples(terminals, materials, quantities, st.integers(0, 8 * 3_600_000)), max_size=25
    ),
)
def test_recycling_daily_limit_is_never_exceeded(
    state: CardState, deposits: list[tuple[str, str, object, int]]
) -> None:
    rules = TARIFF.services.recycling
    assert rules is not None
    state = replace(state, status="active", services=None)
    per_day: dict[int, int] = defaultdict(int)
    now = NOON
    for terminal, material, weight, step in deposits:
        now += step
        command = RecycleDeposit(terminal, "green-city", material, weight)  # type: ignore[arg-type]
        outcome = decide(state, command, now, TARIFF)
        assert outcome.state is not None
        per_day[local_time(ZONE, now).day] += -outcome.decision.amount
        state = outcome.state
    assert all(credit <= rules.daily_max_credit for credit in per_day.values())


@settings(max_examples=150)
@given(
    card_states,
    st.lists(st.tuples(st.integers(-5, 16_000), st.integers(0, 6 * 3_600_000)), max_size=25),
)
def test_taxi_daily_limit_is_never_exceeded(state: CardState, rides: list[tuple[int, int]]) -> None:
    rules = TARIFF.services.taxi
    assert rules is not None
    state = replace(state, services=None, status="active")
    per_day: dict[int, int] = defaultdict(int)
    now = NOON
    for amount, step in rides:
        now += step
        outcome = decide(state, TaxiFare("taxi-1", "cityCabs", amount), now, TARIFF)
        assert outcome.state is not None
        per_day[local_time(ZONE, now).day] += outcome.decision.amount
        state = outcome.state
    assert all(spent <= rules.max_per_day for spent in per_day.values())


NO_REWARDS = replace(TARIFF, services=replace(TARIFF.services, rewards=None))


@given(card_states, st.sampled_from(["METRO", "BUS", "FERRY"]), times)
def test_rewards_never_change_a_fare_decision(state: CardState, network: str, now: int) -> None:
    command = FareTap("gate-1", "metro-op", network, "gate-1")
    with_rewards = decide(state, command, now, TARIFF)
    without = decide(state, command, now, NO_REWARDS)
    assert with_rewards.decision == without.decision
    assert with_rewards.events == without.events
    assert with_rewards.state is not None and without.state is not None
    # Points aside, the two states are the same.
    assert replace(with_rewards.state, services=None) == replace(without.state, services=None)
    assert services(with_rewards.state).points >= services(without.state).points
