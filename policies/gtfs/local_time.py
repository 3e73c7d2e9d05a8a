"""Epoch milliseconds to the feed's local calendar: service date, time of day, pass expiry.

This module owns every use of the agency timezone: which local date and time a leg starts at,
which timeframe groups are in effect then, and when a pass bought at some instant expires. Time
always comes in as an argument (epoch ms); nothing here reads a clock. Wall-clock local time is
used for timeframes (not GTFS's "noon minus 12h", which differs only on DST change days).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from policies.gtfs.model import DAY_S, Duration, FareFeed

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_DAY_MS: Final = DAY_S * 1000
_FIXED_UNIT_S: Final = (1, 60, 3600)
MAX_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest instant `datetime` can represent."""


def to_local(zone: ZoneInfo, ms: int) -> datetime:
    """The local wall-clock time of epoch ms. `OverflowError` when out of datetime's range."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def local_day_and_time(zone: ZoneInfo, ms: int) -> tuple[int, int]:
    """(local date as ordinal, milliseconds since local midnight) of epoch ms."""
    t = to_local(zone, ms)
    return t.toordinal(), ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def timeframe_groups(feed: FareFeed, day: int, ms_of_day: int) -> frozenset[str]:
    """The timeframe groups in effect at `ms_of_day` on local date `day`.

    start_time is inclusive and end_time exclusive (the spec). A timeframe ending after 24:00:00
    also covers the early hours of the day after each of its service days."""
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
