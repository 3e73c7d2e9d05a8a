"""Stateful test: `decide` against a tiny, independently written reference ledger.

The reference knows only a balance, a blocked flag and when each gate last charged, and
restates the v1 rules in the most direct way possible. Hypothesis drives both with random
sequences of taps, purchases, top-ups, clock advances and admin (un)blocking, and any
disagreement in reason, amount or balance is shrunk to a minimal sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from policies import CardState, FareTap, Outcome, Purchase, Tariff, TopUp, decide
from policies.model import CardStatus
from tests.policies.strategies import BASE_MS, GATES, NETWORKS

TARIFF = Tariff(
    version="ledger-test",
    currency="EUR",
    network_fares={"METRO": 250, "BUS": 200, "TRAM": 0},
    double_tap_window_ms=60_000,
    max_balance=5_000,
    max_purchase=2_000,
    max_topup=3_000,
)
# A few sizes on either side of each limit, so the edges come up often.
amounts = st.one_of(
    st.integers(-10, 6_000),
    st.sampled_from([0, 1, 199, 200, 249, 250, 1_999, 2_000, 2_001, 2_999, 3_000, 3_001]),
)


@dataclass
class Expected:
    approved: bool
    reason: str
    amount: int


class LedgerMachine(RuleBasedStateMachine):
    state: CardState
    now: int
    balance: int
    blocked: bool
    last_charge: dict[str, int]
    initial: int
    charged: int

    @initialize(balance=st.integers(0, TARIFF.max_balance))
    def open_card(self, balance: int) -> None:
        self.state = CardState("card-ledger", balance, "active")
        self.now = BASE_MS
        self.balance = balance
        self.blocked = False
        self.last_charge = {}
        self.initial = balance
        self.charged = 0

    # -- reference rules, written without looking at policies/ -------------------------------

    def expect_tap(self, network: str, gate: str) -> Expected:
        if self.blocked:
            return Expected(False, "card_blocked", 0)
        if network not in TARIFF.network_fares:
            return Expected(False, "unknown_network", 0)
        last = self.last_charge.get(gate)
        if last is not None and self.now - last < TARIFF.double_tap_window_ms:
            return Expected(True, "repeat_tap", 0)
        fare = TARIFF.network_fares[network]
        if self.balance < fare:
            return Expected(False, "insufficient_funds", 0)
        self.last_charge[gate] = self.now
        return Expected(True, "ok", fare)

    def expect_purchase(self, amount: int) -> Expected:
        if self.blocked:
            return Expected(False, "card_blocked", 0)
        if amount <= 0:
            return Expected(False, "invalid_amount", 0)
        if amount > TARIFF.max_purchase:
            return Expected(False, "amount_too_large", 0)
        if amount > self.balance:
            return Expected(False, "insufficient_funds", 0)
        return Expected(True, "ok", amount)

    def expect_topup(self, amount: int) -> Expected:
        if self.blocked:
            return Expected(False, "card_blocked", 0)
        if amount <= 0:
            return Expected(False, "invalid_amount", 0)
        if amount > TARIFF.max_topup:
            return Expected(False, "amount_too_large", 0)
        if self.balance + amount > TARIFF.max_balance:
            return Expected(False, "balance_limit", 0)
        return Expected(True, "ok", -amount)

    def apply(self, outcome: Outcome, expected: Expected) -> None:
        d = outcome.decision
        assert (d.approved, d.reason, d.amount) == (
            expected.approved,
            expected.reason,
            expected.amount,
        )
        self.balance -= expected.amount
        self.charged += expected.amount
        assert d.balance == self.balance
        assert outcome.state is not None
        self.state = outcome.state

    # -- rules ----------------------------------------------------------------------------------

    @rule(ms=st.one_of(st.integers(0, 120_000), st.sampled_from([59_999, 60_000, 60_001])))
    def advance_clock(self, ms: int) -> None:
        self.now += ms

    @rule(network=st.sampled_from(NETWORKS), gate=st.sampled_from(GATES))
    def tap(self, network: str, gate: str) -> None:
        command = FareTap("validator-1", "transit-op", network, gate)
        outcome = decide(self.state, command, self.now, TARIFF)
        self.apply(outcome, self.expect_tap(network, gate))

    @rule(amount=amounts)
    def purchase(self, amount: int) -> None:
        outcome = decide(self.state, Purchase("till-1", "shop", amount, "cafe"), self.now, TARIFF)
        self.apply(outcome, self.expect_purchase(amount))

    @rule(amount=amounts)
    def top_up(self, amount: int) -> None:
        outcome = decide(self.state, TopUp("kiosk-1", "city", amount), self.now, TARIFF)
        self.apply(outcome, self.expect_topup(amount))

    @rule(blocked=st.booleans())
    def admin_sets_status(self, blocked: bool) -> None:
        # Blocking is an admin action outside decide(): the store rewrites the status.
        s = self.state
        status: CardStatus = "blocked" if blocked else "active"
        self.state = CardState(s.card_id, s.balance, status, s.category, s.recent_taps)
        self.blocked = blocked

    @rule()
    def reload_from_store(self) -> None:
        # Passivation and re-activation go through plain data; nothing may be lost on the way.
        self.state = CardState.from_dict(self.state.to_dict())

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def balance_matches_reference(self) -> None:
        assert self.state.balance == self.balance
        assert self.balance == self.initial - self.charged

    @invariant()
    def balance_within_limits(self) -> None:
        assert 0 <= self.state.balance <= TARIFF.max_balance


LedgerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60)
test_ledger = LedgerMachine.TestCase
