"""`citycard export taps` and `citycard report clearing`: one local day of the journal as files
for operators (docs/reports.md).

- `export taps --date D --format csv|parquet`: the day's taps as the TIDES `fare_transactions`
  table (`ops.reports.tides`), card ids replaced by keyed tokens.
- `report clearing --date D`: the day's clearing report per operator and merchant as CSV
  (`ops.reports.clearing`).

A file is written to a temporary name beside `--out` and renamed when complete, so a failed run
never leaves a partial file under the real name. Exit status: 0 done; 1 written, but the day
has problems (rejected journal entries, sums that do not add up, taps that could not be
exported: stderr says which, the rows are marked); 2 nothing written (the store could not be
read, bad arguments). `add_export_parser` hooks both into ops/cli.py's parser.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config import default_data_dir

#: Bytes of the export token key.
EXPORT_KEY_BYTES = 32


def export_token_key(data_dir: Path) -> bytes:
    """The key of the card tokens in exports: `data_dir/keys/export.key`, 32 random bytes, made
    (mode 0600) on first use. The only place export keys are handled: a later change replaces it
    with the gateway's tokenisation key. Safe against concurrent creators (the first one wins)."""
    path = Path(data_dir) / "keys" / "export.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, os.urandom(EXPORT_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made the key meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != EXPORT_KEY_BYTES:
        raise SystemExit(f"{path}: expected a {EXPORT_KEY_BYTES}-byte key, found {len(key)} bytes")
    return key


