"""Stateful test: card actors with their store against a plain reference ledger.

Hypothesis drives two `CardActor` instances of the same card (as two gateway processes would
hold after a network split) over one `MemoryStore` with purchases, top-ups, retries of earlier
tap ids (same or changed content), lost acknowledgements (the write applied, the reply lost),
storage outages and actor restarts. The reference is a balance and a dict of tap ids, written
from the rules in the plainest way. After every step: the stored balance is the reference's,
every tap id is journaled at most once, a retry gets the original answer byte for byte, and a
changed retry is refused as reused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.card import CardActor, CardDeps, TapReply, TapRequest
from actors.card_store import StoreUnavailable
from gateway.store.memory_store import MemoryStore
from policies import CardState, Decision, Purchase, Tariff, TopUp

TARIFF = Tariff(
    version="machine",
    currency="EUR",
    network_fares={"METRO": 250},
    double_tap_window_ms=60_000,
    max_balance=5_000,
    max_purchase=2_000,
    max_topup=3_000,
)
CARD, TERMINAL = "card-m", "till-m"
OPENING = 1_000
TAP_IDS = [f"t{i}" for i in range(12)]


async def _sign(req: TapRequest, d: Decision, gateway_time: int) -> bytes:
    return orjson.dumps(
        {"tap": req.tap_id, "ok": d.approved, "reason": d.reason, "amount": d.amount,
         "balance": d.balance}
    )


@dataclass
class Told:
    """What the terminal was told for a tap id, and what it asked."""

    content: tuple[str, int]
    frame: bytes | None  # None: it got an error (outage or lost reply)


class CardMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = MemoryStore()
        state = CardState(card_id=CARD, balance=OPENING, status="active")
        self.loop.run_until_complete(
            self.store.put_card(CARD, orjson.dumps(state.to_dict()))
        )
        self.deps = CardDeps(store=self.store, tariff=lambda: TARIFF, sign=_sign)
        self.actors = [self._fresh(), self._fresh()]
        self.balance = OPENING
        self.applied: dict[str, tuple[tuple[str, int], bytes | None]] = {}
        self.told: dict[str, Told] = {}
        self.seq = 0

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()

    def _fresh(self) -> CardActor:
        actor = CardActor(CARD, self.deps)
        self.loop.run_until_complete(actor.on_activate())
        return actor

    # ---------------------------------------------------------------- the reference ledger

    def _expected(self, op: str, amount: int) -> tuple[bool, int]:
        """(approved, new balance) by the plain rules."""
        if op == "purchase":
            ok = 0 < amount <= TARIFF.max_purchase and amount <= self.balance
            return ok, self.balance - amount if ok else self.balance
        ok = 0 < amount <= TARIFF.max_topup and self.balance + amount <= TARIFF.max_balance
        return ok, self.balance + amount if ok else self.balance

    # ---------------------------------------------------------------- rules

    @rule(
        tap_id=st.sampled_from(TAP_IDS),
        op=st.sampled_from(["purchase", "topup"]),
        amount=st.sampled_from([0, 1, 100, 250, 999, 1_000, 2_000, 2_001, 3_000, 4_999]),
        via=st.integers(0, 1),
        fault=st.sampled_from([None, None, None, "outage", "lost_ack"]),
    )
    def tap(self, tap_id: str, op: str, amount: int, via: int, fault: str | None) -> None:
        content = (op, amount)
        command = (
            Purchase(TERMINAL, "bakery", amount, "bakery")
            if op == "purchase"
            else TopUp(TERMINAL, "bakery", amount)
        )
        self.seq += 1
        req = TapRequest(
            terminal_id=TERMINAL, operator="bakery", seq=self.seq, tap_id=tap_id, card=CARD,
            tap_hash=f"{op}:{amount}", command=command, now_ms=1_000 * self.seq, kind="retail",
        )
        self.store.unavailable = fault == "outage"
        self.store.drop_acks = fault == "lost_ack"
        try:
            reply: TapReply | None = self.loop.run_until_complete(self.actors[via].handle(req))
        except StoreUnavailable:
            reply = None
            # An actor that saw a store error starts afresh (the runtime restarts it).
            self.store.unavailable = self.store.drop_acks = False
            self.actors[via] = self._fresh()
        finally:
            self.store.unavailable = self.store.drop_acks = False

        known = self.applied.get(tap_id)
        if known is not None:
            first_content, first_frame = known
            if first_content != content:
                # A changed retry: refused (or an error), never decided again.
                assert reply is None or reply.reused, reply
                return
            # The same tap again: the original answer, byte for byte, whatever happened.
            if reply is not None:
                assert not reply.reused
                if first_frame is not None:
                    assert reply.frame == first_frame
                else:
                    self.applied[tap_id] = (content, reply.frame)
            return
        if fault == "outage":
            assert reply is None
            return  # nothing applied
        if fault == "lost_ack":
            # The reply was lost: the write stood, unless it met a version conflict (a stale
            # actor), in which case nothing was written. As for the auditor, the journal says.
            assert reply is None
            if tap_id in self._journaled():
                self.balance = self._expected(op, amount)[1]
                self.applied[tap_id] = (content, None)
            return
        ok, new_balance = self._expected(op, amount)
        self.balance = new_balance
        self.applied[tap_id] = (content, reply.frame if reply is not None else None)
        assert reply is not None and not reply.reused
        told = orjson.loads(reply.frame)
        assert (told["ok"], told["balance"]) == (ok, new_balance), (told, ok, new_balance)

    @rule(via=st.integers(0, 1))
    def restart(self, via: int) -> None:
        """Passivation or a crash: the next message reloads from the store."""
        self.actors[via] = self._fresh()

    # ---------------------------------------------------------------- invariants

    @invariant()
    def stored_balance_is_the_references(self) -> None:
        if not hasattr(self, "loop"):
            return
        rec = self.loop.run_until_complete(self.store.load_card(CARD))
        assert rec is not None
        assert orjson.loads(rec.state)["balance"] == self.balance

    def _journaled(self) -> list[str]:
        entries = self.loop.run_until_complete(self.store.read_journal(count=10_000))
        return [e["tap"] for _, e in entries if e.get("op") == "commit"]

    @invariant()
    def every_tap_journaled_at_most_once(self) -> None:
        if not hasattr(self, "loop"):
            return
        taps = self._journaled()
        assert len(taps) == len(set(taps)) == len(self.applied)


CardMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
TestCardMachine = CardMachine.TestCase
