"""`evolve`: a copy of a `CardState` with some fields changed, fast.

This module owns one helper: `dataclasses.replace` for `CardState` without its per-call field
introspection, which is the biggest fixed cost of building a new state on the tap path (about a
microsecond of a transit tap's budget). Every field not named is carried over whoever added it
(the transit and services halves each own optional fields), so rules stay correct as fields are
added; `CardState` has no `__post_init__` for this to skip (a test checks it equals `replace`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Final

from policies.model import CardState

_FIELDS: Final = tuple(f.name for f in fields(CardState))
_new = object.__new__
# (name, slot descriptor): reading and writing a slot through its descriptor skips the
# attribute lookup by name and the frozen class's __setattr__ (the same slot either way).
_SLOTS: Final[tuple[tuple[str, Any, Any], ...]] = tuple(
    (name, vars(CardState)[name].__get__, vars(CardState)[name].__set__) for name in _FIELDS
)


def evolve(state: CardState, **changes: object) -> CardState:
    """`dataclasses.replace(state, **changes)` for a card state (unknown names are ignored by
    construction, so pass only field names: mypy cannot check them here, tests do)."""
    new = _new(CardState)
    for name, get, put in _SLOTS:
        put(new, changes[name] if name in changes else get(state))
    return new
