"""Decimal amounts from a feed to integer minor units, exactly (never through a float).

This module owns the currency table (ISO 4217 minor digits) and the one conversion from a GTFS
`amount` string such as "1.25" to an `int` of minor units such as 125. The conversion is pure
string arithmetic: a float would turn "0.29" into 28.999… cents sooner or later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

_TWO_DIGITS: Final = (
    *("USD", "EUR", "GBP", "CAD", "AUD", "NZD", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF"),
    *("RON", "BGN", "MXN", "BRL", "ARS", "COP", "PEN", "INR", "CNY", "HKD", "TWD", "SGD", "MYR"),
    *("THB", "PHP", "IDR", "ZAR", "TRY", "ILS", "AED", "SAR", "QAR", "EGP", "MAD", "NGN", "KES"),
    *("RUB", "UAH"),
)

MINOR_DIGITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        # 2 digits: the common case
        **dict.fromkeys(_TWO_DIGITS, 2),
        **dict.fromkeys(("JPY", "KRW", "ISK", "CLP", "VND", "PYG", "UGX", "XOF", "XAF"), 0),
        **dict.fromkeys(("BHD", "KWD", "JOD", "OMR", "TND", "LYD", "IQD"), 3),
    }
)
"""Minor digits per currency. A feed in a currency outside this table is refused, not guessed."""

_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def minor_digits(currency: str) -> int | None:
    """Digits after the decimal point for `currency`, or None when the code is not in the table."""
    return MINOR_DIGITS.get(currency)


def to_minor_units(text: str, digits: int) -> int | None:
    """ "1.25" with 2 digits -> 125. None when `text` is not a plain decimal or is too precise.

    Accepts an optional leading minus (the spec allows negative amounts for discounts) and trailing
    zeros beyond the currency's digits ("1.250" USD is 125); refuses "1.255" USD, "1,25", "1e2".
    """
    m = _AMOUNT.fullmatch(text)
    if m is None:
        return None
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    significant = frac.rstrip("0")
    if len(significant) > digits:
        return None
    value: int = int(whole) * 10**digits + int(significant.ljust(digits, "0") or "0")
    return -value if sign else value


def format_minor(amount: int, digits: int) -> str:
    """125, 2 -> "1.25"; the inverse of `to_minor_units` for display."""
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"
