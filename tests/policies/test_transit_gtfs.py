"""GTFS fares through `decide`: C-TRAN taps priced from the real feed, hand-computed.

Every expected number names the rows it comes from (file line numbers, header = line 1) in
tests/data/gtfs/ctran-fares-v2/. Routes (routes.txt): 050 and 002 are LOCAL, 060 REGIONAL, 105
EXPRESS. The citizen card is fare medium "2" (HOP Fastpass, fare_media.txt line 4). 2025-10-06
is a Monday run by service 1-WKDY (calendar_dates.txt line 17); Los Angeles is UTC-7 then.
REGULAR on weekdays is 00:00-08:59 and 15:00-23:59, MIDDAY 09:00-14:59 (timeframes.txt 2-6).
"""

from __future__ import annotations

import orjson

from policies import CardState, FareTap, decide, reasons
from policies.gtfs import quote_journey
from policies.gtfs.quote import Leg
from tests.policies.gtfs.helpers import CTRAN, feed
from tests.policies.transit_helpers import at, bus, card, ctran_tariff, metro, rule, run

T = ctran_tariff()


def test_adult_local_regular() -> None:
    # fare_leg_rules.txt line 2 (LOCAL, REGULAR) -> ADULT_LOCAL_SINGLE_RIDE; fare_products.txt
    # line 4: ADULT, medium 2, 1.25 USD -> 125.
    out = decide(card(1_000), bus("050"), at("2025-10-06T07:30"), T)
    d = out.decision
    assert (d.approved, d.reason, d.amount, d.balance) == (True, "ok", 125, 875)
    assert d.product == "fare:ADULT_LOCAL_SINGLE_RIDE"
    step = rule(out, "gtfs_fare")
    assert step["leg_rule"] == "fare_leg_rules.txt line 2"
    assert (step["category"], step["fare_media"], step["timeframe"]) == ("ADULT", "2", "REGULAR")
    assert rule(out, "category") == {
        "rule": "category",
        "category": "adult",
        "gtfs_category": "ADULT",
    }
    assert d.tariff_version == "test-transit.1"
    (event,) = out.events
    assert (event.type, event.amount, event.operator) == ("fare_charged", 125, "ctran")


def test_transfer_within_9000_s_is_free() -> None:
    # fare_transfer_rules.txt line 2: LOCAL -> LOCAL, no product, transfer_count -1,
    # duration_limit 9000 s (departure to departure, type 1), fare_transfer_type 0: the second
    # leg costs the (absent) transfer product: 0. 07:30 -> 09:59:59 is 8999 s.
    state, outs = run(
        card(1_000),
        [
            (bus("050"), at("2025-10-06T07:30")),
            (bus("002", "8111", "bus-2"), at("2025-10-06T09:59:59")),
        ],
        T,
    )
    assert [o.decision.amount for o in outs] == [125, 0]
    transfer = rule(outs[1], "gtfs_fare")["transfer"]
    assert transfer["rule"] == "fare_transfer_rules.txt line 2" and transfer["cost"] == 0
    assert state.balance == 875


def test_transfer_after_the_window_pays_again() -> None:
    # 07:30 -> 10:00:01 is 9001 s > 9000: no transfer rule applies; MIDDAY now
    # (fare_leg_rules.txt line 11, same 1.25 product): 125 again.
    _, outs = run(
        card(1_000),
        [
            (bus("050"), at("2025-10-06T07:30")),
            (bus("002", "8111", "bus-2"), at("2025-10-06T10:00:01")),
        ],
        T,
    )
    assert [o.decision.amount for o in outs] == [125, 125]
    assert "transfer" not in rule(outs[1], "gtfs_fare")


