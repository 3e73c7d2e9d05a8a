"""Facility access without payment: e.g. school grounds open to cardholders at night.

This module owns the access rule: the facility must be in the tariff, the card's rider category
among the facility's `categories` (none listed = every category), and the local time inside one
of its `windows` (none listed = any time). Approved with amount 0 and the state unchanged, or
declined `unknown_facility`, `category_not_allowed` or `outside_hours`.
"""

from __future__ import annotations

from policies import reasons
from policies.model import CardState, Outcome
from policies.services._common import approve, decline, now_local, rider_category
from policies.services.commands import EVENT_FACILITY_ACCESS, FacilityAccess
from policies.services.tariff import DAY_NAMES, in_windows
from policies.tariff import Tariff


def access_product(command: FacilityAccess) -> str:
    return "access:" + command.facility


def facility_access(
    state: CardState, command: FacilityAccess, now_ms: int, tariff: Tariff
) -> Outcome:
    name = command.facility
    product = "access:" + name
    facility = tariff.services.facilities.get(name)
    if facility is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.UNKNOWN_FACILITY,
            product,
            {"rule": "facility_known", "facility": name},
        )
    category = rider_category(state, now_ms, tariff)
    if facility.categories and category not in facility.categories:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.CATEGORY_NOT_ALLOWED,
            product,
            {
                "rule": "access_category",
                "category": category,
                "allowed": sorted(facility.categories),
            },
        )
    if facility.windows:
        local = now_local(tariff, now_ms)
        if not in_windows(facility.windows, local.weekday, local.minute):
            return decline(
                state,
                command,
                now_ms,
                tariff,
                reasons.OUTSIDE_HOURS,
                product,
                {
                    "rule": "access_window",
                    "facility": name,
                    "local_day": DAY_NAMES[local.weekday],
                    "local_time": f"{local.minute // 60:02d}:{local.minute % 60:02d}",
                    "windows": [w.to_dict() for w in facility.windows],
                },
            )
    return approve(
        state,
        command,
        now_ms,
        tariff,
        0,
        product,
        EVENT_FACILITY_ACCESS,
        ({"rule": "facility_access", "facility": name, "category": category},),
    )
