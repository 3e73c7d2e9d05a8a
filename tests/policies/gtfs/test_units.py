"""The small pieces: exact money conversion, the CSV layer, local time and pass expiry."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.gtfs import FeedError, format_minor
from policies.gtfs.local_time import local_day_and_time, pass_end_ms
from policies.gtfs.model import Duration
from policies.gtfs.money import to_minor_units
from policies.gtfs.table import read_table

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("text", "digits", "expected"),
    [
        ("1.25", 2, 125),
        ("0.29", 2, 29),  # 0.29 * 100 is 28.999999999999996 as a float
        ("1.5", 2, 150),
        ("1.250", 2, 125),
        ("3", 2, 300),
        ("-0.50", 2, -50),
        ("200", 0, 200),
        ("1.234", 3, 1234),
        ("0.00", 2, 0),
        ("1.255", 2, None),
        ("200.5", 0, None),
        ("1,25", 2, None),
        ("1e2", 2, None),
        (".5", 2, None),
        ("", 2, None),
        (" 1.25", 2, None),
    ],
)
def test_to_minor_units(text: str, digits: int, expected: int | None) -> None:
    assert to_minor_units(text, digits) == expected


@given(st.integers(-(10**12), 10**12), st.sampled_from([0, 2, 3]))
def test_minor_units_round_trip(amount: int, digits: int) -> None:
    assert to_minor_units(format_minor(amount, digits), digits) == amount


def test_table_tolerates_bom_crlf_padding_and_quotes() -> None:
    text = '\ufeffa, b ,c\r\n1, 2 ,"x\r\ny"\r\n\r\n"3,4",,\r\n'
    t = read_table("f.txt", text)
    assert t.columns == ("a", "b", "c")
    assert [dict(r.values) for r in t.rows] == [
        {"a": "1", "b": "2", "c": "x\r\ny"},
        {"a": "3,4", "b": "", "c": ""},
    ]
    assert [r.line for r in t.rows] == [3, 5]  # the line a record ends on


def test_table_short_rows_are_padded_and_classic_mac_line_ends_read() -> None:
    t = read_table("f.txt", "a,b,c\r1\r")
    assert dict(t.rows[0].values) == {"a": "1"} and t.rows[0].get("c") == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f.txt: the file is empty"),
        ("a,a\n1,2\n", "f.txt line 1, a: column appears twice"),
        ('a,b\n"1,2\n', "f.txt line 2: not valid CSV"),
    ],
)
def test_table_refusals(text: str, message: str) -> None:
    with pytest.raises(FeedError) as exc:
        read_table("f.txt", text)
    assert str(exc.value).startswith(message)


def _ms(local: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=PARIS).timestamp()) * 1000


def test_local_day_and_time() -> None:
    day, ms_of_day = local_day_and_time(PARIS, _ms("2025-03-30T03:30:15") + 250)
    assert datetime.fromordinal(day).date().isoformat() == "2025-03-30"
    assert ms_of_day == (3 * 3600 + 30 * 60 + 15) * 1000 + 250


@pytest.mark.parametrize(
    ("start", "duration", "end"),
    [
        # rolling day across the spring DST change: 10:00 to 10:00 wall clock (23 hours)
        ("2025-03-29T10:00", Duration(0, 1, 3, 1), "2025-03-30T10:00"),
        ("2025-03-29T10:00", Duration(0, 90, 1, 1), "2025-03-29T11:30"),
        ("2025-03-29T10:00", Duration(0, 2, 4, 1), "2025-04-12T10:00"),
        ("2025-01-31T10:00", Duration(0, 1, 5, 1), "2025-02-28T10:00"),  # month end clamped
        ("2025-03-29T10:00", Duration(0, 1, 6, 1), "2026-03-29T10:00"),
        # calendar: to the end of the current unit (amount - 1 more)
        ("2025-03-29T10:00", Duration(0, 1, 3, 2), "2025-03-30T00:00"),
        ("2025-03-29T10:20", Duration(0, 1, 2, 2), "2025-03-29T11:00"),
        ("2025-03-26T10:00", Duration(0, 1, 4, 2), "2025-03-31T00:00"),  # Wed -> next Monday
        ("2025-03-29T10:00", Duration(0, 1, 5, 2), "2025-04-01T00:00"),
        ("2025-03-29T10:00", Duration(0, 1, 6, 2), "2026-01-01T00:00"),
    ],
)
def test_pass_end(start: str, duration: Duration, end: str) -> None:
    assert pass_end_ms(PARIS, _ms(start), duration) == _ms(end)