def test_paid_upgrade_local_to_express() -> None:
    # fare_transfer_rules.txt line 10: LOCAL -> EXPRESS, LOCAL_EXPRESS_ADULT_TRANSFER, type 0
    # (A + AB): the express leg costs the transfer product, fare_products.txt line 59: ADULT,
    # medium 2, 1.75 -> 175 (instead of the express's own 3.00, line 32).
    _, outs = run(
        card(1_000),
        [
            (bus("050"), at("2025-10-06T07:30")),
            (
                FareTap("bus-9", "ctran", "EXPRESS", "bus-9", route="105", stop="8111"),
                at("2025-10-06T08:15"),
            ),
        ],
        T,
    )
    assert [o.decision.amount for o in outs] == [125, 175]
    step = rule(outs[1], "gtfs_fare")
    assert (step["full_fare"], step["fare"]) == (300, 175)
    assert step["transfer"]["product"] == "LOCAL_EXPRESS_ADULT_TRANSFER"


def test_youth_local_is_free() -> None:
    # A student card maps to YOUTH (the tariff's categories); fare_leg_rules.txt line 4 ->
    # YOUTH_LOCAL_SINGLE_RIDE, fare_products.txt line 13: YOUTH, medium 2, 0.00.
    out = decide(card(0, "student"), bus("050"), at("2025-10-06T07:30"), T)
    assert (out.decision.approved, out.decision.amount) == (True, 0)
    assert rule(out, "gtfs_fare")["category"] == "YOUTH"


def test_honoured_citizen_local_midday() -> None:
    # senior -> HONORED_CITIZEN; fare_leg_rules.txt line 12 (LOCAL, MIDDAY) ->
    # HC_LOCAL_SINGLE_RIDE, fare_products.txt line 9: medium 2, 0.60 -> 60.
    out = decide(card(1_000, "senior"), bus("050"), at("2025-10-06T11:00"), T)
    assert out.decision.amount == 60


def test_expired_honoured_citizen_concession_pays_adult() -> None:
    # The senior concession ran until 2025-10-01 00:00 local; on 2025-10-06 the tariff's
    # default category (adult -> ADULT) applies: fare_products.txt line 4, 1.25 -> 125.
    until = at("2025-10-01T00:00")
    state = card(1_000, "senior", category_until_ms=until)
    out = decide(state, bus("050"), at("2025-10-06T11:00"), T)
    assert out.decision.amount == 125
    step = rule(out, "category")
    assert step == {
        "rule": "category",
        "category": "adult",
        "gtfs_category": "ADULT",
        "card_category": "senior",
        "until_ms": until,
        "expired": True,
    }
    # The card itself is not rewritten: the concession can be renewed by changing its date.
    assert out.state is not None and out.state.category == "senior"
    # Before the expiry the concession applies: 60 (fare_products.txt line 9).
    valid = card(1_000, "senior", category_until_ms=at("2026-06-30T00:00"))
    assert decide(valid, bus("050"), at("2025-10-06T11:00"), T).decision.amount == 60


def test_new_years_eve_free_service() -> None:
    # 2025-12-31 runs FARES_NYE (calendar_dates.txt line 121); timeframes.txt line 10: NYE
    # 18:00-23:59; fare_leg_rules.txt line 20 -> FREE_FARE, fare_products.txt line 94: 0.00.
    out = decide(card(1_000), bus("050"), at("2025-12-31T19:00"), T)
    assert (out.decision.approved, out.decision.amount) == (True, 0)
    assert out.decision.product == "fare:FREE_FARE"


def test_gate_without_route_is_priced_by_its_network() -> None:
    # A LOCAL-network gate sends no route: any LOCAL route prices the same (the leg rules name
    # networks, not routes): 125 as above.
    tap = FareTap("gate-7", "ctran", "LOCAL", "gate-7", stop="8126")
    assert decide(card(1_000), tap, at("2025-10-06T07:30"), T).decision.amount == 125


