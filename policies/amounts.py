"""Checks on a requested amount (purchase, top-up, later taxi and parking): shape, then ceiling.

This module owns the rule that a requested amount is a positive `int` no larger than the
operation's maximum. It lives apart from any one operation because every operation where the
terminal states the amount shares it, and they must all refuse the same bad inputs the same way.
A terminal-supplied amount is the one value in a command the core cannot trust to be well-formed,
so the check tolerates any object and keeps the explanation JSON-able whatever it was given.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies import reasons
from policies._validate import MAX_SAFE_INT


def amount_problem(
    amount: object, maximum: int, limit_rule: str
) -> tuple[str, Mapping[str, object]] | None:
    """(reason, explain step) when `amount` is unacceptable, else None."""
    # bool is an int subclass; a till sending `true` is a bug, not one cent.
    if isinstance(amount, bool) or not isinstance(amount, int):
        return reasons.INVALID_AMOUNT, {
            "rule": "amount_positive_int",
            "amount_type": type(amount).__name__,
        }
    if amount <= 0:
        return reasons.INVALID_AMOUNT, {"rule": "amount_positive_int", **_shown(amount)}
    if amount > maximum:
        return reasons.AMOUNT_TOO_LARGE, {"rule": limit_rule, **_shown(amount), "max": maximum}
    return None


def _shown(amount: int) -> dict[str, object]:
    # Echoing a 40-digit amount would make the decision unserialisable (orjson stops at 64 bits)
    # and so crash the signing step for what is only a bad request.
    if -MAX_SAFE_INT <= amount <= MAX_SAFE_INT:
        return {"amount": amount}
    return {"amount_huge": True}
