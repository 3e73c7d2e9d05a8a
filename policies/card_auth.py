"""Card authentication: the rules for a tap's card cryptogram, given whether its signature
verified.

A card issued with a card key (`CardState.card_key`) signs every tap: its own counter, which
only goes up (the EMV application transaction counter is the model), over the terminal id and
the tap id (`docs/protocol.md` section 8 has the bytes). The signature itself is checked
outside the core (Ed25519 is the actors' business: `actors.card_auth`); this module decides
what a tap with that verdict gets. For such a card:

- no cryptogram: declined `card_auth_required`;
- a signature that does not verify: `card_auth_failed` (a copied card id, or a cryptogram
  taken to another terminal or another tap id);
- a counter not above the highest accepted one: `stale_card_counter` (a replay, or a clone
  running behind the genuine card);
- otherwise the tap is decided as any other, and the counter is consumed whatever the decision
  (a declined tap's cryptogram must not be replayable either).

A card without a key is decided as before (its id is its only identification), and a
cryptogram sent for one is ignored. Refusals leave the state as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from policies import reasons
from policies.core import decide, product_of
from policies.model import CardState, Command, Outcome
from policies.outcomes import declined
from policies.tariff import Tariff


@dataclass(frozen=True, slots=True)
class CardProof:
    """A tap's card cryptogram as the core sees it: the counter, and whether the signature
    over (card, terminal, tap id, counter) verified with the card's key."""

    counter: int
    verified: bool


def decide_authenticated(
    state: CardState | None,
    command: Command,
    now_ms: int,
    tariff: Tariff,
    proof: CardProof | None,
) -> Outcome:
    """`decide`, with the card-authentication rules first for a card that has a key."""
    if state is None or state.card_key is None:
        return decide(state, command, now_ms, tariff)
    if proof is None:
        return _refused(state, command, now_ms, tariff, reasons.CARD_AUTH_REQUIRED, None)
    if not proof.verified:
        return _refused(state, command, now_ms, tariff, reasons.CARD_AUTH_FAILED, proof.counter)
    if proof.counter <= state.card_counter:
        return _refused(
            state, command, now_ms, tariff, reasons.STALE_CARD_COUNTER, proof.counter
        )
    outcome = decide(state, command, now_ms, tariff)
    base = outcome.state if outcome.state is not None else state
    return Outcome(replace(base, card_counter=proof.counter), outcome.decision, outcome.events)


def _refused(
    state: CardState,
    command: Command,
    now_ms: int,
    tariff: Tariff,
    reason: str,
    counter: int | None,
) -> Outcome:
    explain: dict[str, object] = {"rule": "card_auth", "last_counter": state.card_counter}
    if counter is not None:
        explain["counter"] = counter
    return declined(
        state,
        getattr(command, "terminal_id", ""),
        getattr(command, "operator", ""),
        now_ms,
        tariff,
        reason,
        product_of(command),
        (explain,),
    )
