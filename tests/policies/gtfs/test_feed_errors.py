"""Invalid feeds are refused with the file, line and field named: one test per kind of mistake.

Each case takes the real C-TRAN feed, breaks one line of one file, and checks the message a
tariff writer would read (lines are physical lines, the header is line 1).
"""

from __future__ import annotations

import pytest

from policies.gtfs import FeedError, parse_feed
from tests.policies.gtfs.helpers import CTRAN, MDOT, feed_files, replace_line

HC_LOCAL = "HC_LOCAL_SINGLE_RIDE,Honored Citizen Local 2 1/2 Hours,HONORED_CITIZEN,0,{},USD"


def _refused(files: dict[str, str]) -> FeedError:
    with pytest.raises(FeedError) as exc:
        parse_feed(files, name="broken")
    return exc.value


def _broken(file: str, line: int, new: str, *, feed: str = CTRAN) -> FeedError:
    files = feed_files(feed)
    files[file] = replace_line(files[file], line, new)
    return _refused(files)


@pytest.mark.parametrize(
    ("file", "line", "new", "expected"),
    [
        # bad amounts
        (
            "fare_products.txt",
            7,
            HC_LOCAL.format('"1,25"'),
            'fare_products.txt line 7, amount: "1,25" is not a decimal amount',
        ),
        (
            "fare_products.txt",
            7,
            HC_LOCAL.format("0.605"),
            'fare_products.txt line 7, amount: "0.605" has more decimal places than USD allows',
        ),
        (
            "fare_products.txt",
            7,
            HC_LOCAL.format("1e2"),
            'fare_products.txt line 7, amount: "1e2" is not a decimal amount',
        ),
        (
            "fare_products.txt",
            7,
            HC_LOCAL.format(""),
            "fare_products.txt line 7, amount: a value is required",
        ),
        (
            "fare_products.txt",
            2,
            "ADULT_LOCAL_SINGLE_RIDE,Adult Local,ADULT,0,1.25,XTS",
            'fare_products.txt line 2, currency: "XTS" is not a currency this engine knows',
        ),
        (
            "fare_products.txt",
            7,
            "HC_LOCAL_SINGLE_RIDE,Honored Citizen Local 2 1/2 Hours,HONORED_CITIZEN,0,0.60,EUR",
            'fare_products.txt line 7, currency: "EUR" differs from "USD"',
        ),
    ],
)
def test_bad_amount(file: str, line: int, new: str, expected: str) -> None:
    assert expected in str(_broken(file, line, new))


@pytest.mark.parametrize(
    ("file", "line", "new", "expected"),
    [
        (
            "fare_leg_rules.txt",
            3,
            "LOCAL,LOCAL,NOPE,REGULAR,",
            'fare_leg_rules.txt line 3, fare_product_id: "NOPE" is not a fare_product_id of '
            "fare_products.txt",
        ),
        (
            "fare_leg_rules.txt",
            5,
            "REGIONAL,FERRY,ADULT_REGIONAL_SINGLE_RIDE,REGULAR,",
            'fare_leg_rules.txt line 5, network_id: "FERRY" is not a network_id',
        ),
        (
            "fare_leg_rules.txt",
            11,
            "LOCAL,LOCAL,ADULT_LOCAL_SINGLE_RIDE,LUNCH,",
            'fare_leg_rules.txt line 11, from_timeframe_group_id: "LUNCH" is not a '
            "timeframe_group_id of timeframes.txt",
        ),
        (
            "fare_products.txt",
            5,
            "ADULT_LOCAL_SINGLE_RIDE,Adult Local 2 1/2 Hours,SENIOR,3,1.25,USD",
            'fare_products.txt line 5, rider_category_id: "SENIOR" is not a rider_category_id',
        ),
        (
            "fare_products.txt",
            5,
            "ADULT_LOCAL_SINGLE_RIDE,Adult Local 2 1/2 Hours,ADULT,7,1.25,USD",
            'fare_products.txt line 5, fare_media_id: "7" is not a fare_media_id',
        ),
        (
            "timeframes.txt",
            6,
            "MIDDAY,09:00:00,14:59:00,9-HOLIDAY",
            'timeframes.txt line 6, service_id: "9-HOLIDAY" is not a service_id',
        ),
        (
            "fare_transfer_rules.txt",
            10,
            "LOCAL,EXPRESS,NOPE,,9000,1,0",
            'fare_transfer_rules.txt line 10, fare_product_id: "NOPE" is not a fare_product_id',
        ),
    ],
)
def test_unknown_reference(file: str, line: int, new: str, expected: str) -> None:
    assert expected in str(_broken(file, line, new))


