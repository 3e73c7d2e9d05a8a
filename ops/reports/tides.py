"""The day's taps as the TIDES `fare_transactions` table (Transit ITS Data Exchange
Specification, `spec/fare_transactions.schema.json` of TIDES-transit/TIDES, main branch as of
2026), CSV or Parquet.

One row per decided tap of a known card (journal `op == "commit"`, approved or declined) whose
decision time falls on the local service day; admin writes (`put_card`) are skipped. Every
TIDES field is a column, in the spec's order, so the files line up with its table schema;
those the journal cannot fill are empty (null in Parquet), `fare_capped` among them although
TIDES requires it.

Filled from the journal entry (field table in docs/internals.md):

- `transaction_id`: the journal entry id `<ms>-<seq>@<shard>` (unique; the clearing report
  names entries by it too).
- `service_date`: the local date of `time` in the export's timezone (the calendar date: a trip
  after midnight is on the next date).
- `event_timestamp`: `time`, the gateway's decision time (UTC, milliseconds).
- `amount`: `amount`, integer minor units of `currency_type`, the journal's sign: charged to the
  card > 0, a credit (top-up, refund, recycling credit) < 0, 0 for a decline.
- `currency_type`: the caller's ISO 4217 code (the journal holds minor units only).
- `fare_action`: from the entry's first event type (`FARE_ACTIONS`), for a decline from the
  terminal's kind (`DECLINED_ACTIONS`); shop, taxi, parking and venue payments are `Other`.
- `device_id`: `terminal`. `stop_id`: `stop` (transit taps). `fare_product`: `product`.
  `balance`: `balance` (minor units, after the tap).
- `num_riders`: 1 for an approved tap at a transit terminal (`gate`, `bus`); empty otherwise.
- `fare_media_id`: always `Smart card or ticket` (the city card; no other medium is journaled).
- `token_id`: HMAC-SHA-256(key, card id) as hex, never the card id itself; the same card has
  the same token in every export made with the same key (`card_token`).

Left empty: `location_ping_id`, `trip_id_performed`, `trip_id_scheduled`, `pattern_id`,
`trip_stop_sequence`, `scheduled_stop_sequence`, `vehicle_id` (the gateway knows terminals,
not vehicles, trips or AVL pings; those come from the CAD/AVL side and join on `device_id`);
`fare_id` (references GTFS Fares v1 `fare_attributes`; the city's feed is Fares v2);
`rider_category` (the card's category is not journaled with the tap); `fare_period` (not
journaled); `fare_capped` (required by TIDES, but whether a cap changed the fare is not
journaled: null rather than a guess).

Added, prefixed `citycard_` (TIDES has no field for them): `citycard_result` (`approved` /
`declined`), `citycard_reason` (the reason code, `policies.reasons`), `citycard_event` (the
entry's first event type: what really happened, where `fare_action` is coarse),
`citycard_operator` (the terminal's operator), `citycard_terminal_kind` (`gate`, `bus`,
`retail`, ...) and `citycard_route_id` (the GTFS route of a bus tap: TIDES keeps routes on
`trips_performed`, which the gateway does not have).

`tap_rows` is pure (entries in, rows out, one at a time); `CsvTapWriter` and `ParquetTapWriter`
stream rows to a file (Parquet in row groups of `PARQUET_BATCH_ROWS`), and `export_day` feeds
them a `Store`'s day page by page, so memory stays bounded whatever the size of the day.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol, TextIO

import orjson

from gateway.store.interface import JOURNAL_READ_MAX, parse_journal_id
from ops.reports.journal import JOURNAL_MARGIN_MS, day_bounds, entry_time, read_day
from ops.settlement import JournalReader

if TYPE_CHECKING:
    import pyarrow as pa

#: Rows per Parquet row group (and per batch held in memory).
PARQUET_BATCH_ROWS: Final = 50_000
#: Problems kept in `ExportStats.problems` (the count goes on).
MAX_PROBLEMS_KEPT: Final = 100

FARE_MEDIUM: Final = "Smart card or ticket"
#: Terminal kinds where a tap is a rider boarding or leaving.
TRANSIT_KINDS: Final = frozenset({"gate", "bus"})

#: TIDES `fare_action` per event type of an approved entry.
FARE_ACTIONS: Final[Mapping[str, str]] = {
    "fare_charged": "Enter",
    "repeat_tap": "Enter",
    "tap_on": "Enter",
    "tap_off": "Exit",
    "fare_corrected": "Adjust",
    "product_bought": "Purchase",
    "topup": "Add",
    "recycle_credit": "Add",
    "reward_credit": "Add",
    "points_redeemed": "Add",
    # City services and shop payments: card payments, not fare products.
    "purchase": "Other",
    "retail_payment": "Other",
    "taxi_fare": "Other",
    "parking_entry": "Other",
    "parking_exit": "Other",
    "parking_lost": "Other",
    "venue_entry": "Other",
    "facility_access": "Other",
}
#: `fare_action` of a declined tap, from what the terminal is (a decline's event says only
#: "declined"); kiosks and shops do several things, so theirs is unknown.
DECLINED_ACTIONS: Final[Mapping[str, str]] = {
    "gate": "Enter",
    "bus": "Enter",
    "ops": "Adjust",
    "recycling": "Add",
    "taxi": "Other",
    "parking": "Other",
    "venue": "Other",
    "access": "Other",
}
UNKNOWN_ACTION: Final = "Unknown action type"
#: Secondary events that never describe the tap itself.
_SECONDARY_EVENTS: Final = frozenset({"auto_topup_requested"})


def card_token(key: bytes, card: str) -> str:
    """The keyed token standing for a card id in exports: HMAC-SHA-256 over the id, hex."""
    return hmac.new(key, card.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class TapRow:
    """One `fare_transactions` row; fields in column order. Times are epoch ms (UTC), money is
    integer minor units, None is an empty cell."""

    transaction_id: str
    service_date: date
    event_timestamp: int
    location_ping_id: str | None
    amount: int
    currency_type: str
    fare_action: str
    trip_id_performed: str | None
    trip_id_scheduled: str | None
    pattern_id: str | None
    trip_stop_sequence: int | None
    scheduled_stop_sequence: int | None
    vehicle_id: str | None
    device_id: str
    fare_id: str | None
    stop_id: str | None
    num_riders: int | None
    fare_media_id: str
    rider_category: str | None
    fare_product: str | None
    fare_period: str | None
    fare_capped: bool | None
    token_id: str
    balance: int
    citycard_result: str
    citycard_reason: str
    citycard_event: str | None
    citycard_operator: str
    citycard_terminal_kind: str | None
    citycard_route_id: str | None


COLUMNS: Final[tuple[str, ...]] = tuple(f.name for f in fields(TapRow))
#: TIDES fields (the rest, `citycard_*`, are ours).
TIDES_COLUMNS: Final = tuple(c for c in COLUMNS if not c.startswith("citycard_"))
#: A row's values in column order.
row_values: Final = attrgetter(*COLUMNS)
_INT_COLUMNS: Final = frozenset(
    {"amount", "balance", "num_riders", "trip_stop_sequence", "scheduled_stop_sequence"}
)


def arrow_schema(metadata: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema: timestamp[ms, UTC], date32, int64 money and counts, bool, string."""
    import pyarrow as pa

    def arrow_type(name: str) -> pa.DataType:
        if name == "event_timestamp":
            return pa.timestamp("ms", tz="UTC")
        if name == "service_date":
            return pa.date32()
        if name == "fare_capped":
            return pa.bool_()
        if name in _INT_COLUMNS:
            return pa.int64()
        return pa.string()

    required = {"transaction_id", "service_date", "event_timestamp", "amount", "fare_action"}
    return pa.schema(
        [pa.field(n, arrow_type(n), nullable=n not in required) for n in COLUMNS],
        metadata=dict(metadata or {}),
    )


