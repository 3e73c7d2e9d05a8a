"""Concessions: which rider category a card travels (and buys) as, at a given time.

This module owns the one rule of concessions: the card's `category` applies until its
`category_until_ms` (a student card until the end of the school year, a time-limited disability
card); from that instant on the tariff's `default_category` applies instead, without anyone
having to rewrite the card. A card whose category the tariff does not define is refused
(`unknown_category`) when the tariff defines categories at all; a tariff without categories
(v1) prices every card alike. The explanation names the category used, the GTFS rider category
it maps to, and whether the concession had expired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policies._slots import slot_setters
from policies.model import CardState
from policies.transit_tariff import Category, TransitRules


@dataclass(frozen=True, slots=True, init=False)
class Resolved:
    name: str
    category: Category | None
    """None when the tariff defines no categories."""
    step: Mapping[str, object]

    def __init__(
        self,
        name: str,
        category: Category | None,
        step: Mapping[str, object],
    ) -> None:
        _RESOLVED[0](self, name)
        _RESOLVED[1](self, category)
        _RESOLVED[2](self, step)

    @property
    def gtfs(self) -> str | None:
        return None if self.category is None else self.category.gtfs

    @property
    def flat_percent(self) -> int:
        return 100 if self.category is None else self.category.flat_percent


_RESOLVED = slot_setters(Resolved)


def effective_category(state: CardState, now_ms: int, rules: TransitRules) -> Resolved | None:
    """The category in force at `now_ms`, or None when the card's category is unknown."""
    name = state.category
    until = state.category_until_ms
    expired = until is not None and now_ms >= until
    if expired:
        name = rules.default_category
    categories = rules.categories
    if not categories:
        step: dict[str, object] = {"rule": "category", "category": name}
        if until is not None:
            step["card_category"] = state.category
            step["until_ms"] = until
            step["expired"] = expired
        return Resolved(name, None, step)
    category = categories.get(name)
    if category is None:
        return None
    step = {"rule": "category", "category": name, "gtfs_category": category.gtfs}
    if until is not None:
        step["card_category"] = state.category
        step["until_ms"] = until
        step["expired"] = expired
    return Resolved(name, category, step)


def unknown_category_step(state: CardState, rules: TransitRules) -> Mapping[str, object]:
    return {
        "rule": "category_known",
        "category": state.category,
        "known": sorted(rules.categories),
    }