@pytest.mark.parametrize(
    ("file", "header", "expected"),
    [
        (
            "fare_products.txt",
            "fare_product_id,fare_product_name,rider_category_id,fare_media_id,amt,currency",
            "fare_products.txt line 1, amount: required column is missing",
        ),
        (
            "fare_leg_rules.txt",
            "leg_group_id,network_id,product,from_timeframe_group_id,to_timeframe_group_id",
            "fare_leg_rules.txt line 1, fare_product_id: required column is missing",
        ),
        (
            "timeframes.txt",
            "timeframe_group_id,start_time,end_time,service",
            "timeframes.txt line 1, service_id: required column is missing",
        ),
        (
            "agency.txt",
            "agency_name,agency_url,agency_tz,agency_lang,agency_phone,agency_fare_url,agency_id",
            "agency.txt line 1, agency_timezone: required column is missing",
        ),
        (
            "fare_media.txt",
            "fare_media_id,fare_media_name,media_type",
            "fare_media.txt line 1, fare_media_type: required column is missing",
        ),
    ],
)
def test_missing_required_column(file: str, header: str, expected: str) -> None:
    assert str(_broken(file, 1, header)) == expected


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (
            "MIDDAY,9am,14:59:00,1-WKDY",
            'timeframes.txt line 6, start_time: "9am" is not a time (H:MM:SS)',
        ),
        (
            "MIDDAY,09:60:00,14:59:00,1-WKDY",
            'timeframes.txt line 6, start_time: "09:60:00" is not a time (H:MM:SS)',
        ),
        (
            "MIDDAY,09:00:00,08:00:00,1-WKDY",
            'timeframes.txt line 6, end_time: "08:00:00" is not after start_time',
        ),
        (
            "MIDDAY,24:00:00,25:00:00,1-WKDY",
            'timeframes.txt line 6, start_time: "24:00:00" is not before 24:00:00',
        ),
        (
            "MIDDAY,09:00:00,49:00:00,1-WKDY",
            'timeframes.txt line 6, end_time: "49:00:00" is beyond 48:00:00',
        ),
        (
            "MIDDAY,09:00:00,,1-WKDY",
            "timeframes.txt line 6, end_time: start_time and end_time go together",
        ),
    ],
)
def test_bad_time(new: str, expected: str) -> None:
    assert expected in str(_broken("timeframes.txt", 6, new))


@pytest.mark.parametrize(
    ("file", "line", "new", "expected"),
    [
        (
            "calendar_dates.txt",
            17,
            "1-WKDY,20251306,1",
            'calendar_dates.txt line 17, date: "20251306" is not a valid calendar date',
        ),
        (
            "calendar_dates.txt",
            17,
            "1-WKDY,2025-10-06,1",
            'calendar_dates.txt line 17, date: "2025-10-06" is not a date (YYYYMMDD)',
        ),
        (
            "calendar_dates.txt",
            17,
            "1-WKDY,20251006,3",
            'calendar_dates.txt line 17, exception_type: "3" is not one of 1, 2',
        ),
        (
            "fare_transfer_rules.txt",
            2,
            "LOCAL,LOCAL,,-1,9000,7,0",
            'fare_transfer_rules.txt line 2, duration_limit_type: "7" is not one of 0, 1, 2, 3',
        ),
        (
            "fare_transfer_rules.txt",
            2,
            "LOCAL,LOCAL,,-1,9000,,0",
            "fare_transfer_rules.txt line 2, duration_limit_type: required when duration_limit",
        ),
        (
            "fare_transfer_rules.txt",
            2,
            "LOCAL,LOCAL,,0,9000,1,0",
            'fare_transfer_rules.txt line 2, transfer_count: "0" is not -1 or a positive count',
        ),
        (
            "fare_transfer_rules.txt",
            2,
            "LOCAL,LOCAL,,-1,2.5h,1,0",
            'fare_transfer_rules.txt line 2, duration_limit: "2.5h" is not an integer',
        ),
        (
            "fare_transfer_rules.txt",
            2,
            "LOCAL,LOCAL,,-1,9000,1,",
            "fare_transfer_rules.txt line 2, fare_transfer_type: a value is required",
        ),
        (
            "fare_media.txt",
            3,
            "1,Ticket,9",
            'fare_media.txt line 3, fare_media_type: "9" is not one of 0, 1, 2, 3, 4',
        ),
        (
            "rider_categories.txt",
            3,
            "ADULT,Adult again,0,",
            'rider_categories.txt line 3, rider_category_id: "ADULT" appears twice',
        ),
        (
            "fare_products.txt",
            3,
            "ADULT_LOCAL_SINGLE_RIDE,Adult Local 2 1/2 Hours,ADULT,0,1.25,USD",
            'fare_products.txt line 3, fare_product_id: "ADULT_LOCAL_SINGLE_RIDE" for this '
            "rider category and fare medium already on line 2",
        ),
        (
            "agency.txt",
            2,
            "C-TRAN,http://www.C-TRAN.com,Pacific/Nowhere,en,,,C-TRAN",
            'agency.txt line 2, agency_timezone: "Pacific/Nowhere" is not an IANA timezone',
        ),
        (
            "fare_leg_rules.txt",
            4,
            "LOCAL,LOCAL,YOUTH_LOCAL_SINGLE_RIDE,REGULAR,,extra",
            "fare_leg_rules.txt line 4: 6 fields but the header has 5 columns",
        ),
    ],
)
def test_bad_value(file: str, line: int, new: str, expected: str) -> None:
    assert expected in str(_broken(file, line, new))


def test_bad_duration_on_a_pass() -> None:
    # MTA's 1-day pass (fare_products.txt line 2) with duration_unit 9.
    files = feed_files(MDOT)
    lines = files["fare_products.txt"].split("\n")
    lines[1] = lines[1].replace(",0,1,3,1,3,2,", ",0,1,9,1,3,2,")
    files["fare_products.txt"] = "\n".join(lines)
    assert 'fare_products.txt line 2, duration_unit: "9" is not one of' in str(_refused(files))


@pytest.mark.parametrize("missing", ["agency.txt", "fare_products.txt", "fare_leg_rules.txt"])
def test_missing_file(missing: str) -> None:
    files = feed_files(CTRAN)
    del files[missing]
    assert str(_refused(files)) == f"{missing}: the file is missing"


def test_error_carries_its_parts() -> None:
    err = _broken("fare_products.txt", 7, HC_LOCAL.format('"1,25"'))
    assert (err.file, err.line, err.field) == ("fare_products.txt", 7, "amount")
