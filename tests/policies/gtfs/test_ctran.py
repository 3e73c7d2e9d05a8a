"""C-TRAN (Vancouver WA) fares, hand-computed from the feed's rows.

Every expected number names the rows it comes from (file line numbers, header = line 1) in
tests/data/gtfs/ctran-fares-v2/. Routes: 050 is LOCAL, 060 REGIONAL, 105 EXPRESS (routes.txt).
Fare medium "2" is the HOP Fastpass card (fare_media.txt line 4). 2025-10-06 is a Monday, run by
service 1-WKDY (calendar_dates.txt line 17); America/Los_Angeles is UTC-7 then.
"""

from __future__ import annotations

import pytest

from policies.gtfs import Leg, QuoteError, quote_journey
from tests.policies.gtfs.helpers import CTRAN, at, feed, leg

F = feed(CTRAN)


def test_feed_metadata() -> None:
    assert F.version == "20250914-20260110"  # feed_info.txt line 2, feed_version
    assert F.timezone == "America/Los_Angeles"  # agency.txt line 2
    assert F.currency == "USD" and F.minor_digits == 2
    assert F.validity() == ("2025-09-14", "2026-01-10")  # feed_info.txt feed_start/end_date
    assert F.default_category == "ADULT"  # rider_categories.txt line 2
    assert F.networks == {"LOCAL", "REGIONAL", "EXPRESS"}
    assert len(F.products) == 22 and len(F.leg_rules) == 21 and len(F.transfer_rules) == 19
    # C-TRAN's fare_products.txt has one row per (product, medium): 5 for adult local.
    assert len(F.products["ADULT_LOCAL_SINGLE_RIDE"].offers) == 5


def test_adult_local_regular() -> None:
    # timeframes.txt line 2: REGULAR 00:00:00-08:59:00 on 1-WKDY, so 07:30 Monday is REGULAR.
    # fare_leg_rules.txt line 2: LOCAL, LOCAL, ADULT_LOCAL_SINGLE_RIDE, REGULAR.
    # fare_products.txt line 4: ADULT_LOCAL_SINGLE_RIDE, ADULT, medium 2, 1.25 USD -> 125.
    q = quote_journey(
        F, [leg(F, "050", "2025-10-06T07:30")], rider_category="ADULT", fare_media="2"
    )
    assert q.total == 125
    (lq,) = q.legs
    assert (lq.fare_product_id, lq.leg_group_id, lq.network_id, lq.timeframe) == (
        "ADULT_LOCAL_SINGLE_RIDE",
        "LOCAL",
        "LOCAL",
        "REGULAR",
    )
    assert lq.explain[0]["rule"] == "fare_leg_rules.txt line 2"
    assert lq.explain[0]["offer"] == "fare_products.txt line 4"
    # No category given: the default one (ADULT, rider_categories.txt line 2) is used.
    q = quote_journey(F, [leg(F, "050", "2025-10-06T07:30")], rider_category=None, fare_media="2")
    assert q.total == 125 and q.rider_category == "ADULT"


def test_honoured_citizen_midday_express() -> None:
    # timeframes.txt line 6: MIDDAY 09:00:00-14:59:00 on 1-WKDY; Tuesday 2025-10-07 is 1-WKDY
    # (calendar_dates.txt line 18). fare_leg_rules.txt line 18: EXPRESS, MIDDAY ->
    # HC_EXPRESS_SINGLE_RIDE, fare_products.txt line 37: HONORED_CITIZEN, medium 2, 3.00 -> 300.
    # (The discounted HC_EXPRESS_SINGLE_RIDE_MIDDAY, 1.50 on line 42, is used by no rule.)
    q = quote_journey(
        F, [leg(F, "105", "2025-10-07T11:00")], rider_category="HONORED_CITIZEN", fare_media="2"
    )
    assert q.total == 300
    assert (q.legs[0].fare_product_id, q.legs[0].timeframe) == ("HC_EXPRESS_SINGLE_RIDE", "MIDDAY")
    assert q.legs[0].explain[0]["rule"] == "fare_leg_rules.txt line 18"