def test_network_not_in_feed_falls_back_to_flat_fares() -> None:
    out = decide(card(1_000), metro(), at("2025-10-06T07:30"), T)
    assert (out.decision.amount, out.decision.product) == (250, "fare:METRO")
    assert rule(out, "flat_fare") == {"rule": "flat_fare", "network": "METRO", "fare": 250}
    # Half fare for a senior (flat_percent 50).
    senior = decide(card(1_000, "senior"), metro(), at("2025-10-06T07:30"), T)
    assert senior.decision.amount == 125
    assert rule(senior, "flat_fare")["full_fare"] == 250


def test_journey_context_round_trips_and_batching_does_not_matter() -> None:
    # Leg by leg through decide, with the card stored and reloaded between taps, equals the
    # engine's quote of the whole journey (quote_journey).
    legs = [
        ("050", "8126", at("2025-10-06T07:30")),
        ("105", "8111", at("2025-10-06T08:15")),
        ("002", "8126", at("2025-10-06T09:10")),
        ("060", "8111", at("2025-10-06T12:00")),
    ]
    state = card(10_000)
    charged = []
    for route, stop, t in legs:
        state = CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
        out = decide(state, bus(route, stop, f"bus-{route}"), t, T)
        assert out.state is not None
        charged.append(out.decision.amount)
        state = out.state
    whole = quote_journey(
        feed(CTRAN),
        [Leg(r, s, s, t) for r, s, t in legs],
        rider_category="ADULT",
        fare_media="2",
    )
    assert charged == [leg.amount for leg in whole.legs]
    assert sum(charged) == whole.total


def test_category_change_starts_a_new_journey() -> None:
    first = decide(card(1_000, "senior"), bus("050"), at("2025-10-06T07:30"), T)
    assert first.state is not None
    adult = CardState.from_dict({**first.state.to_dict(), "category": "adult"})
    out = decide(adult, bus("002", "8111", "bus-2"), at("2025-10-06T08:00"), T)
    assert rule(out, "journey_reset")["why"] == "category_changed"
    assert out.decision.amount == 125  # no transfer from the senior's leg


def test_bad_input_is_declined_with_state_unchanged() -> None:
    state = card(1_000)
    t = at("2025-10-06T07:30")
    cases = [
        (bus("999"), reasons.UNKNOWN_ROUTE),
        (bus("050", "no-such-stop"), reasons.UNKNOWN_STOP),
        (FareTap("g", "o", "FERRY", "g"), reasons.UNKNOWN_NETWORK),
    ]
    for command, reason in cases:
        out = decide(state, command, t, T)
        assert (out.decision.approved, out.decision.reason) == (False, reason), command
        assert out.state is state and out.decision.amount == 0
    # The feed prices 2025-09-14 .. 2026-01-10 only (feed_info.txt line 2).
    late = decide(state, bus("050"), at("2026-02-02T07:30"), T)
    assert late.decision.reason == reasons.OUTSIDE_VALIDITY and late.state is state
    # A category the tariff does not know.
    odd = decide(card(1_000, "astronaut"), bus("050"), t, T)
    assert odd.decision.reason == reasons.UNKNOWN_CATEGORY
    assert rule(odd, "category_known")["category"] == "astronaut"
    # A time far outside the tariff's own validity dates.
    dated = ctran_tariff(valid_from="2025-10-01", valid_until="2025-12-31")
    for when in (at("2025-09-30T23:59"), at("2026-01-01T00:00"), 0, 2**52):
        out = decide(state, metro(), when, dated)
        assert out.decision.reason == reasons.OUTSIDE_VALIDITY and out.state is state
    assert decide(state, metro(), at("2025-12-31T23:59"), dated).decision.approved


def test_feed_route_needs_a_stop_only_when_fares_depend_on_it() -> None:
    # C-TRAN's fares use no areas: a validator that sends no stop is still priced.
    tap = FareTap("bus-1", "ctran", "LOCAL", "bus-1", route="050")
    assert decide(card(1_000), tap, at("2025-10-06T07:30"), T).decision.amount == 125
