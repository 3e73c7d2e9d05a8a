"""Entitlements a card holds for venues and discounts, whoever stores them.

This module owns the services rules' reading of entitlements from two sources:

- memberships (`ServicesState.memberships`): unlimited entry to the listed venues and the listed
  discounts while valid, issued onto the card by an operator;
- the card's products (policies/passes.py, e.g. the tourist card): `passes.entitlements` lists
  each usable product's venues (one entry each) and discounts under a `grant_id`, and
  `passes.use_entitlement` activates the product when an entry or discount is its first use.
  The used one-time entries are recorded here, in `ServicesState.used`, as (grant id, venue).

The transit half owns the products, their sale, activation and expiry; nothing here changes a
product except through `use_entitlement`.
"""

from __future__ import annotations

from policies.model import CardState
from policies.passes import Entitlement, entitlements, use_entitlement
from policies.services._common import services_of, updated
from policies.services.state import MAX_USED_ENTRIES, Membership, evolve
from policies.tariff import Tariff


def active_memberships(state: CardState, now_ms: int) -> tuple[Membership, ...]:
    return tuple(m for m in services_of(state).memberships if m.from_ms <= now_ms < m.until_ms)


def entitled_discounts(state: CardState, now_ms: int) -> dict[str, str | None]:
    """Discount id -> the product grant that entitles to it (None: a membership does)."""
    found: dict[str, str | None] = {}
    for m in active_memberships(state, now_ms):
        for d in m.discounts:
            found[d] = None
    for e in entitlements(state, now_ms):
        for d in e.discounts:
            found.setdefault(d, e.grant_id)
    return found


def unused_entry(state: CardState, venue: str, now_ms: int) -> Entitlement | None:
    """The first usable product with an unused entry for `venue`, or None."""
    used = services_of(state).used
    for e in entitlements(state, now_ms):
        if venue in e.venues and (e.grant_id, venue) not in used:
            return e
    return None


def use_grant(state: CardState, grant_id: str, now_ms: int, tariff: Tariff) -> CardState:
    """`state` with product `grant_id` activated if this is its first use."""
    used = use_entitlement(state, grant_id, now_ms, tariff)
    return state if used is None else used[0]


def record_entry(state: CardState, grant_id: str, venue: str) -> CardState:
    """`state` with (grant_id, venue) recorded as used; entries of products the card no longer
    holds are forgotten, and the newest MAX_USED_ENTRIES kept."""
    services = services_of(state)
    held = {p.grant_id for p in state.products}
    kept = tuple(u for u in services.used if u[0] in held)
    used = (*kept, (grant_id, venue))[-MAX_USED_ENTRIES:]
    return updated(state, evolve(services, used=used))