def test_honoured_citizen_local_midday() -> None:
    # fare_leg_rules.txt line 12: LOCAL, MIDDAY -> HC_LOCAL_SINGLE_RIDE; fare_products.txt
    # line 9: HONORED_CITIZEN, medium 2, 0.60 -> 60.
    q = quote_journey(
        F, [leg(F, "050", "2025-10-07T11:00")], rider_category="HONORED_CITIZEN", fare_media="2"
    )
    assert q.total == 60 and q.legs[0].explain[0]["rule"] == "fare_leg_rules.txt line 12"


def test_youth_local() -> None:
    # fare_leg_rules.txt line 4: LOCAL, REGULAR -> YOUTH_LOCAL_SINGLE_RIDE; fare_products.txt
    # line 13: YOUTH, medium 2, 0.00 -> 0.
    q = quote_journey(
        F, [leg(F, "050", "2025-10-06T07:30")], rider_category="YOUTH", fare_media="2"
    )
    assert q.total == 0 and q.legs[0].fare_product_id == "YOUTH_LOCAL_SINGLE_RIDE"


def test_youth_on_paper_ticket_falls_back_to_adult() -> None:
    # YOUTH_LOCAL_SINGLE_RIDE has no row for medium 1 (fare_products.txt lines 11-14: media
    # 0, 2, 3, 4), so the default category's product applies: line 3, ADULT, medium 1, 1.25.
    q = quote_journey(
        F, [leg(F, "050", "2025-10-06T07:30")], rider_category="YOUTH", fare_media="1"
    )
    assert q.total == 125
    assert q.legs[0].fare_product_id == "ADULT_LOCAL_SINGLE_RIDE"
    assert q.legs[0].rider_category_id == "ADULT"
    assert {"category_fallback": "ADULT"} in q.legs[0].explain


def test_paid_upgrade_local_to_express_within_9000s() -> None:
    # Leg 1: LOCAL 07:30, 125 (as in test_adult_local_regular).
    # Leg 2: EXPRESS 08:30 (REGULAR), own fare ADULT_EXPRESS_SINGLE_RIDE 3.00 (fare_leg_rules.txt
    # line 8, fare_products.txt line 32), but 3600 s after leg 1's departure
    # fare_transfer_rules.txt line 10 applies: LOCAL -> EXPRESS, LOCAL_EXPRESS_ADULT_TRANSFER,
    # 9000 s departure-to-departure, fare_transfer_type 0 (A + AB): leg 2 costs the transfer
    # product, fare_products.txt line 59: 1.75 -> 175. Total 125 + 175 = 300.
    q = quote_journey(
        F,
        [leg(F, "050", "2025-10-06T07:30"), leg(F, "105", "2025-10-06T08:30")],
        rider_category="ADULT",
        fare_media="2",
    )
    assert [lq.amount for lq in q.legs] == [125, 175]
    assert q.total == 300
    t = q.legs[1].transfer
    assert t is not None
    assert (t.rule, t.fare_product_id, t.cost, t.fare_transfer_type) == (
        "fare_transfer_rules.txt line 10",
        "LOCAL_EXPRESS_ADULT_TRANSFER",
        175,
        0,
    )
    assert q.legs[1].full_fare == 300 and t.elapsed_ms == 3_600_000


def test_transfer_after_the_9000s_window_is_charged_again() -> None:
    # fare_transfer_rules.txt line 2: LOCAL -> LOCAL, no product (free), transfer_count -1,
    # duration_limit 9000, type 1 (departure to departure).
    start = "2025-10-06T07:00"
    on_the_limit = quote_journey(
        F,
        [leg(F, "050", start), leg(F, "050", "2025-10-06T09:30:00")],  # exactly 9000 s: free
        rider_category="ADULT",
        fare_media="2",
    )
    assert [lq.amount for lq in on_the_limit.legs] == [125, 0]
    assert on_the_limit.legs[1].transfer is not None
    # One second later the window is closed: leg 2 pays its own MIDDAY fare, fare_leg_rules.txt
    # line 11 -> ADULT_LOCAL_SINGLE_RIDE, fare_products.txt line 4: 125. Total 250.
    late = quote_journey(
        F,
        [leg(F, "050", start), leg(F, "050", "2025-10-06T09:30:01")],
        rider_category="ADULT",
        fare_media="2",
    )
    assert [lq.amount for lq in late.legs] == [125, 125] and late.total == 250
    assert late.legs[1].transfer is None and late.legs[1].timeframe == "MIDDAY"


