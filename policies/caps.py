"""Fare capping: never charge more than a cap per period, and say how far the card has got.

This module owns the four kinds of cap of the tariff (policies/transit_tariff.py), all measured
in the tariff's timezone against the card's transit spend (`TransitMemory.spend_days`, one entry
per local day for the last 7 days, and `spend_months`, the last two local months):

- daily: the current local day;
- weekly: the current ISO week (Monday to Sunday) up to today;
- rolling_7d: the current local day and the six before it;
- monthly: the current local calendar month.

A cap applies to the card when it names the card's effective rider category or no category. A
fare is cut to the smallest headroom (`cap - spent`, never below 0) of the caps that apply, so
no period's spend can ever pass a cap; credits (tap off, corrections) are taken back from the
day and month of the charge they correct. Spend is counted whatever the category, so a card
whose concession expires mid-week keeps its week's spend toward the new category's caps.
Passes and products bought are not fares and do not count.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from policies.gtfs.local_time import local_day_month, ordinal_iso
from policies.transit_state import SPEND_DAYS, SPEND_MONTHS, CapProgress, TransitMemory
from policies.transit_tariff import (
    CAP_DAILY,
    CAP_MONTHLY,
    CAP_ROLLING_7D,
    CAP_WEEKLY,
    Cap,
    TransitRules,
)

_NO_CAPS: Final[tuple[Cap, ...]] = ()


def local_period(rules: TransitRules, now_ms: int) -> tuple[int, int]:
    """(local day ordinal, local month key) of `now_ms` in the tariff's timezone.

    `OverflowError` / `ValueError` for a time outside what a calendar can represent."""
    assert rules.zone is not None
    return local_day_month(rules.zone, now_ms)


def safe_local_period(rules: TransitRules, now_ms: int) -> tuple[int, int] | None:
    """`local_period`, or None for a time no calendar represents (a decline, not a crash)."""
    assert rules.zone is not None
    try:
        return local_day_month(rules.zone, now_ms)  # local_period, without its frame
    except (OverflowError, ValueError):
        return None


def applicable(rules: TransitRules, category: str) -> tuple[Cap, ...]:
    """The caps of `rules` that bind a card of `category` (precomputed per known category)."""
    if not rules.caps:
        return _NO_CAPS
    known = rules.caps_by_category.get(category)
    if known is not None:
        return known
    return tuple(cap for cap in rules.caps if cap.category is None or cap.category == category)


def _monday(day: int) -> int:
    # Ordinal 1 (0001-01-01) is a Monday.
    return day - (day - 1) % 7


def spent(memory: TransitMemory | None, cap: Cap, day: int, month: int) -> int:
    """What the card has spent on transit in the period of `cap` that contains `day`."""
    if memory is None:
        return 0
    if cap.kind == CAP_MONTHLY:
        return _month_spend(memory, month)
    if cap.kind == CAP_DAILY:
        first = day
    elif cap.kind == CAP_WEEKLY:
        first = _monday(day)
    else:
        first = day - (SPEND_DAYS - 1)
    return sum(amount for d, amount in memory.spend_days if first <= d <= day)


@lru_cache(maxsize=4_096)
def period_label(kind: str, day: int, month: int) -> str:
    """The period of a cap of `kind` containing `day`, for people: "2026-01-05" (day),
    "2026-01-05..2026-01-11" (ISO week), "2025-12-30..2026-01-05" (rolling 7 days ending
    today), "2026-01" (month)."""
    if kind == CAP_MONTHLY:
        year, m = divmod(month, 12)
        return f"{year:04d}-{m + 1:02d}"
    if kind == CAP_DAILY:
        return ordinal_iso(day)
    if kind == CAP_WEEKLY:
        monday = _monday(day)
        return f"{ordinal_iso(monday)}..{ordinal_iso(monday + 6)}"
    assert kind == CAP_ROLLING_7D
    return f"{ordinal_iso(day - (SPEND_DAYS - 1))}..{ordinal_iso(day)}"


def _explain(progress: tuple[CapProgress, ...]) -> Mapping[str, object]:
    return {
        "rule": "caps_progress",
        "caps": [
            {"cap": p.cap_id, "period": p.period, "spent": p.spent, "amount": p.amount}
            for p in progress
        ],
    }


def _sums(memory: TransitMemory | None, day: int, month: int) -> tuple[int, int, int, int]:
    """(today, this ISO week, the last 7 days, this month) of spend, in one pass."""
    if memory is None:
        return 0, 0, 0, 0
    today = week = rolling = 0
    monday = _monday(day)
    first = day - (SPEND_DAYS - 1)
    for d, amount in memory.spend_days:
        if first <= d <= day:
            rolling += amount
            if d >= monday:
                week += amount
                if d == day:
                    today = amount
    return today, week, rolling, _month_spend(memory, month)


def _month_spend(memory: TransitMemory, month: int) -> int:
    for m, amount in memory.spend_months:
        if m == month:
            return amount
    return 0


_progress: Final = tuple.__new__

_KIND_INDEX: Final = {CAP_DAILY: 0, CAP_WEEKLY: 1, CAP_ROLLING_7D: 2, CAP_MONTHLY: 3}


def cap_fare(
    memory: TransitMemory | None, caps: tuple[Cap, ...], fare: int, day: int, month: int
) -> tuple[int, tuple[CapProgress, ...], list[Mapping[str, object]]]:
    """(charge, progress after charging it, explain steps) for a fare of `fare` today."""
    if not caps:
        return fare, (), []
    sums = _sums(memory, day, month)
    index = _KIND_INDEX
    before = [(cap, sums[index[cap.kind]]) for cap in caps]
    charge = fare
    binding: Cap | None = None
    for cap, s in before:
        headroom = cap.amount - s
        if headroom < charge:
            charge = max(0, headroom)
            binding = cap
    # CapProgress built as the tuple it is (no NamedTuple __new__ frame per cap).
    progress = tuple(
        [
            _progress(
                CapProgress,
                (
                    cap.cap_id,
                    cap.kind,
                    period_label(cap.kind, day, month),
                    s + charge,
                    cap.amount,
                    # what this cap alone would have taken off the fare
                    fare - max(0, cap.amount - s) if cap.amount - s < fare else 0,
                ),
            )
            for cap, s in before
        ]
    )
    if binding is None:
        return charge, progress, [_explain(progress)]
    step = {
        "rule": "cap",
        "cap": binding.cap_id,
        "kind": binding.kind,
        "fare": fare,
        "charged": charge,
        "saved": fare - charge,
    }
    return charge, progress, [step, _explain(progress)]


def progress_only(
    memory: TransitMemory | None, caps: tuple[Cap, ...], day: int, month: int
) -> tuple[CapProgress, ...]:
    """Where the card stands without charging anything (a credit, a pass ride)."""
    return tuple(
        CapProgress(
            cap.cap_id,
            cap.kind,
            period_label(cap.kind, day, month),
            spent(memory, cap, day, month),
            cap.amount,
        )
        for cap in caps
    )


def progress_step(progress: tuple[CapProgress, ...]) -> Mapping[str, object]:
    return _explain(progress)


def _add(
    periods: tuple[tuple[int, int], ...], period: int, amount: int, keep: int
) -> tuple[tuple[int, int], ...]:
    """`periods` with `amount` added to `period`, only the `keep` latest periods kept."""
    if not periods:
        return ((period, amount),)
    if periods[-1][0] == period:
        return (*periods[:-1], (period, periods[-1][1] + amount))
    merged = dict(periods)
    merged[period] = merged.get(period, 0) + amount
    newest = max(merged)
    return tuple(sorted((p, a) for p, a in merged.items() if p > newest - keep))


def _take(
    periods: tuple[tuple[int, int], ...], period: int, amount: int
) -> tuple[tuple[int, int], ...]:
    return tuple((p, max(0, a - amount) if p == period else a) for p, a in periods)


def recorded_spend(
    memory: TransitMemory, amount: int, day: int, month: int
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """(spend_days, spend_months) of `record(memory, amount, day, month)`, without building the
    memory (a caller about to build its own); the very same tuples when `amount` is 0."""
    if amount == 0:
        return memory.spend_days, memory.spend_months
    return (
        _add(memory.spend_days, day, amount, SPEND_DAYS),
        _add(memory.spend_months, month, amount, SPEND_MONTHS),
    )


def record(memory: TransitMemory, amount: int, day: int, month: int) -> TransitMemory:
    """`memory` with `amount` added to its day's and month's spend (older periods pruned).

    A charge dated before every period remembered (a clock stepped back by more than them)
    is pruned at once: the caps only ever read the periods kept."""
    if amount == 0:
        return memory
    return TransitMemory(
        memory.journey,
        memory.trip,
        memory.incomplete,
        _add(memory.spend_days, day, amount, SPEND_DAYS),
        _add(memory.spend_months, month, amount, SPEND_MONTHS),
        memory.trips,
    )


def unrecord(memory: TransitMemory, amount: int, day: int, month: int) -> TransitMemory:
    """`memory` with a credit of `amount` taken back from the day and month of its charge.

    A period no longer remembered (a correction weeks later) has nothing to take back from;
    the spend of a period never goes below 0."""
    if amount <= 0:
        return memory
    return TransitMemory(
        memory.journey,
        memory.trip,
        memory.incomplete,
        _take(memory.spend_days, day, amount),
        _take(memory.spend_months, month, amount),
        memory.trips,
    )
