"""One local day of the journal: its bounds in epoch ms, and an async reader that pages through
`Store.read_journal` from just before the day to just after it, without reading the whole
journal or holding more than a page.

Two clocks are involved. A journal entry's cursor id `"<ms>-<seq>@<shard>"` carries the Redis
server's millisecond of the XADD; its `time` field is the gateway's time of the decision, taken
before signing and the group commit. The day is a day of `time` (as the clearing report's is), so
the reader starts `margin_ms` before the day and reads until the ids pass `margin_ms` after it:
an entry decided at 23:59:59.9 and appended a second later is still read, and so is one whose
Redis clock runs a little behind the gateway's. The caller filters on `time` (`in_day`).

The start cursor is `journal_id(first_ms - 1, 0, NUM_SHARDS - 1)`: read_journal returns entries
strictly after it in (ms, seq, shard) order, i.e. everything from `first_ms - 1` with seq >= 1
and all of `first_ms` on every shard, including `first_ms-0@00`, the very first possible entry
(a cursor of `journal_id(first_ms, 0, 0)` would skip exactly that one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.store.interface import JOURNAL_READ_MAX, NUM_SHARDS, journal_id, parse_journal_id
from ops.settlement import JournalReader, read_entries

#: How far outside the day (by cursor id) entries are read, for clock differences between the
#: gateway's decision time and Redis's append time (a commit waits at most 2 s to be sent).
JOURNAL_MARGIN_MS = 10 * 60 * 1000


def day_bounds(day: date, timezone: str) -> tuple[int, int]:
    """[start, end) of the local `day` in `timezone`, epoch ms (23, 24 or 25 hours long).

    `fold=0` picks the first occurrence of a repeated midnight, and for a midnight skipped by a
    DST jump the instant of the jump, which is the day's first instant in both cases."""
    zone = ZoneInfo(timezone)

    def midnight(d: date) -> int:
        return int(datetime.combine(d, time(0), tzinfo=zone).timestamp()) * 1000

    return midnight(day), midnight(day + timedelta(days=1))


def cursor_before(ms: int) -> str | None:
    """The read_journal cursor after which every entry of millisecond `ms` (and later) comes;
    None (from the start) when `ms` is the epoch's first millisecond or earlier."""
    if ms <= 0:
        return None
    return journal_id(ms - 1, 0, NUM_SHARDS - 1)


def entry_time(fields: Mapping[str, object]) -> int | None:
    """The `time` field of an entry as epoch ms; None when missing or not an integer."""
    raw = fields.get("time")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            return None
    return None


def in_day(fields: Mapping[str, object], bounds: tuple[int, int]) -> bool:
    """Whether the entry's `time` falls in `bounds` (False for entries without one)."""
    t = entry_time(fields)
    return t is not None and bounds[0] <= t < bounds[1]


async def read_window(
    store: JournalReader,
    start_ms: int,
    end_ms: int,
    *,
    page: int = JOURNAL_READ_MAX,
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Every entry whose cursor ms is in [start_ms, end_ms), in journal order, one page at a
    time: stops at the first entry at or past `end_ms`."""
    async for entry in read_entries(store, after=cursor_before(start_ms), page=page):
        ms = parse_journal_id(entry[0])[0]
        if ms >= end_ms:
            return
        if ms >= start_ms:
            yield entry


async def read_day(
    store: JournalReader,
    day: date,
    timezone: str,
    *,
    margin_ms: int = JOURNAL_MARGIN_MS,
    page: int = JOURNAL_READ_MAX,
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The entries that may belong to the local `day`: those appended from `margin_ms` before its
    first millisecond to `margin_ms` after its last. Filter them with `in_day`."""
    start, end = day_bounds(day, timezone)
    async for entry in read_window(store, start - margin_ms, end + margin_ms, page=page):
        yield entry