def test_three_legs_local_express_local() -> None:
    # 125 (LOCAL) + 175 (upgrade, fare_transfer_rules.txt line 10) + 0 (EXPRESS -> LOCAL, line 3:
    # free, 2 h after the journey's first departure, within 9000 s) = 300.
    q = quote_journey(
        F,
        [
            leg(F, "050", "2025-10-06T07:00"),
            leg(F, "105", "2025-10-06T08:00"),
            leg(F, "050", "2025-10-06T09:00"),
        ],
        rider_category="ADULT",
        fare_media="2",
    )
    assert [lq.amount for lq in q.legs] == [125, 175, 0] and q.total == 300
    assert q.legs[2].transfer is not None and q.legs[2].transfer.transfer_number == 2


def test_local_to_regional_upgrade() -> None:
    # LOCAL 125, then REGIONAL (route 060) within 9000 s: fare_transfer_rules.txt line 8,
    # LOCAL_REGIONAL_ADULT_TRANSFER, fare_products.txt line 51: 1.25. Total 250, the regional fare.
    q = quote_journey(
        F,
        [leg(F, "050", "2025-10-06T07:00"), leg(F, "060", "2025-10-06T07:40")],
        rider_category="ADULT",
        fare_media="2",
    )
    assert [lq.amount for lq in q.legs] == [125, 125]


def test_honoured_citizen_upgrade_takes_the_cheaper_of_two_rules() -> None:
    # LOCAL -> EXPRESS has two HC rules: line 11 (LOCAL_EXPRESS_HC_TRANSFER, 2.40, products
    # line 63) and line 16 (LOCAL_MIDDAY_EXPRESS_HC_TRANSFER, 0.90). Transfer rules cannot name a
    # timeframe, so both apply at any time; the engine charges the cheaper: 60 + 90 = 150.
    q = quote_journey(
        F,
        [leg(F, "050", "2025-10-06T07:00"), leg(F, "105", "2025-10-06T08:00")],
        rider_category="HONORED_CITIZEN",
        fare_media="2",
    )
    assert [lq.amount for lq in q.legs] == [60, 90]
    assert q.legs[1].transfer is not None
    assert q.legs[1].transfer.rule == "fare_transfer_rules.txt line 16"


def test_new_years_eve_free_service() -> None:
    # 2025-12-31 runs 4-NYE and FARES_NYE (calendar_dates.txt lines 120-121). timeframes.txt
    # line 10: NYE 18:00:00-23:59:00 on FARES_NYE; fare_leg_rules.txt line 20: SYSTEM_FREE,
    # LOCAL, FREE_FARE, NYE; fare_products.txt line 94: FREE_FARE ADULT medium 2, 0.00.
    q = quote_journey(
        F, [leg(F, "050", "2025-12-31T20:00")], rider_category="ADULT", fare_media="2"
    )
    assert q.total == 0
    assert (q.legs[0].fare_product_id, q.legs[0].leg_group_id) == ("FREE_FARE", "SYSTEM_FREE")
    # Earlier that day it is REGULAR (timeframes.txt line 9: 15:00:00-17:59:00 on 4-NYE): 125.
    q = quote_journey(
        F, [leg(F, "050", "2025-12-31T17:00")], rider_category="ADULT", fare_media="2"
    )
    assert q.total == 125
    # 01:00 on 2026-01-01: NYE again (timeframes.txt line 11, 00:00:00-03:00:00 on
    # FARES_NYE_JAN1, calendar_dates.txt line 122) and REGULAR (line 4, 3-SUN runs on Jan 1,
    # calendar_dates.txt line 118) both match with equal specificity: the cheaper, free, wins.
    q = quote_journey(
        F, [leg(F, "050", "2026-01-01T01:00")], rider_category="ADULT", fare_media="2"
    )
    assert q.total == 0 and q.legs[0].timeframe == "NYE"
    q = quote_journey(
        F, [leg(F, "050", "2026-01-01T04:00")], rider_category="ADULT", fare_media="2"
    )
    assert q.total == 125 and q.legs[0].timeframe == "REGULAR"


