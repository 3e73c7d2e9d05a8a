"""Builders for the two shapes of `Outcome`: approved (money may move) and declined (nothing moves).

This module owns the invariants every rule module would otherwise have to re-implement: a decline
charges 0, leaves the state object untouched and emits exactly one "declined" event; an approval
emits exactly one event whose amount and balance match the decision. Rule modules only say which
rule applied and what it computed, so the money-conservation and single-event properties hold by
construction for every present and future operation.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.model import EVENT_DECLINED, CardState, Decision, Event, Outcome
from policies.tariff import Tariff

Explain = tuple[Mapping[str, object], ...]


def declined(
    state: CardState | None,
    terminal_id: str,
    operator: str,
    now_ms: int,
    tariff: Tariff,
    reason: str,
    product: str,
    explain: Explain,
) -> Outcome:
    """Refuse the command: charge nothing and hand back `state` itself."""
    if state is None:
        card_id = None
        # An unknown card has no balance; 0 keeps `balance: int` total rather than Optional.
        balance = 0
    else:
        card_id = state.card_id
        balance = state.balance
    version = tariff.version
    return Outcome(
        state,
        Decision(False, reason, 0, balance, product, version, explain),
        (
            Event(
                EVENT_DECLINED,
                card_id,
                0,
                balance,
                operator,
                terminal_id,
                now_ms,
                reason,
                version,
                product,
            ),
        ),
    )


def approved(
    new_state: CardState,
    terminal_id: str,
    operator: str,
    now_ms: int,
    tariff: Tariff,
    reason: str,
    amount: int,
    product: str,
    event_type: str,
    explain: Explain,
) -> Outcome:
    """Accept the command; `new_state.balance` must already reflect `amount`."""
    version = tariff.version
    balance = new_state.balance
    return Outcome(
        new_state,
        Decision(True, reason, amount, balance, product, version, explain),
        (
            Event(
                event_type,
                new_state.card_id,
                amount,
                balance,
                operator,
                terminal_id,
                now_ms,
                reason,
                version,
                product,
            ),
        ),
    )
