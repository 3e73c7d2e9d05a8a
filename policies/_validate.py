"""Field checks shared by the `from_dict` constructors of the core's data types.

This module owns the one place where untrusted plain data (from the store, a tariff file, an admin
call) is checked before it becomes a typed value. Every failure is a `ValueError` whose message
names the object and the field, because these messages end up in operator logs where "expected
int" without a field name is useless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

MAX_SAFE_INT: Final = 2**53 - 1
"""Largest integer the core accepts from plain data or echoes into an explanation.

Money and times travel as JSON to the journal, terminals and a JavaScript dashboard; orjson
refuses ints beyond 64 bits and JavaScript silently rounds beyond 2**53, so anything larger is a
corrupt record, not a balance."""


def check_mapping(obj: object, what: str) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what}: expected a mapping, got {type(obj).__name__}")
    for key in obj:
        if not isinstance(key, str):
            raise ValueError(f"{what}: keys must be strings, got {key!r}")
    return obj


def check_keys(
    d: Mapping[str, object], what: str, required: Iterable[str], optional: Iterable[str] = ()
) -> None:
    required_set = set(required)
    missing = sorted(required_set - d.keys())
    if missing:
        raise ValueError(f"{what}: missing field(s) {', '.join(missing)}")
    # Unknown keys are refused rather than dropped: a typo in a tariff file or a field written by
    # a newer version must not be silently lost on the next write.
    unknown = sorted(d.keys() - required_set - set(optional))
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {', '.join(unknown)}")


def check_int(value: object, what: str, *, minimum: int | None = None) -> int:
    # bool is a subclass of int; True as a balance is always a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: expected an integer, got {type(value).__name__}")
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise ValueError(f"{what}: magnitude must be at most 2**53 - 1")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what}: must be >= {minimum}, got {value}")
    return value


def check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what}: must not be empty")
    return value
