"""Epoch milliseconds to the feed's local calendar: service date, time of day, pass expiry.

This module owns every use of the agency timezone: which local date and time a leg starts at,
which timeframe groups are in effect then, and when a pass bought at some instant expires. Time
always comes in as an argument (epoch ms); nothing here reads a clock. Wall-clock local time is
used for timeframes (not GTFS's "noon minus 12h", which differs only on DST change days).
The city tariff's own calendar (cap periods, pass expiry, validity dates) goes through the
helpers at the end, so that only policies/gtfs/ imports datetime and zoneinfo.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies.gtfs.model import DAY_S, Duration, FareFeed

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_DAY_MS: Final = DAY_S * 1000
_FIXED_UNIT_S: Final = (1, 60, 3600)
MAX_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest instant `datetime` can represent."""
_MINUTE_MS: Final = 60_000
_UNIX_EPOCH_ORDINAL: Final = 719_163
"""`date(1970, 1, 1).toordinal()`."""


def to_local(zone: ZoneInfo, ms: int) -> datetime:
    """The local wall-clock time of epoch ms. `OverflowError` when out of datetime's range."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


@lru_cache(maxsize=65_536)
def _minute_offset_ms(zone: ZoneInfo, minute: int) -> int | None:
    """The zone's UTC offset (ms) throughout UTC minute `minute`, or None if it changes inside.

    A cache, not a rule: the hot path (one conversion per tap) skips `datetime` for every tap
    after the first of each minute. Exact: a minute whose two ends have different offsets (a
    transition inside it, which only historical local mean times have) is not cached."""
    first = minute * _MINUTE_MS
    start = to_local(zone, first).utcoffset()
    try:
        end = to_local(zone, first + _MINUTE_MS - 1).utcoffset()
    except OverflowError:
        return None
    if start is None or start != end:
        return None
    return start // _MS


def local_day_and_time(zone: ZoneInfo, ms: int) -> tuple[int, int]:
    """(local date as ordinal, milliseconds since local midnight) of epoch ms."""
    offset = _minute_offset_ms(zone, ms // _MINUTE_MS)
    if offset is not None:
        day, ms_of_day = divmod(ms + offset, _DAY_MS)
        return day + _UNIX_EPOCH_ORDINAL, ms_of_day
    t = to_local(zone, ms)
    return t.toordinal(), ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def timeframe_groups(feed: FareFeed, day: int, ms_of_day: int) -> frozenset[str]:
    """The timeframe groups in effect at `ms_of_day` on local date `day`.

    start_time is inclusive and end_time exclusive (the spec). A timeframe ending after 24:00:00
    also covers the early hours of the day after each of its service days."""
    if 0 <= ms_of_day < _DAY_MS:
        bounds, groups = _day_table(feed, day)
        return groups[bisect_right(bounds, ms_of_day) - 1]
    return _groups_at(feed, day, ms_of_day)


@lru_cache(maxsize=4_096)
def _day_table(
    feed: FareFeed, day: int
) -> tuple[tuple[int, ...], tuple[frozenset[str], ...]]:
    """The groups of `day` as a step function: (sorted boundaries from 0, groups from each).

    Which frames apply changes only at a frame's start or end, or (for the part of a frame
    running past midnight) at its start or end less a day; between two boundaries the answer
    is that of the earlier one. Cached per (feed, day): a day's table serves all its taps."""
    bounds = {0}
    for frame in feed.timeframes:
        for edge in (frame.start_s * 1000, frame.end_s * 1000):
            for b in (edge, edge - _DAY_MS):
                if 0 < b < _DAY_MS:
                    bounds.add(b)
    ordered = tuple(sorted(bounds))
    return ordered, tuple(_groups_at(feed, day, b) for b in ordered)


