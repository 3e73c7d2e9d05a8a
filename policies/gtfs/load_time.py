"""Loading the feed's notion of time: agency timezone, feed validity, service days, timeframes.

This module owns agency.txt (the timezone), feed_info.txt (version and validity dates),
calendar.txt / calendar_dates.txt (which service_id runs on which date) and timeframes.txt
(time-of-day windows on those service days). The timezone is built here, once per feed:
constructing a `ZoneInfo` is allowed in the pure core, reading a clock is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies.gtfs.errors import FeedError
from policies.gtfs.model import DAY_S, Service, Timeframe
from policies.gtfs.table import Table

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MAX_TIME_S = 2 * DAY_S
"""Timeframes beyond 24:00:00 are forbidden by the current spec; older feeds used them for the
early hours of the next day, so up to 48:00:00 is accepted and read that way."""


@dataclass(frozen=True, slots=True)
class Agency:
    names: tuple[str, ...]
    timezone: str
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class FeedInfo:
    version: str | None
    start: int | None
    end: int | None


def load_agency(table: Table) -> Agency:
    table.require_columns("agency_timezone")
    if not table.rows:
        raise FeedError(table.file, None, None, "no agency")
    names: list[str] = []
    timezone: str | None = None
    for row in table.rows:
        tz = row.require("agency_timezone")
        if timezone is None:
            timezone = tz
        elif tz != timezone:
            raise row.error(
                "agency_timezone", f'"{tz}" differs from "{timezone}"; all agencies must share one'
            )
        names.append(row.get("agency_name") or row.get("agency_id"))
    assert timezone is not None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise table.rows[0].error(
            "agency_timezone", f'"{timezone}" is not an IANA timezone'
        ) from None
    return Agency(tuple(names), timezone, zone)


def load_feed_info(table: Table | None) -> FeedInfo:
    if table is None or not table.rows:
        return FeedInfo(None, None, None)
    row = table.rows[0]
    start = row.date_ordinal("feed_start_date") if row.get("feed_start_date") else None
    end = row.date_ordinal("feed_end_date") if row.get("feed_end_date") else None
    if start is not None and end is not None and end < start:
        raise row.error("feed_end_date", "is before feed_start_date")
    return FeedInfo(row.get("feed_version") or None, start, end)


def load_services(calendar: Table | None, dates: Table | None) -> dict[str, Service]:
    """service_id -> when it runs, from calendar.txt and calendar_dates.txt (each optional)."""
    patterns: dict[str, tuple[int, int, tuple[bool, ...]]] = {}
    if calendar is not None:
        calendar.require_columns("service_id", *_WEEKDAYS, "start_date", "end_date")
        for row in calendar.rows:
            service_id = row.require("service_id")
            if service_id in patterns:
                raise row.error("service_id", f'"{service_id}" appears twice in calendar.txt')
            flags: list[bool] = []
            for weekday in _WEEKDAYS:
                flag = row.optional_enum(weekday, (0, 1))
                if flag is None:
                    raise row.error(weekday, "a value is required")
                flags.append(flag == 1)
            start = row.date_ordinal("start_date")
            end = row.date_ordinal("end_date")
            if end < start:
                raise row.error("end_date", "is before start_date")
            patterns[service_id] = (start, end, tuple(flags))
    added: dict[str, set[int]] = {}
    removed: dict[str, set[int]] = {}
    if dates is not None:
        dates.require_columns("service_id", "date", "exception_type")
        for row in dates.rows:
            service_id = row.require("service_id")
            day = row.date_ordinal("date")
            kind = row.optional_enum("exception_type", (1, 2))
            if kind is None:
                raise row.error("exception_type", "a value is required")
            (added if kind == 1 else removed).setdefault(service_id, set()).add(day)
            (removed if kind == 1 else added).setdefault(service_id, set()).discard(day)
    services: dict[str, Service] = {}
    for service_id in sorted(patterns.keys() | added.keys() | removed.keys()):
        pattern = patterns.get(service_id)
        services[service_id] = Service(
            None if pattern is None else pattern[0],
            None if pattern is None else pattern[1],
            (False,) * 7 if pattern is None else pattern[2],
            frozenset(added.get(service_id, ())),
            frozenset(removed.get(service_id, ())),
        )
    return services


def calendar_span(services: Mapping[str, Service]) -> tuple[int | None, int | None]:
    """First and last date any service could run on, or (None, None) without calendars."""
    days: list[int] = []
    for s in services.values():
        if s.start is not None and s.end is not None and any(s.weekdays):
            days += (s.start, s.end)
        days += s.added
    return (min(days), max(days)) if days else (None, None)


def load_timeframes(
    table: Table | None, services: Mapping[str, Service], notes: list[str]
) -> tuple[Timeframe, ...]:
    if table is None:
        return ()
    table.require_one_of("timeframe_group_id", "timeframe_id")
    table.require_columns("service_id")
    frames: list[Timeframe] = []
    for row in table.rows:
        group = row.get("timeframe_group_id", "timeframe_id")
        if not group:
            raise row.error("timeframe_group_id", "a value is required")
        has_start, has_end = bool(row.get("start_time")), bool(row.get("end_time"))
        if has_start != has_end:
            missing = "end_time" if has_start else "start_time"
            raise row.error(missing, "start_time and end_time go together; one is empty")
        start = row.time_of_day("start_time", 0)
        end = row.time_of_day("end_time", DAY_S)
        if start >= DAY_S:
            raise row.error("start_time", f'"{row.get("start_time")}" is not before 24:00:00')
        if end > _MAX_TIME_S:
            raise row.error("end_time", f'"{row.get("end_time")}" is beyond 48:00:00')
        if end <= start:
            raise row.error("end_time", f'"{row.get("end_time")}" is not after start_time')
        if end > DAY_S:
            notes.append(
                f"timeframes.txt line {row.line}: end_time {row.get('end_time')} is past 24:00:00 "
                "(forbidden by the current spec); read as the early hours of the next day"
            )
        service_id = row.require("service_id")
        if service_id not in services:
            raise row.error(
                "service_id",
                f'"{service_id}" is not a service_id of calendar.txt or calendar_dates.txt',
            )
        frames.append(Timeframe(group, start, end, service_id, row.line))
    return tuple(frames)


MAX_GAP_DAYS = 800


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def coverage_gaps(
    frames: tuple[Timeframe, ...],
    services: Mapping[str, Service],
    valid_from: int | None,
    valid_to: int | None,
) -> list[str]:
    """Times of day, per date of the validity period, that no timeframe covers.

    The spec's end_time is exclusive, so a feed written as 00:00:00-08:59:00, 09:00:00-... leaves
    a minute in which a leg matches no timeframe. Only the first MAX_GAP_DAYS dates are checked.
    """
    if not frames or valid_from is None or valid_to is None:
        return []
    by_gaps: dict[str, list[int]] = {}
    for day in range(valid_from, min(valid_to, valid_from + MAX_GAP_DAYS) + 1):
        spans: list[tuple[int, int]] = []
        for f in frames:
            service = services[f.service_id]
            if service.runs_on(day):
                spans.append((f.start_s, min(f.end_s, DAY_S)))
            if f.end_s > DAY_S and service.runs_on(day - 1):
                spans.append((0, f.end_s - DAY_S))
        gaps: list[str] = []
        covered_to = 0
        for start, end in sorted(spans):
            if start > covered_to:
                gaps.append(f"{_hms(covered_to)}-{_hms(start)}")
            covered_to = max(covered_to, end)
        if covered_to < DAY_S:
            gaps.append(f"{_hms(covered_to)}-{_hms(DAY_S)}")
        if gaps:
            by_gaps.setdefault(", ".join(gaps), []).append(day)
    return [
        f"timeframes.txt: no timeframe covers {gaps} on {len(days)} date(s), "
        f"e.g. {date.fromordinal(days[0]).isoformat()} (end_time is exclusive)"
        for gaps, days in sorted(by_gaps.items(), key=lambda item: item[1][0])
    ]
