"""Maryland MTA Metro SubwayLink fares, hand-computed from the feed's rows.

Line numbers refer to tests/data/gtfs/mdot-metro-fares-v2/ (header = line 1). The only route,
11682, is in network "core" (routes.txt line 2). fare_leg_rules.txt lines 2-8 give the leg
group core_local_one_way_trip seven products, all passes (the feed has no single-ride product),
so the cheapest one the rider may use is charged: the 1-day pass. 2021-03-02 is a Tuesday,
service 2011 (calendar.txt line 5); America/New_York is UTC-5 then.
"""

from __future__ import annotations

import pytest

from policies.gtfs import QuoteError, quote_journey
from policies.gtfs.model import Duration
from tests.policies.gtfs.helpers import MDOT, feed, leg

F = feed(MDOT)
DAY = "2021-03-02"


def test_feed_metadata() -> None:
    assert F.version.startswith("sha256:")  # no feed_info.txt: a hash of the files read
    assert F.timezone == "America/New_York"  # agency.txt line 2
    assert F.validity() == ("2020-06-14", "2022-12-31")  # calendar.txt lines 2-7
    assert F.default_category == "reg"  # rider_categories.txt line 2
    assert set(F.fare_media) == {"charmcard", "charmcard_senior", "charmpass"}
    assert any("fare_transfer_type" in note for note in F.notes)


@pytest.mark.parametrize(
    ("product", "amount", "days"),
    [
        # fare_products.txt lines 2-8: duration_start 0, duration_amount N, duration_unit 3 (day),
        # duration_type 1 (rolling); amounts 4.60 / 22.00 / 77.00 / 2.30 / 23.00.
        ("core_local_1_day_fare", 460, 1),
        ("core_local_7_day_fare", 2200, 7),
        ("core_local_31_day_fare", 7700, 31),
        ("reduced_senior_local_1_day_fare", 230, 1),
        ("reduced_senior_local_31_day_fare", 2300, 31),
        ("reduced_disability_local_1_day_fare", 230, 1),
        ("reduced_disability_local_31_day_fare", 2300, 31),
    ],
)
def test_passes_load_with_their_durations(product: str, amount: int, days: int) -> None:
    offers = F.products[product].offers
    assert len(offers) == 3  # no medium, then charmcard (or charmcard_senior), then charmpass
    assert {o.amount for o in offers} == {amount}
    assert {o.duration for o in offers} == {Duration(start=0, amount=days, unit=3, type=1)}


def test_regular_one_way() -> None:
    # No category: the default, reg. fare_leg_rules.txt line 2 -> core_local_1_day_fare, whose
    # charmcard row (fare_products.txt line 9, any category) costs 4.60 -> 460, the cheapest of
    # the products on lines 2-8 open to reg (the reduced ones are for sen / dis only).
    q = quote_journey(
        F, [leg(F, "11682", f"{DAY}T08:00")], rider_category=None, fare_media="charmcard"
    )
    assert q.total == 460
    assert q.legs[0].fare_product_id == "core_local_1_day_fare"
    assert q.legs[0].explain[0]["offer"] == "fare_products.txt line 9"
    assert q.rider_category == "reg"


def test_senior_reduced_fare() -> None:
    # fare_leg_rules.txt line 3 -> reduced_senior_local_1_day_fare, fare_products.txt line 10:
    # sen, charmcard_senior, 2.30 -> 230.
    q = quote_journey(
        F, [leg(F, "11682", f"{DAY}T08:00")], rider_category="sen", fare_media="charmcard_senior"
    )
    assert q.total == 230
    assert q.legs[0].explain[0]["offer"] == "fare_products.txt line 10"
    # On a plain CharmCard the senior row without a medium (line 3) applies: same 230.
    q = quote_journey(
        F, [leg(F, "11682", f"{DAY}T08:00")], rider_category="sen", fare_media="charmcard"
    )
    assert q.total == 230 and q.legs[0].explain[0]["offer"] == "fare_products.txt line 3"


def test_disability_reduced_fare() -> None:
    # fare_leg_rules.txt line 4, fare_products.txt line 11: dis, charmcard, 2.30.
    q = quote_journey(
        F, [leg(F, "11682", f"{DAY}T08:00")], rider_category="dis", fare_media="charmcard"
    )
    assert q.total == 230


def test_transfer_within_5400s() -> None:
    # fare_transfer_rules.txt line 2: core_local_one_way_trip -> itself, duration_limit 5400,
    # type 1 (departure to departure), no product, no fare_transfer_type (read as 0): free.
    q = quote_journey(
        F,
        [leg(F, "11682", f"{DAY}T08:00"), leg(F, "11682", f"{DAY}T09:30", "7510", "7500")],
        rider_category="reg",
        fare_media="charmcard",
    )
    assert [lq.amount for lq in q.legs] == [460, 0]
    assert q.legs[1].transfer is not None
    assert q.legs[1].transfer.rule == "fare_transfer_rules.txt line 2"


def test_one_day_pass_covers_later_rides_then_expires() -> None:
    # 5401 s later the transfer window is closed, but the 1-day pass bought on leg 1 (rolling
    # 1 day from 08:00) still covers the leg: 0. At 08:00 the next day it has expired: 460.
    q = quote_journey(
        F,
        [
            leg(F, "11682", f"{DAY}T08:00"),
            leg(F, "11682", f"{DAY}T09:30:01"),
            leg(F, "11682", f"{DAY}T19:00"),
            leg(F, "11682", "2021-03-03T08:00"),
        ],
        rider_category="reg",
        fare_media="charmcard",
    )
    assert [lq.amount for lq in q.legs] == [460, 0, 0, 460]
    assert q.total == 920
    assert q.legs[1].transfer is None
    assert q.legs[1].pass_product_id == "core_local_1_day_fare"


def test_outside_validity() -> None:
    with pytest.raises(QuoteError) as exc:
        quote_journey(
            F, [leg(F, "11682", "2023-01-05T08:00")], rider_category=None, fare_media=None
        )
    assert exc.value.code == "outside_validity"
