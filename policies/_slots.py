"""Fast construction of the frozen, slotted dataclasses built on every tap.

This module owns one helper, `slot_setters`: the slot descriptors' `__set__` of a frozen,
slotted dataclass, in field order. A class built once or more per tap (`Decision`, `Event`,
`LegQuote`, ...) declares `init=False` and a hand-written `__init__` that stores each field
through them: the very slots the generated `__init__` fills, without its per-field
`object.__setattr__` lookup, which is most of what building such an object costs. Same
signature, same defaults, no `__post_init__` (a class with one keeps the generated `__init__`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

Setter = Callable[[Any, Any], None]


def slot_setters(cls: type[Any]) -> tuple[Setter, ...]:
    """`__set__` of the slot of each field of `cls`, in field order."""
    slots = vars(cls)
    assert not hasattr(cls, "__post_init__"), cls
    return tuple(slots[f.name].__set__ for f in fields(cls))