@dataclass(slots=True)
class ExportStats:
    """What `tap_rows` saw: rows produced, entries skipped as not the day's taps, and journal
    entries of the day that could not be exported (kept up to `MAX_PROBLEMS_KEPT`)."""

    rows: int = 0
    skipped: int = 0
    problem_count: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def problem(self, entry_id: str, why: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((entry_id, why))


class EntryError(ValueError):
    """A journal entry of the day that cannot become a row."""


def _int_field(fields_: Mapping[str, object], name: str) -> int:
    raw = fields_.get(name)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            pass
    raise EntryError(f"{name}: not an integer")


def _opt(fields_: Mapping[str, object], name: str) -> str | None:
    raw = fields_.get(name)
    return raw if isinstance(raw, str) and raw else None


def _first_event_type(fields_: Mapping[str, object]) -> str | None:
    raw = fields_.get("events")
    if raw is None:
        return None
    try:
        events = orjson.loads(raw if isinstance(raw, str | bytes) else b"")
    except orjson.JSONDecodeError:
        raise EntryError("events: not JSON") from None
    if not isinstance(events, list):
        raise EntryError("events: not a list")
    types = [e.get("type") for e in events if isinstance(e, dict)]
    named = [t for t in types if isinstance(t, str) and t]
    primary = [t for t in named if t not in _SECONDARY_EVENTS]
    chosen = primary or named
    return chosen[0] if chosen else None


def fare_action(result: str, event: str | None, kind: str | None) -> str:
    """The TIDES `fare_action` of a tap (see `FARE_ACTIONS` and `DECLINED_ACTIONS`)."""
    if result == "approved" and event is not None:
        return FARE_ACTIONS.get(event, UNKNOWN_ACTION)
    if result == "declined":
        return DECLINED_ACTIONS.get(kind or "", UNKNOWN_ACTION)
    return UNKNOWN_ACTION


def tap_row(
    entry_id: str,
    fields_: Mapping[str, object],
    *,
    service_date: date,
    key: bytes,
    currency: str,
) -> TapRow:
    """The row of one decided tap (`op == "commit"`); EntryError when a field it needs is
    missing or malformed."""
    card = fields_.get("card")
    if not isinstance(card, str) or not card:
        raise EntryError("card: missing")
    terminal = fields_.get("terminal")
    if not isinstance(terminal, str) or not terminal:
        raise EntryError("terminal: missing")
    result = fields_.get("result")
    if result not in ("approved", "declined"):
        raise EntryError("result: neither approved nor declined")
    assert isinstance(result, str)
    time_ms = _int_field(fields_, "time")
    amount = _int_field(fields_, "amount")
    balance = _int_field(fields_, "balance")
    kind = _opt(fields_, "kind")
    event = _first_event_type(fields_)
    approved = result == "approved"
    return TapRow(
        transaction_id=entry_id,
        service_date=service_date,
        event_timestamp=time_ms,
        location_ping_id=None,
        amount=amount,
        currency_type=currency,
        fare_action=fare_action(result, event, kind),
        trip_id_performed=None,
        trip_id_scheduled=None,
        pattern_id=None,
        trip_stop_sequence=None,
        scheduled_stop_sequence=None,
        vehicle_id=None,
        device_id=terminal,
        fare_id=None,
        stop_id=_opt(fields_, "stop"),
        num_riders=1 if approved and kind in TRANSIT_KINDS else None,
        fare_media_id=FARE_MEDIUM,
        rider_category=None,
        fare_product=_opt(fields_, "product"),
        fare_period=None,
        fare_capped=None,
        token_id=card_token(key, card),
        balance=balance,
        citycard_result=result,
        citycard_reason=_opt(fields_, "reason") or "",
        citycard_event=event,
        citycard_operator=_opt(fields_, "operator") or "",
        citycard_terminal_kind=kind,
        citycard_route_id=_opt(fields_, "route"),
    )


def tap_rows(
    entries: Iterable[tuple[str, Mapping[str, object]]],
    *,
    day: date,
    timezone: str,
    key: bytes,
    currency: str,
    stats: ExportStats | None = None,
) -> Iterator[TapRow]:
    """One row per decided tap whose `time` is on the local `day` of `timezone`, in the order
    of `entries`. Pure and lazy: reads nothing but its arguments, holds one entry at a time.

    An entry that cannot be exported (no readable time, card or amount) is counted in
    `stats.problems` when its journal id falls on the day, and is otherwise skipped."""
    start, end = day_bounds(day, timezone)
    if stats is None:
        stats = ExportStats()
    for entry_id, fields_ in entries:
        if fields_.get("op") != "commit":
            stats.skipped += 1
            continue
        t = entry_time(fields_)
        if t is None:
            try:
                appended = parse_journal_id(entry_id)[0]
            except ValueError:
                appended = start  # not a journal id either: report it rather than drop it
            if start <= appended < end:
                stats.problem(entry_id, "time: not an integer")
            else:
                stats.skipped += 1
            continue
        if not start <= t < end:
            stats.skipped += 1
            continue
        try:
            row = tap_row(entry_id, fields_, service_date=day, key=key, currency=currency)
        except EntryError as exc:
            stats.problem(entry_id, str(exc))
            continue
        stats.rows += 1
        yield row


# --- writers -----------------------------------------------------------------------------------


def _timestamp(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


def _plain(value: object) -> str:
    return "" if value is None else str(value)


def _cell_formatter(name: str) -> Callable[[Any], str]:
    """How a column's values are written in CSV."""
    if name == "event_timestamp":
        return _timestamp
    if name == "service_date":
        return date.isoformat
    if name == "fare_capped":
        return lambda v: "" if v is None else ("true" if v else "false")
    return _plain


_CELLS: Final = tuple(_cell_formatter(c) for c in COLUMNS)


class TapWriter(Protocol):
    rows: int

    def write(self, rows: Iterable[TapRow]) -> None: ...

    def close(self) -> None: ...


class CsvTapWriter:
    """CSV, row by row: a header, then one line per row. Timestamps are ISO 8601 UTC with
    milliseconds (`2026-03-04T11:00:00.000Z`), dates `YYYY-MM-DD`, money integer minor units,
    empty cells for nulls. `out` is a text file opened with newline=""."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(COLUMNS)
        self.rows = 0

    def write(self, rows: Iterable[TapRow]) -> None:
        for row in rows:
            self._writer.writerow([f(v) for f, v in zip(_CELLS, row_values(row), strict=True)])
            self.rows += 1

    def close(self) -> None:
        return None


class ParquetTapWriter:
    """Parquet with `arrow_schema()`: rows are buffered column-wise and written as one row group
    per `batch_rows` rows, the most ever held in memory. Closing writes the last row group and
    the footer; a day without taps is a valid file with no rows."""

    def __init__(
        self,
        out: str | Path | BinaryIO,
        *,
        batch_rows: int = PARQUET_BATCH_ROWS,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema(metadata)
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")
        self._batch_rows = batch_rows
        self._columns: list[list[Any]] = [[] for _ in COLUMNS]
        self._pending = 0
        self.rows = 0

    def write(self, rows: Iterable[TapRow]) -> None:
        columns = self._columns
        for row in rows:
            for col, value in zip(columns, row_values(row), strict=True):
                col.append(value)
            self._pending += 1
            self.rows += 1
            if self._pending >= self._batch_rows:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        schema = self._schema
        arrays = [pa.array(col, type=schema.field(i).type) for i, col in enumerate(self._columns)]
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        self._writer.write_batch(batch, row_group_size=self._batch_rows)
        for col in self._columns:
            col.clear()
        self._pending = 0

    def close(self) -> None:
        if self._pending:
            self._flush()
        self._writer.close()


def write_csv(rows: Iterable[TapRow], out: TextIO) -> int:
    """All of `rows` as CSV to `out` (see `CsvTapWriter`); returns the rows written."""
    writer = CsvTapWriter(out)
    writer.write(rows)
    return writer.rows


def write_parquet(
    rows: Iterable[TapRow],
    out: str | Path | BinaryIO,
    *,
    batch_rows: int = PARQUET_BATCH_ROWS,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """All of `rows` as Parquet to `out` (see `ParquetTapWriter`); returns the rows written."""
    writer = ParquetTapWriter(out, batch_rows=batch_rows, metadata=metadata)
    try:
        writer.write(rows)
    finally:
        writer.close()
    return writer.rows


async def export_day(
    store: JournalReader,
    writer: TapWriter,
    *,
    day: date,
    timezone: str,
    key: bytes,
    currency: str,
    stats: ExportStats | None = None,
    page: int = JOURNAL_READ_MAX,
    margin_ms: int = JOURNAL_MARGIN_MS,
) -> ExportStats:
    """Read the local `day` from `store` (`ops.reports.journal.read_day`) and write its taps
    to `writer`, one page of entries at a time; returns the stats (rows, problems)."""
    if stats is None:
        stats = ExportStats()
    chunk: list[tuple[str, dict[str, str]]] = []

    def drain() -> None:
        writer.write(
            tap_rows(chunk, day=day, timezone=timezone, key=key, currency=currency, stats=stats)
        )
        chunk.clear()

    async for entry in read_day(store, day, timezone, margin_ms=margin_ms, page=page):
        chunk.append(entry)
        if len(chunk) >= page:
            drain()
    drain()
    return stats
