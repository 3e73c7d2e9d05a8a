"""The card-authentication rules of the pure core (policies.card_auth), by property: for a
card with a key, a tap is decided only with a verified cryptogram whose counter is above the
last accepted one; the counter is then consumed whatever the decision; every refusal charges
nothing and leaves the state as it was. A card without a key is decided as by `decide`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from policies import CardState, FareTap, Purchase, decide, default_tariff, reasons
from policies.card_auth import CardProof, decide_authenticated

TARIFF = default_tariff()
KEY = "ab" * 32

proofs = st.none() | st.builds(CardProof, st.integers(1, 50), st.booleans())
commands = st.sampled_from([
    FareTap(terminal_id="g", operator="metro", network="METRO", gate="g"),
    Purchase(terminal_id="s", operator="bakery", amount=120, merchant="bakery"),
    Purchase(terminal_id="s", operator="bakery", amount=10**7, merchant="bakery"),
])


@given(st.integers(0, 40), st.integers(0, 5_000), commands, proofs)
def test_rules_for_a_card_with_a_key(last: int, bal: int, command: object,
                                     proof: CardProof | None) -> None:
    state = CardState(card_id="c", balance=bal, status="active", card_key=KEY, card_counter=last)
    out = decide_authenticated(state, command, 1_765_000_000_000, TARIFF, proof)  # type: ignore[arg-type]
    d = out.decision
    if proof is None or not proof.verified or proof.counter <= last:
        want = (reasons.CARD_AUTH_REQUIRED if proof is None else
                reasons.CARD_AUTH_FAILED if not proof.verified else reasons.STALE_CARD_COUNTER)
        assert (d.approved, d.reason, d.amount, d.balance) == (False, want, 0, bal)
        assert out.state is state
        return
    plain = decide(state, command, 1_765_000_000_000, TARIFF)  # type: ignore[arg-type]
    assert d == plain.decision
    assert out.state is not None and out.state.card_counter == proof.counter
    assert out.state.balance == bal - d.amount


@given(st.integers(0, 5_000), commands, proofs)
def test_a_card_without_a_key_ignores_cryptograms(bal: int, command: object,
                                                  proof: CardProof | None) -> None:
    state = CardState(card_id="c", balance=bal, status="active")
    out = decide_authenticated(state, command, 1_765_000_000_000, TARIFF, proof)  # type: ignore[arg-type]
    assert out == decide(state, command, 1_765_000_000_000, TARIFF)  # type: ignore[arg-type]


def test_state_round_trips_with_key_and_counter() -> None:
    state = CardState(card_id="c", balance=1, status="active", card_key=KEY, card_counter=9)
    assert CardState.from_dict(state.to_dict()) == state
    plain = CardState(card_id="c", balance=1, status="active")
    assert "card_key" not in plain.to_dict() and CardState.from_dict(plain.to_dict()) == plain