def _groups_at(feed: FareFeed, day: int, ms_of_day: int) -> frozenset[str]:
    found: set[str] = set()
    for frame in feed.timeframes:
        service = feed.services[frame.service_id]
        start_ms, end_ms = frame.start_s * 1000, frame.end_s * 1000
        if (start_ms <= ms_of_day < end_ms and service.runs_on(day)) or (
            end_ms > _DAY_MS
            and start_ms <= ms_of_day + _DAY_MS < end_ms
            and service.runs_on(day - 1)
        ):
            found.add(frame.timeframe_group_id)
    return frozenset(found)


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def pass_end_ms(zone: ZoneInfo, start_ms: int, duration: Duration) -> int:
    """When a product with `duration`, first used at `start_ms`, stops being valid (exclusive).

    duration_type 1 counts `amount` units from the start (days and longer in local wall-clock
    time, so a 1-day pass from 10:00 ends at 10:00 the next day across a DST change);
    duration_type 2 runs to the end of the current calendar unit, `amount - 1` units further."""
    try:
        start = to_local(zone, start_ms)
        amount, unit = duration.amount, duration.unit
        if duration.type == 1:
            if unit <= 2:
                return min(MAX_MS, start_ms + amount * _FIXED_UNIT_S[unit] * 1000)
            if unit <= 4:
                end = start + timedelta(days=amount * (1 if unit == 3 else 7))
            else:
                end = _add_months(start, amount * (1 if unit == 5 else 12))
            return min(MAX_MS, to_ms(end.replace(tzinfo=zone)))
        if unit <= 2:
            unit_ms = _FIXED_UNIT_S[unit] * 1000
            local_ms = to_ms(start.replace(tzinfo=UTC))
            return min(MAX_MS, start_ms - local_ms % unit_ms + amount * unit_ms)
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == 3:
            end = midnight + timedelta(days=amount)
        elif unit == 4:
            end = midnight + timedelta(days=7 * amount - midnight.weekday())
        elif unit == 5:
            end = _add_months(midnight.replace(day=1), amount)
        else:
            end = midnight.replace(month=1, day=1, year=midnight.year + amount)
        return min(MAX_MS, to_ms(end.replace(tzinfo=zone)))
    except (OverflowError, ValueError):
        return MAX_MS


# ------------------------------------------------------------------------------------------------
# The city tariff's calendar (caps, passes, validity dates) uses the same local-time rules as the
# feed; these helpers let the rest of policies/ use a timezone without importing datetime itself.
# ------------------------------------------------------------------------------------------------

Zone: TypeAlias = ZoneInfo


def zone_named(name: str) -> ZoneInfo:
    """The IANA timezone `name`; `ValueError` when it is not one."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"not a timezone name: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {name!r}") from None


def local_day_month(zone: ZoneInfo, ms: int) -> tuple[int, int]:
    """(local date as ordinal, local month as year * 12 + month - 1) of epoch ms.

    `OverflowError` / `ValueError` when `ms` is outside what `datetime` represents."""
    day = local_day_and_time(zone, ms)[0]
    return day, month_of(day)


@lru_cache(maxsize=4_096)
def month_of(ordinal: int) -> int:
    """The month of a date ordinal as year * 12 + month - 1."""
    d = date.fromordinal(ordinal)
    return d.year * 12 + d.month - 1


def iso_date_ordinal(text: str) -> int:
    """ "2026-01-10" -> its proleptic Gregorian ordinal; `ValueError` when malformed."""
    if not isinstance(text, str) or len(text) != 10:
        raise ValueError(f"expected a date YYYY-MM-DD, got {text!r}")
    return date.fromisoformat(text).toordinal()


def ordinal_iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def local_midnight_ms(zone: ZoneInfo, ordinal: int) -> int:
    """Epoch ms of 00:00 local time on the date `ordinal` (the first instant of that day)."""
    day = date.fromordinal(ordinal)
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=zone))


def iso_date(ordinal: int) -> str:
    """The ISO date (YYYY-MM-DD) of a proleptic Gregorian ordinal (`date.toordinal()`)."""
    return date.fromordinal(ordinal).isoformat()
