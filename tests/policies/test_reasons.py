"""Reason codes: one meaning per code, and the module's constants and table agree."""

from __future__ import annotations

from policies import reasons

V1_CODES = {
    "ok",
    "repeat_tap",
    "unknown_card",
    "card_blocked",
    "insufficient_funds",
    "invalid_amount",
    "amount_too_large",
    "balance_limit",
    "unknown_network",
    "unsupported_operation",
}


def test_v1_codes_are_all_there() -> None:
    # Codes are only ever added (issue 3 adds transit and city-services codes), never removed.
    assert set(reasons.REASONS) >= V1_CODES


def test_every_constant_has_a_meaning_and_vice_versa() -> None:
    constants = {
        value for name, value in vars(reasons).items() if name.isupper() and isinstance(value, str)
    }
    assert constants == set(reasons.REASONS)


def test_meanings_are_single_lines() -> None:
    for code, meaning in reasons.REASONS.items():
        assert meaning.strip(), code
        assert "\n" not in meaning, code


def test_approving_codes() -> None:
    assert set(reasons.APPROVING) == {"ok", "repeat_tap"}
    assert set(reasons.APPROVING) <= set(reasons.REASONS)