def test_new_years_night_journey_is_free() -> None:
    # Both legs start in an NYE timeframe (timeframes.txt lines 10 and 11): both FREE_FARE.
    q = quote_journey(
        F,
        [leg(F, "050", "2025-12-31T23:00"), leg(F, "105", "2026-01-01T00:30")],
        rider_category="HONORED_CITIZEN",
        fare_media="2",
    )
    assert q.total == 0
    assert [lq.fare_product_id for lq in q.legs] == ["FREE_FARE", "FREE_FARE"]


def test_ride_after_the_free_night_within_9000s_is_free() -> None:
    # Leg 1 at 02:30 on Jan 1 is free (NYE, as above). Leg 2 at 04:30 is REGULAR only, own fare
    # 125, but 7200 s after leg 1: fare_transfer_rules.txt line 18, SYSTEM_FREE -> LOCAL,
    # FREE_FARE (fare_products.txt line 94, 0.00), type 0 -> leg 2 costs 0.
    q = quote_journey(
        F,
        [leg(F, "050", "2026-01-01T02:30"), leg(F, "050", "2026-01-01T04:30")],
        rider_category="ADULT",
        fare_media="2",
    )
    assert [lq.amount for lq in q.legs] == [0, 0]
    assert q.legs[1].full_fare == 125
    assert q.legs[1].transfer is not None
    assert q.legs[1].transfer.rule == "fare_transfer_rules.txt line 18"


def test_minute_gap_between_timeframes_has_no_fare() -> None:
    # end_time is exclusive (spec): REGULAR ends before 08:59:00, MIDDAY starts at 09:00:00
    # (timeframes.txt lines 2 and 6), so 08:59:30 on a weekday matches no leg rule.
    with pytest.raises(QuoteError) as exc:
        quote_journey(
            F, [leg(F, "050", "2025-10-06T08:59:30")], rider_category="ADULT", fare_media="2"
        )
    assert exc.value.code == "no_fare_rule"
    assert any("08:59:00-09:00:00" in note for note in F.notes)


def test_no_product_for_the_medium() -> None:
    # ADULT_REGIONAL_SINGLE_RIDE has no medium 1 row (fare_products.txt lines 15-18) and ADULT
    # is already the default category: nothing to charge.
    with pytest.raises(QuoteError) as exc:
        quote_journey(
            F, [leg(F, "060", "2025-10-06T07:00")], rider_category="ADULT", fare_media="1"
        )
    assert exc.value.code == "no_fare_rule"


@pytest.mark.parametrize(
    ("legs", "category", "medium", "code"),
    [
        ([Leg("999", "8126", "8111", 0)], "ADULT", "2", "unknown_route"),
        ([Leg("050", "nowhere", "8111", 0)], "ADULT", "2", "unknown_stop"),
        ([], "SENIOR", "2", "unknown_category"),
        ([], "ADULT", "9", "unknown_fare_media"),
    ],
)
def test_refusals(legs: list[Leg], category: str, medium: str, code: str) -> None:
    with pytest.raises(QuoteError) as exc:
        quote_journey(F, legs, rider_category=category, fare_media=medium)
    assert exc.value.code == code


@pytest.mark.parametrize("local", ["2026-02-01T08:00", "2025-09-13T23:30", "2030-01-01T08:00"])
def test_outside_validity(local: str) -> None:
    with pytest.raises(QuoteError) as exc:
        quote_journey(F, [leg(F, "050", local)], rider_category="ADULT", fare_media="2")
    assert exc.value.code == "outside_validity"


def test_legs_out_of_order_are_refused() -> None:
    legs = [leg(F, "050", "2025-10-06T08:00"), leg(F, "050", "2025-10-06T07:00")]
    with pytest.raises(QuoteError) as exc:
        quote_journey(F, legs, rider_category="ADULT", fare_media="2")
    assert (exc.value.code, exc.value.leg_index) == ("invalid_leg", 1)
    bad_end = Leg("050", "8126", "8111", at(F, "2025-10-06T08:00"), at(F, "2025-10-06T07:00"))
    with pytest.raises(QuoteError):
        quote_journey(F, [bad_end], rider_category="ADULT", fare_media="2")
