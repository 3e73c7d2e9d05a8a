"""Reason codes: the closed vocabulary every `Decision.reason` is drawn from.

This module owns the codes and their one-line meanings. The codes are plain `str` constants rather
than an enum so that a decision serialises, compares and journals as the bare string with no
conversion step; `REASONS` maps each code to its meaning and is rendered into the operator docs, so
adding a code here without a meaning is a bug (a test checks the two stay in step).
"""

from __future__ import annotations

from typing import Final

OK: Final = "ok"
"""Approved, charged as computed."""

REPEAT_TAP: Final = "repeat_tap"
"""Approved, amount 0: same card at the same gate inside the double-tap window."""

UNKNOWN_CARD: Final = "unknown_card"
"""Declined: the gateway holds no state for this card."""

CARD_BLOCKED: Final = "card_blocked"
"""Declined: the card is blocked (lost, stolen, withdrawn); top-ups are refused too."""

INSUFFICIENT_FUNDS: Final = "insufficient_funds"
"""Declined: the balance does not cover the amount."""

INVALID_AMOUNT: Final = "invalid_amount"
"""Declined: the requested amount is zero, negative or not an integer."""

AMOUNT_TOO_LARGE: Final = "amount_too_large"
"""Declined: the amount is above the tariff's per-operation maximum."""

BALANCE_LIMIT: Final = "balance_limit"
"""Declined: a top-up would take the balance above the tariff's maximum balance."""

UNKNOWN_NETWORK: Final = "unknown_network"
"""Declined: the tap names a network the tariff has no fare for."""

UNSUPPORTED_OPERATION: Final = "unsupported_operation"
"""Declined: the core has no rule for this kind of command."""

REASONS: Final[dict[str, str]] = {
    OK: "approved, charged as computed",
    REPEAT_TAP: (
        "approved, amount 0: the same card at the same gate within the double-tap window, "
        "answered without a second charge"
    ),
    UNKNOWN_CARD: "declined: the card is not known to the gateway",
    CARD_BLOCKED: "declined: the card is blocked (top-ups included)",
    INSUFFICIENT_FUNDS: "declined: the balance does not cover the amount",
    INVALID_AMOUNT: "declined: the amount is zero, negative or not an integer",
    AMOUNT_TOO_LARGE: "declined: the amount is above the tariff's per-operation maximum",
    BALANCE_LIMIT: "declined: the top-up would exceed the tariff's maximum balance",
    UNKNOWN_NETWORK: "declined: the tariff has no fare for the tapped network",
    UNSUPPORTED_OPERATION: "declined: the core has no rule for this operation",
}

APPROVING: Final[frozenset[str]] = frozenset({OK, REPEAT_TAP})
"""The codes that go with `approved=True`; every other code is a decline."""

__all__ = [
    "AMOUNT_TOO_LARGE",
    "APPROVING",
    "BALANCE_LIMIT",
    "CARD_BLOCKED",
    "INSUFFICIENT_FUNDS",
    "INVALID_AMOUNT",
    "OK",
    "REASONS",
    "REPEAT_TAP",
    "UNKNOWN_CARD",
    "UNKNOWN_NETWORK",
    "UNSUPPORTED_OPERATION",
]
