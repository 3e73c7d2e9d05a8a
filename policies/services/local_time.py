"""Epoch milliseconds to the city's wall clock: local date, weekday and minute of the day.

This module owns the services rules' one use of a timezone (opening hours, access windows,
discount windows, off-peak rewards, per-day limits). The conversion itself is delegated to
policies/gtfs/local_time.py, the only place in policies/ that imports `datetime` / `zoneinfo`;
nothing here reads a clock or the host's timezone.

Results are cached per (zone, minute): a UTC offset only ever changes on a whole minute, so the
cache is exact, and the hot paths (a retail payment with a time-windowed discount) skip the
`datetime` arithmetic for every tap after the first of each minute.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, NamedTuple

from policies.gtfs.local_time import local_day_and_time, zone_named

DAY_MS: Final = 86_400_000
MINUTE_MS: Final = 60_000
MINUTES_PER_DAY: Final = 1_440
_UNIX_EPOCH_ORDINAL: Final = 719_163
"""`date(1970, 1, 1).toordinal()`."""


class LocalTime(NamedTuple):
    day: int
    """Local calendar date as a proleptic Gregorian ordinal (`date.toordinal()`)."""
    weekday: int
    """0 = Monday ... 6 = Sunday."""
    minute: int
    """Minutes since local midnight, 0..1439."""


def check_zone(name: str) -> str:
    """`name` if it is an IANA timezone this host knows, else `ValueError`."""
    zone_named(name)
    return name


def _weekday(ordinal: int) -> int:
    # date.fromordinal(1) is Monday 0001-01-01.
    return (ordinal - 1) % 7


@lru_cache(maxsize=16_384)
def _local_minute(zone_name: str, minute: int) -> LocalTime:
    try:
        day, ms_of_day = local_day_and_time(zone_named(zone_name), minute * MINUTE_MS)
    except (OverflowError, OSError, ValueError):
        # Beyond datetime's range (years 1..9999): no tap comes from there, and a decision must
        # not raise, so such an instant is read as UTC.
        day = minute // MINUTES_PER_DAY + _UNIX_EPOCH_ORDINAL
        return LocalTime(day, _weekday(day), minute % MINUTES_PER_DAY)
    return LocalTime(day, _weekday(day), ms_of_day // MINUTE_MS)


def local_time(zone_name: str, now_ms: int) -> LocalTime:
    """The local date, weekday and minute of `now_ms` in `zone_name` (validated by the tariff)."""
    return _local_minute(zone_name, now_ms // MINUTE_MS)