@contextlib.contextmanager
def _output(out: str, *, binary: bool) -> Iterator[IO[str] | IO[bytes]]:
    """`out` opened for writing through a temporary file renamed into place on success; "-" is
    stdout (text only)."""
    if out == "-":
        if binary:
            raise SystemExit("Parquet cannot go to stdout: give --out FILE")
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(out)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    f: IO[str] | IO[bytes] = (
        open(tmp, "wb") if binary else open(tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
    )
    try:
        with f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown IANA time zone: {text!r}") from None
    return text


def _currency(text: str) -> str:
    from ops.reports.clearing import currency_digits

    try:
        currency_digits(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--date", type=_day, required=True, help="the local day, YYYY-MM-DD")
    p.add_argument(
        "--timezone", type=_zone, default="Europe/Berlin",
        help="IANA zone the day is local to (default Europe/Berlin)",
    )
    p.add_argument("--currency", type=_currency, default="EUR", help="ISO 4217 (default EUR)")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        required=os.environ.get("REDIS_URL") is None,
        help="the gateway's Redis (default $REDIS_URL)",
    )


def add_export_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register `export taps` and `report clearing` on `subparsers`."""
    p = subparsers.add_parser("export", help="export journal data (TIDES fare_transactions)")
    sub = p.add_subparsers(dest="export_command", required=True)
    c = sub.add_parser(
        "taps",
        help="a day's taps as the TIDES fare_transactions table, card ids as keyed tokens",
        description="One row per decided tap of the local day (docs/reports.md).",
    )
    _common(c)
    c.add_argument("--format", choices=("csv", "parquet"), required=True)
    c.add_argument(
        "--out", default=None,
        help="output file (default fare_transactions-DATE.csv|parquet; '-' stdout, CSV only)",
    )
    c.add_argument(
        "--data-dir", type=Path, default=default_data_dir(),
        help="holds keys/export.key, the token key (made on first use)",
    )
    c.set_defaults(func=cmd_export_taps)

    p = subparsers.add_parser("report", help="operator reports (daily clearing)")
    sub = p.add_subparsers(dest="report_command", required=True)
    c = sub.add_parser(
        "clearing",
        help="a day's clearing per operator / merchant as CSV",
        description="Who is owed what on the local day, per payee, product and terminal "
        "(docs/reports.md). Exit 1 when the report has problems (rows marked).",
    )
    _common(c)
    c.add_argument(
        "--out", default=None, help="output file (default clearing-DATE.csv; '-' stdout)"
    )
    c.set_defaults(func=cmd_report_clearing)
    c = sub.add_parser(
        "offline",
        help="a day's offline taps per operator: charged, and uncollected (first-ride risk)",
        description="From the journal: taps terminals decided offline and uploaded, the amount "
        "charged for them, and what the card could not pay (docs/operations.md).",
    )
    _common(c)
    c.add_argument("--out", default="-", help="output file ('-' stdout, the default)")
    c.set_defaults(func=cmd_report_offline)


def cmd_report_offline(args: argparse.Namespace) -> int:
    import anyio

    from actors.card_store import StoreError
    from gateway.offline import OFFLINE_MAX_TAP_AMOUNT
    from gateway.store.redis_store import RedisStore
    from ops.reports.offline import OfflineReport, day_offline, write_offline_csv

    async def run() -> OfflineReport:
        async with RedisStore.connect(args.redis_url) as store:
            return await day_offline(store, args.date, args.timezone, OFFLINE_MAX_TAP_AMOUNT)

    try:
        report = anyio.run(run)
    except (StoreError, OSError) as exc:
        return _store_error(exc)
    with _output(args.out, binary=False) as f:
        write_offline_csv(report, f)  # type: ignore[arg-type]
    t = report.total()
    print(f"{t.taps} offline taps on {args.date} ({args.timezone}): {t.approved_offline} "
          f"approved offline, {t.charged} charged, {t.uncollected} uncollected in "
          f"{t.uncollected_taps} taps", file=sys.stderr)
    return 0


def _store_error(exc: Exception) -> int:
    print(f"error: could not read the journal: {exc}", file=sys.stderr)
    return 2


def cmd_export_taps(args: argparse.Namespace) -> int:
    import anyio

    from actors.card_store import StoreError
    from gateway.store.redis_store import RedisStore
    from ops.reports.tides import CsvTapWriter, ExportStats, ParquetTapWriter, TapWriter, export_day

    day: date = args.date
    out = args.out or f"fare_transactions-{day.isoformat()}.{args.format}"
    key = export_token_key(args.data_dir)
    stats = ExportStats()

    async def run(f: IO[str] | IO[bytes]) -> None:
        writer: TapWriter
        if args.format == "parquet":
            meta = {
                "tides.table": "fare_transactions",
                "citycard.service_date": day.isoformat(),
                "citycard.timezone": args.timezone,
                "citycard.currency": args.currency,
                "citycard.money": "integer minor units",
            }
            writer = ParquetTapWriter(f, metadata=meta)  # type: ignore[arg-type]
        else:
            writer = CsvTapWriter(f)  # type: ignore[arg-type]
        try:
            async with RedisStore.connect(args.redis_url) as store:
                await export_day(
                    store, writer, day=day, timezone=args.timezone, key=key,
                    currency=args.currency, stats=stats,
                )
        finally:
            writer.close()

    try:
        with _output(out, binary=args.format == "parquet") as f:
            anyio.run(run, f)
    except (StoreError, OSError) as exc:
        return _store_error(exc)
    where = "stdout" if out == "-" else out
    print(f"wrote {stats.rows} taps of {day} ({args.timezone}) to {where}", file=sys.stderr)
    if stats.problem_count:
        print(
            f"error: {stats.problem_count} journal entries of {day} could not be exported "
            "(not in the file):",
            file=sys.stderr,
        )
        for entry_id, why in stats.problems:
            print(f"  {entry_id}: {why}", file=sys.stderr)
        if stats.problem_count > len(stats.problems):
            print(f"  ... and {stats.problem_count - len(stats.problems)} more", file=sys.stderr)
        return 1
    return 0


def cmd_report_clearing(args: argparse.Namespace) -> int:
    import anyio

    from actors.card_store import StoreError
    from gateway.store.redis_store import RedisStore
    from ops.reports.clearing import day_clearing, write_clearing_csv
    from ops.settlement import ClearingReport

    day: date = args.date
    out = args.out or f"clearing-{day.isoformat()}.csv"

    async def run() -> ClearingReport:
        async with RedisStore.connect(args.redis_url) as store:
            return await day_clearing(store, day, args.timezone)

    try:
        report = anyio.run(run)
    except (StoreError, OSError) as exc:
        return _store_error(exc)
    with _output(out, binary=False) as f:
        rows = write_clearing_csv(report, f, args.currency)  # type: ignore[arg-type]
    where = "stdout" if out == "-" else out
    print(
        f"wrote {rows} rows ({len(report.payees)} payees, {report.entries} journal entries) "
        f"of {day} ({args.timezone}) to {where}",
        file=sys.stderr,
    )
    problems = report.problems()
    if problems:
        print(
            f"error: the clearing report of {day} has {len(problems)} problems and must not be "
            "paid out as is (rows marked in the `problem` column):",
            file=sys.stderr,
        )
        for line in problems[:100]:
            print(f"  {line}", file=sys.stderr)
        if len(problems) > 100:
            print(f"  ... and {len(problems) - 100} more", file=sys.stderr)
        return 1
    return 0
