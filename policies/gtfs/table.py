"""One GTFS file's text to rows that know their file and line, plus typed field readers.

This module owns the CSV layer of the loader: UTF-8 BOM and CRLF tolerance, header handling,
column-name aliases across spec eras (`from_timeframe_group_id` vs `from_timeframe_id`), and the
field parsers (int, enum, time, date, amount). Every parser failure is a `FeedError` naming the
file, the physical line and the column, so the loaders above never format error locations.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from policies.gtfs.errors import FeedError
from policies.gtfs.money import to_minor_units

_TIME = re.compile(r"([0-9]{1,3}):([0-5][0-9]):([0-5][0-9])")
_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_INT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class Row:
    """One record: its values by column name (stripped), and where it came from."""

    file: str
    line: int
    values: Mapping[str, str]

    def get(self, *names: str) -> str:
        """The first present column of `names` (aliases), "" when absent or empty."""
        for name in names:
            value = self.values.get(name)
            if value:
                return value
        return ""

    def error(self, field: str, problem: str) -> FeedError:
        return FeedError(self.file, self.line, field, problem)

    def require(self, name: str) -> str:
        value = self.values.get(name, "")
        if not value:
            raise self.error(name, "a value is required")
        return value

    def optional_int(self, name: str, *, minimum: int | None = None) -> int | None:
        text = self.values.get(name, "")
        if not text:
            return None
        if _INT.fullmatch(text) is None:
            raise self.error(name, f'"{text}" is not an integer')
        value = int(text)
        if minimum is not None and value < minimum:
            raise self.error(name, f'"{text}" is below the minimum {minimum}')
        return value

    def optional_enum(self, name: str, allowed: Iterable[int]) -> int | None:
        value = self.optional_int(name)
        if value is None:
            return None
        options = tuple(allowed)
        if value not in options:
            listed = ", ".join(str(o) for o in options)
            raise self.error(name, f'"{self.values[name]}" is not one of {listed}')
        return value

    def time_of_day(self, name: str, default: int) -> int:
        """H:MM:SS or HH:MM:SS to seconds after midnight (may pass 24:00:00; the caller checks)."""
        text = self.values.get(name, "")
        if not text:
            return default
        m = _TIME.fullmatch(text)
        if m is None:
            raise self.error(name, f'"{text}" is not a time (H:MM:SS)')
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))

    def date_ordinal(self, name: str) -> int:
        """YYYYMMDD to a proleptic Gregorian ordinal (what `date.toordinal()` returns)."""
        text = self.require(name)
        m = _DATE.fullmatch(text)
        if m is None:
            raise self.error(name, f'"{text}" is not a date (YYYYMMDD)')
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).toordinal()
        except ValueError:
            raise self.error(name, f'"{text}" is not a valid calendar date') from None

    def amount(self, name: str, digits: int, currency: str) -> int:
        text = self.require(name)
        value = to_minor_units(text, digits)
        if value is None:
            if to_minor_units(text, 99) is not None:
                raise self.error(name, f'"{text}" has more decimal places than {currency} allows')
            raise self.error(name, f'"{text}" is not a decimal amount')
        return value


@dataclass(frozen=True, slots=True)
class Table:
    """A parsed file: its header (stripped column names) and its non-empty records."""

    file: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]

    def has(self, *names: str) -> bool:
        return any(name in self.columns for name in names)

    def require_columns(self, *names: str) -> None:
        for name in names:
            if name not in self.columns:
                raise FeedError(self.file, 1, name, "required column is missing")

    def require_one_of(self, *aliases: str) -> None:
        if not self.has(*aliases):
            raise FeedError(self.file, 1, aliases[0], "required column is missing")


def read_table(file: str, text: str) -> Table:
    """Parse `text` as the GTFS file `file`. Tolerates a UTF-8 BOM, CRLF and padded values."""
    text = text.removeprefix("\ufeff")
    if "\n" not in text:
        text = text.replace("\r", "\n")  # classic Mac line ends
    # Split on "\n" only (str.splitlines would also split on U+2028 etc. inside a field) and
    # keep the terminator so the csv module sees real line ends and counts physical lines.
    lines = [line + "\n" for line in text.removesuffix("\n").split("\n")]
    reader = csv.reader(lines, strict=True)
    header: tuple[str, ...] | None = None
    rows: list[Row] = []
    try:
        for record in reader:
            if not record or all(not v.strip() for v in record):
                continue
            if header is None:
                header = tuple(v.strip().removeprefix("\ufeff") for v in record)
                seen: set[str] = set()
                for name in header:
                    if name in seen:
                        raise FeedError(file, reader.line_num, name, "column appears twice")
                    seen.add(name)
                continue
            if len(record) > len(header):
                raise FeedError(
                    file,
                    reader.line_num,
                    None,
                    f"{len(record)} fields but the header has {len(header)} columns",
                )
            values = {name: value.strip() for name, value in zip(header, record, strict=False)}
            rows.append(Row(file, reader.line_num, values))
    except csv.Error as exc:
        raise FeedError(file, reader.line_num, None, f"not valid CSV ({exc})") from None
    if header is None:
        raise FeedError(file, None, None, "the file is empty (no header line)")
    return Table(file, header, tuple(rows))
