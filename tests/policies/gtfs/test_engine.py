"""Spec semantics the two real feeds do not exercise, on a small made-up feed.

Areas (with a station's area applying to its platforms), the two meanings of an empty field
(without and with rule_priority), transfer types 1 and 2, transfer_count, the four
duration_limit_types, a timeframe running past 24:00:00, and a calendar-day pass.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from policies.gtfs import FareFeed, Leg, QuoteError, parse_feed, quote_journey

BASE = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nA,Mini,https://x,Europe/Paris\n",
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "ALL,1,1,1,1,1,1,1,20250101,20251231\n"
        "FRI,0,0,0,0,1,0,0,20250101,20251231\n"
    ),
    "routes.txt": "route_id,network_id\nR_BUS,BUS\nR_TRAM,TRAM\nR_NONE,\n",
    "stops.txt": ("stop_id,location_type,parent_station\nST,1,\nS1,0,ST\nS2,0,\nS3,0,\n"),
    "areas.txt": "area_id\nZONE1\nZONE2\n",
    "stop_areas.txt": "area_id,stop_id\nZONE1,ST\nZONE2,S2\n",
    "rider_categories.txt": "rider_category_id,rider_category_name,is_default_fare_category\n"
    "adult,Adult,1\nchild,Child,0\n",
    "fare_media.txt": "fare_media_id,fare_media_name,fare_media_type\ncard,Card,2\n",
    "fare_products.txt": (
        "fare_product_id,rider_category_id,amount,currency\n"
        "BUS,,2.00,EUR\nTRAM,,2.50,EUR\nZONE12,,3.10,EUR\nANY,,4.00,EUR\n"
        "XFER,,0.50,EUR\nBIG_XFER,,3.00,EUR\nSMALL_XFER,,1.00,EUR\nCHILD_BUS,child,1.00,EUR\n"
    ),
    "fare_leg_rules.txt": (
        "leg_group_id,network_id,from_area_id,to_area_id,fare_product_id\n"
        "G_BUS,BUS,,,BUS\nG_BUS,BUS,,,CHILD_BUS\nG_TRAM,TRAM,,,TRAM\n"
        "G_Z,TRAM,ZONE1,ZONE2,ZONE12\nG_ANY,,,,ANY\n"
    ),
}

MONDAY = "2025-06-02"
PARIS = ZoneInfo("Europe/Paris")


def mini(**files: str) -> FareFeed:
    return parse_feed({**BASE, **{f"{k}.txt": v for k, v in files.items()}}, name="mini")


def ms(local: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=PARIS).timestamp()) * 1000


def one(feed: FareFeed, route: str, frm: str, to: str, local: str = f"{MONDAY}T10:00") -> int:
    q = quote_journey(feed, [Leg(route, frm, to, ms(local))], rider_category=None, fare_media=None)
    return q.total


def test_areas_without_rule_priority_empty_means_the_others() -> None:
    f = mini()
    # S1 is in ZONE1 through its parent station ST; S2 in ZONE2: the exact area rule wins.
    assert one(f, "R_TRAM", "S1", "S2") == 310
    # Empty to_area means "areas no rule names": ZONE2 is named, so the plain TRAM rule does
    # not match a leg ending in ZONE2 unless it also starts in ZONE1. Nothing matches: refused.
    with pytest.raises(QuoteError) as exc:
        one(f, "R_TRAM", "S3", "S2")
    assert exc.value.code == "no_fare_rule"
    assert one(f, "R_TRAM", "S3", "S3") == 250
    # A route in no network matches only the rule with an empty network_id.
    assert one(f, "R_NONE", "S3", "S3") == 400
    # BUS and the child product: the cheapest offer for the category.
    q = quote_journey(
        f,
        [Leg("R_BUS", "S3", "S3", ms(f"{MONDAY}T10:00"))],
        rider_category="child",
        fare_media=None,
    )
    assert q.total == 100 and q.legs[0].fare_product_id == "CHILD_BUS"


def test_rule_priority_makes_empty_a_wildcard() -> None:
    f = mini(
        fare_leg_rules="leg_group_id,network_id,from_area_id,to_area_id,fare_product_id,rule_priority\n"
        "G_BUS,BUS,,,BUS,0\nG_TRAM,TRAM,,,TRAM,0\nG_Z,TRAM,ZONE1,ZONE2,ZONE12,1\nG_ANY,,,,ANY,0\n"
    )
    assert f.uses_rule_priority
    assert one(f, "R_TRAM", "S1", "S2") == 310  # priority 1 beats the rest
    assert one(f, "R_TRAM", "S3", "S2") == 250  # TRAM and ANY (both 0): the cheaper
    assert one(f, "R_BUS", "S1", "S2") == 200


def _transfer_feed(rule: str) -> FareFeed:
    header = (
        "from_leg_group_id,to_leg_group_id,fare_product_id,transfer_count,duration_limit,"
        "duration_limit_type,fare_transfer_type\n"
    )
    return mini(fare_transfer_rules=header + rule + "\n")


def _journey(feed: FareFeed, *legs: tuple[str, str, str | None]) -> list[int]:
    q = quote_journey(
        feed,
        [Leg(r, "S3", "S3", ms(a), None if b is None else ms(b)) for r, a, b in legs],
        rider_category=None,
        fare_media=None,
    )
    assert q.total == sum(lq.amount for lq in q.legs)
    return [lq.amount for lq in q.legs]


T1, T2 = f"{MONDAY}T10:00", f"{MONDAY}T10:30"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("G_BUS,G_TRAM,XFER,,3600,1,0", [200, 50]),  # A + AB
        ("G_BUS,G_TRAM,XFER,,3600,1,1", [200, 300]),  # A + AB + B: 50 + 250
        ("G_BUS,G_TRAM,BIG_XFER,,3600,1,2", [200, 100]),  # AB = 300 in total
        ("G_BUS,G_TRAM,SMALL_XFER,,3600,1,2", [200, 0]),  # AB = 100 < A: no refund
        ("G_BUS,G_TRAM,,,3600,1,0", [200, 0]),  # no product: free
        ("G_BUS,,,,3600,1,0", [200, 0]),  # empty to_leg_group_id: any group not named
        ("G_TRAM,G_BUS,,,3600,1,0", [200, 250]),  # wrong direction
        ("G_BUS,G_TRAM,,,1200,1,0", [200, 250]),  # 1800 s > 1200 s
    ],
)
def test_transfer_types(rule: str, expected: list[int]) -> None:
    assert _journey(_transfer_feed(rule), ("R_BUS", T1, None), ("R_TRAM", T2, None)) == expected


def test_transfer_count_limits_the_chain() -> None:
    f = _transfer_feed("G_BUS,G_BUS,,1,7200,1,0")
    legs = [("R_BUS", f"{MONDAY}T10:{m:02d}", None) for m in (0, 10, 20, 30)]
    # One transfer allowed: leg 2 free, leg 3 starts a new sub-journey, leg 4 is its transfer.
    assert _journey(f, *legs) == [200, 0, 200, 0]
    assert _journey(_transfer_feed("G_BUS,G_BUS,,-1,7200,1,0"), *legs) == [200, 0, 0, 0]


@pytest.mark.parametrize(
    ("limit_type", "within"),
    # leg 1 10:00-10:10, leg 2 10:50-11:05; limit 3120 s (52 min)
    [(0, False), (1, True), (2, True), (3, False)],  # 65, 50, 40, 55 minutes
)
def test_duration_limit_types(limit_type: int, within: bool) -> None:
    f = _transfer_feed(f"G_BUS,G_BUS,,-1,3120,{limit_type},0")
    amounts = _journey(
        f,
        ("R_BUS", f"{MONDAY}T10:00", f"{MONDAY}T10:10"),
        ("R_BUS", f"{MONDAY}T10:50", f"{MONDAY}T11:05"),
    )
    assert amounts == ([200, 0] if within else [200, 200])


def test_timeframe_past_midnight_covers_the_next_morning() -> None:
    f = mini(
        timeframes="timeframe_group_id,start_time,end_time,service_id\nNIGHT,22:00:00,26:00:00,FRI\n",
        fare_leg_rules="leg_group_id,network_id,from_timeframe_group_id,fare_product_id\n"
        "G_NIGHT,BUS,NIGHT,XFER\nG_BUS,BUS,,BUS\nG_ANY,,,ANY\n",
    )
    assert any("past 24:00:00" in n for n in f.notes)
    assert one(f, "R_BUS", "S3", "S3", "2025-06-06T23:00") == 50  # Friday night
    assert one(f, "R_BUS", "S3", "S3", "2025-06-07T01:30") == 50  # Saturday 01:30 = Friday 25:30
    assert one(f, "R_BUS", "S3", "S3", "2025-06-07T02:00") == 200  # end_time is exclusive
    assert one(f, "R_BUS", "S3", "S3", "2025-06-08T01:30") == 200  # Sunday: no Friday before


def test_calendar_day_pass_runs_to_midnight() -> None:
    f = mini(
        fare_products="fare_product_id,amount,currency,duration_amount,duration_unit,duration_type\n"
        "DAY,5.00,EUR,1,3,2\n",
        fare_leg_rules="leg_group_id,fare_product_id\nALL,DAY\n",
    )
    amounts = _journey(
        f,
        ("R_BUS", f"{MONDAY}T10:00", None),
        ("R_TRAM", f"{MONDAY}T23:59", None),
        ("R_BUS", "2025-06-03T00:01", None),
    )
    assert amounts == [500, 0, 500]


def test_to_timeframe_uses_the_arrival() -> None:
    f = mini(
        timeframes="timeframe_group_id,start_time,end_time,service_id\nPEAK,08:00:00,09:00:00,ALL\n",
        fare_leg_rules="leg_group_id,network_id,to_timeframe_group_id,fare_product_id\n"
        "G_PEAK,BUS,PEAK,ANY\nG_BUS,BUS,,BUS\n",
    )
    assert _journey(f, ("R_BUS", f"{MONDAY}T07:40", f"{MONDAY}T08:10")) == [400]
    assert _journey(f, ("R_BUS", f"{MONDAY}T07:40", f"{MONDAY}T07:55")) == [200]


def test_negative_amounts_never_credit_the_card() -> None:
    f = mini(
        fare_products="fare_product_id,amount,currency\nBUS,2.00,EUR\nDISCOUNT,-0.50,EUR\n",
        fare_leg_rules="leg_group_id,fare_product_id\nG,BUS\n",
        fare_transfer_rules="from_leg_group_id,to_leg_group_id,fare_product_id,transfer_count,"
        "fare_transfer_type\nG,G,DISCOUNT,-1,0\n",
    )
    assert _journey(f, ("R_BUS", T1, None), ("R_BUS", T2, None)) == [200, 0]


def test_feed_is_immutable() -> None:
    f = mini()
    with pytest.raises(AttributeError):
        f.version = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        f.products["NEW"] = f.products["BUS"]  # type: ignore[index]


def test_version_is_a_stable_content_hash() -> None:
    crlf = {k: v.replace("\n", "\r\n") for k, v in BASE.items()}
    assert mini().version == parse_feed(crlf, name="x").version
    assert (
        mini().version
        != mini(routes="route_id,network_id\nR_BUS,BUS\nR_TRAM,TRAM\nR_NONE,\nR4,\n").version
    )
    with_info = mini(feed_info="feed_publisher_name,feed_version\nMini,2025.06\n")
    assert with_info.version == "2025.06"


def test_unsupported_files_are_reported_not_silently_dropped() -> None:
    f = mini(fare_leg_join_rules="from_network_id,to_network_id\nBUS,TRAM\n")
    assert "fare_leg_join_rules.txt: not implemented, ignored" in f.notes
