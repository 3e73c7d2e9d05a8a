"""The discount network: merchant and venue discounts by rider category and time window.

This module owns the choice of the discount applied to one retail or venue payment: among the
tariff's discounts whose rider categories include the card's (or list none), whose scope covers
the merchant / merchant category or venue / venue kind (or is everywhere), whose time windows
(local time) contain now (or list none), and, for an `entitlement` discount, that an active
membership or a usable product of the card lists, the one saving the most applies; ties go to
the one listed first. Discounts never stack. The saving is `amount * percent // 100` (rounded
down) and is borne by the merchant: the payee is owed exactly what the card paid. A product
whose discount is used is activated if that is its first use; the caller does this with the
returned grant id (policies/services/entitlements.py).
"""

from __future__ import annotations

from policies.model import CardState
from policies.services._common import Step, now_local, rider_category
from policies.services.entitlements import entitled_discounts
from policies.services.tariff import Discount, in_windows
from policies.tariff import Tariff


def _in_scope(
    d: Discount, merchant: str | None, category: str | None, venue: str | None, kind: str | None
) -> bool:
    if d.everywhere:
        return True
    if merchant is not None and (merchant in d.merchants or category in d.merchant_categories):
        return True
    return venue is not None and (venue in d.venues or kind in d.venue_kinds)


def best_discount(
    state: CardState,
    now_ms: int,
    tariff: Tariff,
    amount: int,
    *,
    merchant: str | None = None,
    merchant_category: str | None = None,
    venue: str | None = None,
    venue_kind: str | None = None,
) -> tuple[int, Step | None, str | None]:
    """(saving, explanation step, product grant id used or None) of the best discount for this
    payment; (0, None, None) if none applies."""
    discounts = tariff.services.discounts
    if not discounts:
        return 0, None, None
    rider = rider_category(state, now_ms, tariff)
    entitled: dict[str, str | None] | None = None
    best: Discount | None = None
    best_saving = 0
    for d in discounts:
        if d.categories and rider not in d.categories:
            continue
        if not _in_scope(d, merchant, merchant_category, venue, venue_kind):
            continue
        if d.windows:
            local = now_local(tariff, now_ms)
            if not in_windows(d.windows, local.weekday, local.minute):
                continue
        if d.entitlement:
            if entitled is None:
                entitled = entitled_discounts(state, now_ms)
            if d.id not in entitled:
                continue
        saving = amount * d.percent // 100
        if saving > best_saving:
            best, best_saving = d, saving
    if best is None:
        return 0, None, None
    step: dict[str, object] = {
        "rule": "discount",
        "discount": best.id,
        "percent": best.percent,
        "category": rider,
        "saved": best_saving,
    }
    grant = None
    if best.entitlement:
        assert entitled is not None
        grant = entitled[best.id]
        step["entitlement"] = "membership" if grant is None else grant
    return best_saving, step, grant
