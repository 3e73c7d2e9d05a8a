"""Operator reports: the TIDES tap export (row mapping, the local day's bounds, the card token,
CSV and Parquet), the clearing CSV, the journal day reader's cursor on a real Redis, and the
`citycard export taps` / `citycard report clearing` commands end to end."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import stat
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from actors.card import CardActor, CardDeps, TapRequest
from actors.card_store import CardWrite
from gateway.store.interface import (
    JOURNAL_READ_MAX,
    NUM_SHARDS,
    journal_id,
    parse_journal_id,
    shard_of,
)
from gateway.store.memory_store import MemoryStore
from gateway.store.redis_store import RedisStore, journal_key
from ops.cli import main
from ops.export_cli import export_token_key
from ops.reports.clearing import COLUMNS as CLEARING_COLUMNS
from ops.reports.clearing import day_clearing, merge_into, write_clearing_csv
from ops.reports.journal import cursor_before, day_bounds, read_day, read_window
from ops.reports.tides import (
    COLUMNS,
    TIDES_COLUMNS,
    ExportStats,
    TapRow,
    arrow_schema,
    card_token,
    export_day,
    tap_rows,
    write_csv,
    write_parquet,
)
from ops.settlement import ClearingReport, clearing_report, local_day
from policies import CardState, Command, Decision, FareTap, TopUp
from policies.services.commands import RecycleDeposit, RetailPayment, TaxiFare
from tests.policies.services.helpers import NOON, TARIFF

ZONE = "Europe/Berlin"
KEY = b"k" * 32
DAY = date(2026, 3, 4)  # NOON's day in Berlin

# The TIDES fare_transactions fields, in the spec's order (TIDES-transit/TIDES main, 2026).
TIDES_FIELDS = (
    "transaction_id", "service_date", "event_timestamp", "location_ping_id", "amount",
    "currency_type", "fare_action", "trip_id_performed", "trip_id_scheduled", "pattern_id",
    "trip_stop_sequence", "scheduled_stop_sequence", "vehicle_id", "device_id", "fare_id",
    "stop_id", "num_riders", "fare_media_id", "rider_category", "fare_product", "fare_period",
    "fare_capped", "token_id", "balance",
)


async def _sign(req: TapRequest, decision: Decision, gateway_time: int) -> bytes:
    return b"signed"


Tap = tuple[str, Command, int, str]  # card, command, time, terminal kind


async def _drive(
    store: MemoryStore | RedisStore, cards: dict[str, CardState], taps: Sequence[Tap]
) -> None:
    """Issue `cards` and pass every tap through a real CardActor writing to `store`."""
    for card, state in cards.items():
        await store.put_card(card, orjson.dumps(state.to_dict()))
    actors = {card: CardActor(card, CardDeps(store, lambda: TARIFF, _sign)) for card in cards}
    for actor in actors.values():
        await actor.on_activate()
    for seq, (card, command, now, kind) in enumerate(taps, start=1):
        await actors[card].handle(
            TapRequest(
                command.terminal_id, command.operator, seq, f"tap-{seq}", card, "h", command,
                now, kind,
            )
        )


async def _memory_journal(
    cards: dict[str, CardState], taps: Sequence[Tap]
) -> list[tuple[str, dict[str, str]]]:
    store = MemoryStore()
    await _drive(store, cards, taps)
    return await store.read_journal(count=JOURNAL_READ_MAX)


CARDS = {
    "card-0001": CardState("card-0001", 5_000, "active"),
    "card-0002": CardState("card-0002", 100, "active"),
}
TAPS: list[Tap] = [
    ("card-0001", FareTap("gate-1", "metro", "METRO", "gate-1", stop="S-ALEX"), NOON, "gate"),
    (
        "card-0001",
        FareTap("bus-7", "citybus", "BUS", "bus-7", route="R-100", stop="S-ZOO"),
        NOON + 60_000,
        "bus",
    ),
    ("card-0002", FareTap("gate-1", "metro", "METRO", "gate-1"), NOON + 1, "gate"),  # declined
    ("card-0001", RetailPayment("till-1", "bakery", 450, "bakery", "bakery"), NOON + 2, "retail"),
    ("card-0001", TopUp("kiosk-1", "city", 2_000), NOON + 3, "kiosk"),
    ("card-0002", RecycleDeposit("kiosk-7", "green-city", "pet", 2_500), NOON + 4, "recycling"),
]


def _rows(entries: Sequence[tuple[str, dict[str, str]]], **kw: object) -> list[TapRow]:
    args: dict[str, object] = {"day": DAY, "timezone": ZONE, "key": KEY, "currency": "EUR"}
    args.update(kw)
    return list(tap_rows(entries, **args))  # type: ignore[arg-type]


# --- row mapping ---------------------------------------------------------------------------------


def test_columns_follow_the_tides_spec() -> None:
    assert TIDES_COLUMNS == TIDES_FIELDS
    extra = COLUMNS[len(TIDES_FIELDS):]
    assert COLUMNS[: len(TIDES_FIELDS)] == TIDES_FIELDS
    assert extra and all(c.startswith("citycard_") for c in extra) and len(extra) <= 6


def test_row_mapping_of_real_taps() -> None:
    entries = anyio.run(_memory_journal, CARDS, TAPS)
    assert sum(1 for _, f in entries if f["op"] == "put_card") == 2
    rows = _rows(entries)
    assert len(rows) == len(TAPS)  # every decided tap, no put_card
    by_device = {r.device_id: r for r in rows if r.device_id != "gate-1"}
    gate_ok, gate_declined = (r for r in rows if r.device_id == "gate-1")

    assert gate_ok.citycard_result == "approved" and gate_ok.fare_action == "Enter"
    assert (gate_ok.amount, gate_ok.balance, gate_ok.fare_product) == (250, 4_750, "fare:METRO")
    assert (gate_ok.stop_id, gate_ok.citycard_route_id, gate_ok.num_riders) == ("S-ALEX", None, 1)
    assert gate_ok.event_timestamp == NOON and gate_ok.service_date == DAY
    assert (gate_ok.citycard_event, gate_ok.citycard_terminal_kind) == ("fare_charged", "gate")
    assert gate_ok.citycard_operator == "metro" and gate_ok.currency_type == "EUR"
    assert gate_ok.fare_media_id == "Smart card or ticket"
    assert gate_ok.fare_capped is None and gate_ok.rider_category is None
    assert gate_ok.transaction_id in {eid for eid, _ in entries}

    assert gate_declined.citycard_result == "declined"
    assert gate_declined.citycard_reason == "insufficient_funds"
    assert (gate_declined.amount, gate_declined.balance, gate_declined.num_riders) == (0, 100, None)
    assert gate_declined.fare_action == "Enter" and gate_declined.citycard_event == "declined"

    bus = by_device["bus-7"]
    assert (bus.stop_id, bus.citycard_route_id, bus.fare_action) == ("S-ZOO", "R-100", "Enter")
    assert bus.amount == 200 and bus.citycard_terminal_kind == "bus"

    shop = by_device["till-1"]
    assert (shop.fare_action, shop.citycard_event, shop.amount) == ("Other", "retail_payment", 450)
    assert (shop.stop_id, shop.num_riders, shop.citycard_operator) == (None, None, "bakery")

    topup = by_device["kiosk-1"]
    assert (topup.fare_action, topup.amount, topup.citycard_event) == ("Add", -2_000, "topup")
    recycle = by_device["kiosk-7"]
    assert recycle.fare_action == "Add" and recycle.amount < 0
    assert recycle.citycard_event == "recycle_credit"

    assert {r.token_id for r in rows} == {card_token(KEY, c) for c in CARDS}


def test_broken_entries_are_counted_not_dropped() -> None:
    good = {"op": "commit", "card": "c", "terminal": "t", "result": "approved", "time": str(NOON),
            "amount": "100", "balance": "0"}
    broken = {**good, "amount": "1e3"}
    timeless = {**good, "time": "noon"}
    stats = ExportStats()
    start, _ = day_bounds(DAY, ZONE)
    entries = [
        (journal_id(start + 5, 0, 1), good),
        (journal_id(start + 6, 0, 1), broken),
        (journal_id(start + 7, 0, 1), timeless),  # appended on the day: reported
        (journal_id(start - 3_600_000, 0, 1), timeless),  # appended the day before: skipped
    ]
    rows = _rows(entries, stats=stats)
    assert [r.transaction_id for r in rows] == [entries[0][0]]
    assert stats.rows == 1 and stats.problem_count == 2 and stats.skipped == 1
    assert [p[0] for p in stats.problems] == [entries[1][0], entries[2][0]]


# --- the local day -------------------------------------------------------------------------------


def _at_time(ms: int, card: str = "c") -> dict[str, str]:
    return {"op": "commit", "card": card, "terminal": "t", "result": "approved",
            "time": str(ms), "amount": "0", "balance": "0"}


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 4), 24), (date(2026, 3, 29), 23), (date(2026, 10, 25), 25)],
)
def test_day_bounds_around_local_midnight(day: date, hours: int) -> None:
    start, end = day_bounds(day, ZONE)
    assert end - start == hours * 3_600_000
    zone = ZoneInfo(ZONE)
    # The same calendar as the clearing report's.
    assert local_day(start, zone) == day and local_day(end - 1, zone) == day
    assert local_day(start - 1, zone) != day and local_day(end, zone) != day
    assert datetime.fromtimestamp(start / 1000, zone).strftime("%H:%M:%S") == "00:00:00"
    edges = [start - 1, start, end - 1, end]
    entries = [(journal_id(t, 0, 0), _at_time(t)) for t in edges]
    rows = _rows(entries, day=day)
    assert [r.event_timestamp for r in rows] == [start, end - 1]
    assert {r.service_date for r in rows} == {day}


def test_day_in_another_timezone() -> None:
    # 23:30 UTC on 3 March is 00:30 on 4 March in Berlin, still 3 March in UTC.
    t = int(datetime(2026, 3, 3, 23, 30, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    entries = [(journal_id(t, 0, 0), _at_time(t))]
    assert len(_rows(entries, day=DAY, timezone=ZONE)) == 1
    assert _rows(entries, day=DAY, timezone="UTC") == []
    assert len(_rows(entries, day=date(2026, 3, 3), timezone="UTC")) == 1


# --- the token -----------------------------------------------------------------------------------


def test_card_ids_never_appear_in_the_files(tmp_path: Path) -> None:
    entries = anyio.run(_memory_journal, CARDS, TAPS)
    rows = _rows(entries)
    assert card_token(KEY, "card-0001") == hmac.new(
        KEY, b"card-0001", hashlib.sha256
    ).hexdigest()
    assert card_token(b"x" * 32, "card-0001") != card_token(KEY, "card-0001")
    text = io.StringIO(newline="")
    write_csv(rows, text)
    for path, compression in ((tmp_path / "a.parquet", "none"), (tmp_path / "b.parquet", "zstd")):
        with pq.ParquetWriter(path, arrow_schema(), compression=compression) as w:
            w.write_table(pa.Table.from_pylist(
                [dict(zip(COLUMNS, (getattr(r, c) for c in COLUMNS), strict=True)) for r in rows],
                schema=arrow_schema(),
            ))
    write_parquet(rows, tmp_path / "c.parquet")
    blobs = [text.getvalue().encode()] + [
        (tmp_path / n).read_bytes() for n in ("a.parquet", "b.parquet", "c.parquet")
    ]
    decoded = str(pq.read_table(tmp_path / "c.parquet").to_pylist()).encode()
    for card in CARDS:
        for blob in (*blobs, decoded):
            assert card.encode() not in blob
    # ... while the uncompressed file does hold the tokens (the check above can see text).
    assert card_token(KEY, "card-0001").encode() in blobs[1]


def test_export_key_file(tmp_path: Path) -> None:
    key = export_token_key(tmp_path)
    path = tmp_path / "keys" / "export.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert export_token_key(tmp_path) == key  # kept, not remade
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    path.write_bytes(b"short")
    with pytest.raises(SystemExit, match="32-byte"):
        export_token_key(tmp_path)


# --- CSV and Parquet -----------------------------------------------------------------------------


def test_csv_cells() -> None:
    entries = anyio.run(_memory_journal, CARDS, TAPS[:1])
    out = io.StringIO(newline="")
    assert write_csv(_rows(entries), out) == 1
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(row) == list(COLUMNS)
    assert row["event_timestamp"] == "2026-03-04T11:00:00.000Z"  # noon in Berlin (CET)
    assert row["service_date"] == "2026-03-04"
    assert (row["amount"], row["balance"], row["fare_capped"], row["vehicle_id"]) == (
        "250", "4750", "", ""
    )


def test_parquet_round_trip_with_explicit_types(tmp_path: Path) -> None:
    entries = anyio.run(_memory_journal, CARDS, TAPS)
    rows = _rows(entries)
    path = tmp_path / "taps.parquet"
    assert write_parquet(rows, path, batch_rows=4, metadata={"citycard.currency": "EUR"}) == 6
    f = pq.ParquetFile(path)
    assert f.metadata.num_row_groups == 2  # 4 + 2: written in batches
    table = f.read()
    s = table.schema
    assert s.names == list(COLUMNS)
    assert s.field("event_timestamp").type == pa.timestamp("ms", tz="UTC")
    assert s.field("service_date").type == pa.date32()
    for name in ("amount", "balance", "num_riders", "trip_stop_sequence"):
        assert s.field(name).type == pa.int64(), name
    assert s.field("fare_capped").type == pa.bool_()
    for name in ("transaction_id", "token_id", "device_id", "stop_id", "citycard_route_id"):
        assert s.field(name).type == pa.string(), name
    assert not s.field("transaction_id").nullable and s.field("stop_id").nullable
    assert s.metadata[b"citycard.currency"] == b"EUR"
    got = table.to_pylist()
    assert [r["transaction_id"] for r in got] == [r.transaction_id for r in rows]
    first = got[0]
    assert first["event_timestamp"] == datetime.fromtimestamp(NOON / 1000, ZoneInfo("UTC"))
    assert first["service_date"] == DAY and first["amount"] == 250 and first["fare_capped"] is None
    assert [r["amount"] for r in got] == [r.amount for r in rows]
    assert sum(r["amount"] for r in got) == sum(r.amount for r in rows)


def test_empty_day_is_a_valid_parquet_file(tmp_path: Path) -> None:
    assert write_parquet([], tmp_path / "none.parquet") == 0
    table = pq.read_table(tmp_path / "none.parquet")
    assert table.num_rows == 0 and table.schema.names == list(COLUMNS)


# --- the clearing CSV ----------------------------------------------------------------------------


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_clearing_csv_sums() -> None:
    taps = [*TAPS, ("card-0001", TaxiFare("taxi-17", "cityCabs", 1_234), NOON + 9, "taxi")]
    entries = anyio.run(_memory_journal, CARDS, taps)
    report = clearing_report(entries, day=DAY, timezone=ZONE)
    assert report.problems() == []
    out = io.StringIO(newline="")
    n = write_clearing_csv(report, out, "EUR")
    rows = _read_csv(out.getvalue())
    assert len(rows) == n and list(rows[0]) == list(CLEARING_COLUMNS)
    assert {r["day"] for r in rows} == {"2026-03-04"} and {r["currency"] for r in rows} == {"EUR"}
    payees = {r["payee"]: r for r in rows if r["row_type"] == "payee"}
    assert set(payees) == set(report.payees)
    (total,) = (r for r in rows if r["row_type"] == "total")
    assert sum(int(r["net_minor"]) for r in payees.values()) == int(total["net_minor"])
    assert int(total["net_minor"]) == report.net_paid
    assert sum(int(r["charged_minor"]) for r in payees.values()) == int(total["charged_minor"])
    assert int(total["charged_minor"]) == 250 + 200 + 450 + 1_234
    for name, p in payees.items():
        for kind in ("product", "terminal"):
            parts = [r for r in rows if r["row_type"] == kind and r["payee"] == name]
            assert sum(int(r["net_minor"]) for r in parts) == int(p["net_minor"])
            assert all(r["charged"] == "" and r["problem"] == "" for r in parts)
    assert payees["bakery"]["net"] == "4.50" and payees["city"]["net"] == "-20.00"
    assert payees["city"]["credited_minor"] == "2000" and payees["city"]["credited"] == "20.00"
    taxi = [r for r in rows if r["row_type"] == "terminal" and r["payee"] == "cityCabs"]
    assert [(r["terminal"], r["net"]) for r in taxi] == [("taxi-17", "12.34")]
    assert all(r["problem"] == "" for r in rows)
    # A zero-digit currency formats without a decimal point.
    jpy = _read_csv(_clearing_text(report, "JPY"))
    assert {r["payee"]: r["net"] for r in jpy if r["row_type"] == "payee"}["bakery"] == "450"


def _clearing_text(report: ClearingReport, currency: str) -> str:
    out = io.StringIO(newline="")
    write_clearing_csv(report, out, currency)
    return out.getvalue()


def test_clearing_csv_marks_problems() -> None:
    bad = {"op": "commit", "card": "c", "result": "approved", "amount": "99", "time": str(NOON),
           "operator": "shop", "terminal": "t",
           "events": json.dumps([{"type": "retail_payment", "amount": 100, "operator": "shop",
                                  "terminal_id": "t", "time_ms": NOON}])}
    entries = [*anyio.run(_memory_journal, CARDS, TAPS[:1]), ("9-0@00", bad)]
    report = clearing_report(entries, day=DAY, timezone=ZONE)
    assert report.problems()
    rows = _read_csv(_clearing_text(report, "EUR"))
    (rejected,) = (r for r in rows if r["row_type"] == "rejected")
    assert rejected["entry_id"] == "9-0@00" and "sum" in rejected["problem"]
    (total,) = (r for r in rows if r["row_type"] == "total")
    assert "1 rejected" in total["problem"]
    assert int(total["net_minor"]) == 250  # the good entry is still counted


def test_paged_reports_merge_to_the_whole() -> None:
    entries = anyio.run(_memory_journal, CARDS, TAPS)
    whole = clearing_report(entries, day=DAY, timezone=ZONE)
    merged = ClearingReport(DAY.isoformat(), ZONE)
    for entry in entries:
        merge_into(merged, clearing_report([entry], day=DAY, timezone=ZONE))
    assert merged.to_dict() == whole.to_dict()


# --- the journal day reader, on a real Redis -----------------------------------------------------

PAST_DAY = date(2025, 6, 1)


def _xadd(client: redis.Redis, ms: int, seq: int, shard: int, fields: dict[str, str]) -> str:
    client.xadd(journal_key(shard), fields, id=f"{ms}-{seq}")  # type: ignore[arg-type]
    return journal_id(ms, seq, shard)


async def _read_all_window(url: str, start: int, end: int, page: int) -> list[str]:
    async with RedisStore.connect(url) as store:
        return [eid async for eid, _ in read_window(store, start, end, page=page)]


async def _read_after(url: str, after: str | None) -> list[str]:
    async with RedisStore.connect(url) as store:
        return [eid for eid, _ in await store.read_journal(count=100, after=after)]


@pytest.mark.parametrize("page", [1, 3, JOURNAL_READ_MAX])
def test_cursor_includes_every_entry_of_the_first_ms(redis_url: str, page: int) -> None:
    start, end = day_bounds(PAST_DAY, ZONE)
    client = redis.Redis.from_url(redis_url)
    before = [
        _xadd(client, start - 2, 0, 0, _at_time(start - 2)),
        _xadd(client, start - 1, 0, NUM_SHARDS - 1, _at_time(start - 1)),
        _xadd(client, start - 1, 1, 0, _at_time(start - 1)),
    ]
    first_ms = [
        _xadd(client, start, 0, 0, _at_time(start)),  # the very first possible entry
        _xadd(client, start, 1, 0, _at_time(start)),
        _xadd(client, start, 0, 5, _at_time(start)),
        _xadd(client, start, 0, NUM_SHARDS - 1, _at_time(start)),
    ]
    later = [
        _xadd(client, start + 1, 0, 3, _at_time(start + 1)),
        _xadd(client, end - 1, 0, 7, _at_time(end - 1)),
    ]
    after_end = [
        _xadd(client, end, 0, 0, _at_time(end)),
        _xadd(client, end + 9, 0, 2, _at_time(end)),
    ]
    client.close()

    assert cursor_before(start) == journal_id(start - 1, 0, NUM_SHARDS - 1)
    got = anyio.run(_read_after, redis_url, cursor_before(start))
    assert set(first_ms) <= set(got) and got[0] == before[2]  # (start-1, seq 1) sorts after it
    assert before[0] not in got and before[1] not in got
    # The tempting cursor of the day's own first id would skip exactly that entry.
    assert first_ms[0] not in anyio.run(_read_after, redis_url, journal_id(start, 0, 0))

    window = anyio.run(_read_all_window, redis_url, start, end, page)
    assert window == sorted(first_ms + later, key=parse_journal_id)
    assert not set(window) & set(before + after_end)


def test_day_reader_covers_clock_margins(redis_url: str) -> None:
    """The day is a day of the decision `time`; the ids (Redis's append time) may lie a little
    outside it on either side."""
    start, end = day_bounds(PAST_DAY, ZONE)
    client = redis.Redis.from_url(redis_url)
    early = _xadd(client, start - 3_000, 0, 1, _at_time(start + 10))  # Redis clock behind
    prev_day = _xadd(client, start + 500, 0, 1, _at_time(start - 200))  # decided before midnight
    late = _xadd(client, end + 1_500, 0, 1, _at_time(end - 100))  # appended after midnight
    next_day = _xadd(client, end + 2_000, 0, 1, _at_time(end + 1))
    far = _xadd(client, end + 3_600_000, 0, 1, _at_time(end - 1))  # past the margin: not read
    client.close()

    async def export() -> tuple[list[str], list[str]]:
        async with RedisStore.connect(redis_url) as store:
            read = [eid async for eid, _ in read_day(store, PAST_DAY, ZONE, page=2)]
            rows: list[TapRow] = []

            class Collect:
                rows = 0

                def write(self, batch: Iterable[TapRow]) -> None:
                    rows.extend(batch)

                def close(self) -> None:
                    pass

            await export_day(
                store, Collect(), day=PAST_DAY, timezone=ZONE, key=KEY, currency="EUR", page=2
            )
            return read, [r.transaction_id for r in rows]

    read, exported = anyio.run(export)
    assert read == [early, prev_day, late, next_day] and far not in read
    assert exported == [early, late]


# --- the commands, end to end --------------------------------------------------------------------


def _now_day_times(n: int) -> tuple[date, list[int]]:
    """`n` times a few ms apart from now (so that Redis's ids land next to them), one local
    day."""
    zone = ZoneInfo(ZONE)
    base = int(time.time() * 1000) - 2_000
    if local_day(base, zone) != local_day(base + n, zone):
        base -= n + 1
    return local_day(base, zone), [base + i for i in range(n)]


async def _drive_redis(url: str, cards: dict[str, CardState], taps: Sequence[Tap]) -> None:
    async with RedisStore.connect(url) as store:
        await _drive(store, cards, taps)


def test_cli_export_and_report_end_to_end(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day, t = _now_day_times(len(TAPS))
    taps = [(card, command, t[i], kind) for i, (card, command, _, kind) in enumerate(TAPS)]
    anyio.run(_drive_redis, redis_url, CARDS, taps)
    common = ["--date", day.isoformat(), "--timezone", ZONE, "--redis-url", redis_url]

    out_csv = tmp_path / "taps.csv"
    data = tmp_path / "data"
    assert main(["export", "taps", *common, "--format", "csv", "--out", str(out_csv),
                 "--data-dir", str(data)]) == 0
    key_path = data / "keys" / "export.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = key_path.read_bytes()
    rows = _read_csv(out_csv.read_text())
    assert len(rows) == len(TAPS)
    assert {r["token_id"] for r in rows} == {card_token(key, c) for c in CARDS}
    assert {r["service_date"] for r in rows} == {day.isoformat()}
    assert sorted(r["citycard_result"] for r in rows).count("declined") == 1
    assert next(r for r in rows if r["device_id"] == "bus-7")["citycard_route_id"] == "R-100"
    raw = out_csv.read_bytes()
    assert not any(c.encode() in raw for c in CARDS)
    assert "wrote 6 taps" in capsys.readouterr().err

    out_pq = tmp_path / "taps.parquet"
    assert main(["export", "taps", *common, "--format", "parquet", "--out", str(out_pq),
                 "--data-dir", str(data)]) == 0
    table = pq.read_table(out_pq)
    assert table.num_rows == len(TAPS)
    assert table.column("transaction_id").to_pylist() == [r["transaction_id"] for r in rows]
    assert table.column("token_id").to_pylist() == [r["token_id"] for r in rows]
    assert table.schema.field("event_timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.metadata[b"citycard.service_date"] == day.isoformat().encode()

    out_clearing = tmp_path / "clearing.csv"
    assert main(["report", "clearing", *common, "--out", str(out_clearing)]) == 0
    report_rows = _read_csv(out_clearing.read_text())
    (total,) = (r for r in report_rows if r["row_type"] == "total")
    assert int(total["charged_minor"]) == 250 + 200 + 450
    assert not [r for r in report_rows if r["problem"]]
    # The same as settlement's report over the whole journal (which counts every entry read).
    async def whole() -> ClearingReport:
        from ops.settlement import daily_report

        async with RedisStore.connect(redis_url) as store:
            return await daily_report(store, day, ZONE)

    expected, got = anyio.run(whole).to_dict(), _day_clearing(redis_url, day).to_dict()
    del expected["entries"], got["entries"]
    assert got == expected
    # Another day: empty files, still exit 0.
    other = ["--date", "2001-01-01", "--timezone", ZONE, "--redis-url", redis_url]
    empty = tmp_path / "empty.csv"
    assert main(["export", "taps", *other, "--format", "csv", "--out", str(empty),
                 "--data-dir", str(data)]) == 0
    assert empty.read_text().strip() == ",".join(COLUMNS)


def _day_clearing(url: str, day: date) -> ClearingReport:
    async def run() -> ClearingReport:
        async with RedisStore.connect(url) as store:
            return await day_clearing(store, day, ZONE, page=2)

    return anyio.run(run)


def test_cli_report_with_a_rejected_entry_exits_nonzero(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day, (t0, t1) = _now_day_times(2)
    anyio.run(_drive_redis, redis_url, CARDS, [(*TAPS[0][:2], t0, "gate")])
    events = [{"type": "retail_payment", "amount": 100, "operator": "shop", "terminal_id": "t",
               "time_ms": t1, "product": "retail:x"}]

    async def write_bad() -> None:
        async with RedisStore.connect(redis_url) as store:
            result = await store.commit(CardWrite(
                card="card-0009", expected_version=0, new_state=None, terminal_id="t",
                tap_id="bad-1", tap_record=b"h x", seq=1, tap_hash="h",
                journal={"time": t1, "operator": "shop", "result": "approved", "amount": 99,
                         "balance": 0, "product": "retail:x", "reason": "ok",
                         "events": json.dumps(events)},
            ))
            assert result.status == "ok"

    anyio.run(write_bad)
    out = tmp_path / "clearing.csv"
    rc = main(["report", "clearing", "--date", day.isoformat(), "--timezone", ZONE,
               "--redis-url", redis_url, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "must not be paid out" in err and "rejected entry" in err
    rows = _read_csv(out.read_text())  # still written, problem rows marked
    (rejected,) = (r for r in rows if r["row_type"] == "rejected")
    assert rejected["problem"] and rejected["entry_id"].endswith(f"@{shard_of('card-0009'):02d}")
    assert [r["payee"] for r in rows if r["row_type"] == "payee"] == ["metro"]
    # The tap export has the entry (its money fields are readable), so it exits 0.
    assert main(["export", "taps", "--date", day.isoformat(), "--timezone", ZONE,
                 "--redis-url", redis_url, "--format", "csv", "--out", str(tmp_path / "t.csv"),
                 "--data-dir", str(tmp_path)]) == 0


def test_cli_needs_a_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["report", "clearing", "--date", "2026-03-04"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["export", "taps", "--date", "2026-03-04", "--format", "xml", "--redis-url", "r"])
    with pytest.raises(SystemExit):  # QQQ: no ISO 4217 currency has that code
        main(["report", "clearing", "--date", "2026-03-04", "--currency", "QQQ",
              "--redis-url", "r"])


def test_cli_unreachable_store_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.csv"
    rc = main(["export", "taps", "--date", "2026-03-04", "--format", "csv", "--out", str(out),
               "--redis-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path)])
    assert rc == 2 and "could not read the journal" in capsys.readouterr().err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
