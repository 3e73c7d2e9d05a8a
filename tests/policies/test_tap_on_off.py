"""Tap on / tap off: the maximum fare at entry, the difference credited at exit, incomplete trips
kept at the maximum until an operator corrects them; every credit attributed to the operator
that received the charge."""

from __future__ import annotations

import orjson

from policies import CardState, FareCorrection, decide, reasons
from tests.policies.transit_helpers import (
    BERLIN,
    at,
    card,
    ctran_tariff,
    flat_tariff,
    off,
    on,
    rule,
    run,
    zonal_tariff,
)

T = ctran_tariff()
T0 = at("2025-10-06T07:30")
MIN = 60_000


def test_flat_network_charges_the_fare_at_tap_on_and_credits_nothing() -> None:
    state, (o1, o2) = run(card(1_000), [(on(), T0), (off(), T0 + 20 * MIN)], T)
    assert (o1.decision.amount, o1.events[0].type) == (250, "tap_on")
    assert rule(o1, "tap_on") == {
        "rule": "tap_on",
        "journey": "J1",
        "max_fare": 250,
        "charged": 250,
        "tap_off_within_ms": T.transit.tap_off_window_ms,
    }
    assert o1.events[0].detail == {"journey": "J1"}
    assert (o2.decision.approved, o2.decision.amount, o2.events[0].type) == (True, 0, "tap_off")
    assert rule(o2, "tap_off")["credit"] == 0
    assert state.balance == 750 and state.transit is not None and state.transit.trip is None


def test_gtfs_bus_tap_on_charges_the_maximum_and_tap_off_the_real_fare() -> None:
    # C-TRAN has no fare areas, so the maximum from stop 8126 on LOCAL route 050 is its one
    # fare: 125 (fare_products.txt line 4); the real leg is the same, nothing to credit.
    state, (o1, o2) = run(
        card(1_000),
        [
            (on("LOCAL", "bus-1", route="050", stop="8126", op="ctran"), T0),
            (off("LOCAL", "bus-1", stop="8111", op="ctran"), T0 + 25 * MIN),
        ],
        T,
    )
    assert o1.decision.amount == 125 and rule(o1, "max_fare")["fare"] == 125
    assert o2.decision.amount == 0
    step = rule(o2, "gtfs_fare")
    assert (step["from_stop"], step["to_stop"], step["fare"]) == ("8126", "8111", 125)
    assert state.balance == 875


def test_zonal_tap_on_charges_the_maximum_and_tap_off_credits_the_difference() -> None:
    # The zonal feed (transit_helpers.ZONAL_FILES): from zone A the dearest destination is zone
    # C, THREE_ZONES 4.50 -> 450 at tap on; the rider leaves in zone B (TWO_ZONES, 3.00): 150
    # back, attributed to the operator that got the 450 (not the exit reader's operator).
    z = zonal_tariff()
    state, (o1, o2) = run(
        card(1_000),
        [
            (on("RAIL", "in-A1", stop="A1", op="rail-op"), at("2025-10-06T08:00", BERLIN)),
            (off("RAIL", "out-B1", stop="B1", op="station-co"), at("2025-10-06T08:20", BERLIN)),
        ],
        z,
    )
    assert (o1.decision.amount, o1.decision.product) == (450, "fare:THREE_ZONES")
    assert rule(o1, "max_fare") == {"rule": "max_fare", "destinations": 3, "fare": 450}
    d = o2.decision
    assert (d.approved, d.amount, d.balance) == (True, -150, 700)
    step = rule(o2, "tap_off")
    assert (step["max_fare"], step["charged"], step["fare"], step["credit"]) == (450, 450, 300, 150)
    (event,) = o2.events
    assert (event.type, event.amount, event.operator, event.terminal_id) == (
        "tap_off",
        -150,
        "rail-op",
        "out-B1",
    )
    assert state.balance == 700
    # Leaving in zone A: ONE_ZONE 2.00 -> 250 back.
    _, (_, back) = run(
        card(1_000),
        [
            (on("RAIL", "in-A1", stop="A1"), at("2025-10-06T08:00", BERLIN)),
            (off("RAIL", "out-A2", stop="A2"), at("2025-10-06T08:20", BERLIN)),
        ],
        z,
    )
    assert back.decision.amount == -250


def test_zonal_tap_on_needs_a_stop() -> None:
    out = decide(card(1_000), on("RAIL", "in-1"), at("2025-10-06T08:00", BERLIN), zonal_tariff())
    assert out.decision.reason == reasons.UNKNOWN_STOP


def test_capped_tap_on_credits_only_what_was_taken() -> None:
    # Daily cap 500: a first trip A -> C (450) leaves 50 headroom; the second tap on's maximum
    # 450 is cut to 50; its real fare ONE_ZONE 200 is above 50, so nothing comes back, and the
    # day's spend stays at the cap.
    z = zonal_tariff(caps=[{"id": "day", "kind": "daily", "amount": 500}])
    t = at("2025-10-06T08:00", BERLIN)
    _, outs = run(
        card(2_000),
        [
            (on("RAIL", "in-A1", stop="A1"), t),
            (off("RAIL", "out-C1", stop="C1"), t + 30 * MIN),
            (on("RAIL", "in-C1", stop="C1"), t + 240 * MIN),
            (off("RAIL", "out-C1b", stop="C1"), t + 260 * MIN),
        ],
        z,
    )
    assert [o.decision.amount for o in outs] == [450, 0, 50, 0]
    assert outs[2].decision.caps[0].spent == 500
    assert outs[3].decision.caps[0].spent == 500
    # With room under the cap, a credit also gives the cap its room back.
    _, outs = run(
        card(2_000),
        [(on("RAIL", "in-A1", stop="A1"), t), (off("RAIL", "out-A2", stop="A2"), t + 20 * MIN)],
        z,
    )
    assert [o.decision.amount for o in outs] == [450, -250]
    assert outs[1].decision.caps[0].spent == 200


def test_flat_percent_applies_at_tap_on() -> None:
    # A senior pays half the flat METRO fare (250 -> 125) at tap on; the flat fare does not
    # depend on the exit, so the tap off credits nothing.
    state, (o1, o2) = run(card(1_000, "senior"), [(on(), T0), (off(), T0 + 10 * MIN)], T)
    assert [o1.decision.amount, o2.decision.amount] == [125, 0]
    assert state.balance == 875


def test_incomplete_trip_keeps_the_maximum_and_can_be_corrected() -> None:
    # Tap on, never tap off; a new tap on 4 h later (after the 3 h window) closes it as
    # incomplete: it keeps its 250. An ops terminal corrects it to 200: 50 back, attributed to
    # the metro operator that received the 250.
    state, (o1, o2) = run(card(1_000), [(on(), T0), (on(gate="in-2"), T0 + 240 * MIN)], T)
    assert [o1.decision.amount, o2.decision.amount] == [250, 250]
    assert rule(o2, "incomplete_trip") == {"rule": "incomplete_trip", "journey": "J1", "kept": 250}
    assert state.transit is not None
    assert [t.ref for t in state.transit.incomplete] == ["J1"]
    fix = FareCorrection("ops-desk-1", "city-ops", "J1", 200)
    out = decide(state, fix, T0 + 300 * MIN, T)
    d = out.decision
    assert (d.approved, d.amount, d.balance, d.product) == (True, -50, 550, "correction:J1")
    (event,) = out.events
    assert (event.type, event.operator, event.terminal_id) == (
        "fare_corrected",
        "metro-op",
        "ops-desk-1",
    )
    assert event.detail == {"journey": "J1", "corrected_by": "city-ops"}
    step = rule(out, "fare_correction")
    assert (step["refund"], step["corrected_by"], step["attributed_to"]) == (
        50,
        "city-ops",
        "metro-op",
    )
    # A second correction of the same trip is refused: the refund happens once.
    again = decide(out.state, fix, T0 + 301 * MIN, T)
    assert again.decision.reason == reasons.UNKNOWN_JOURNEY and again.state is out.state


def test_tap_off_after_the_window_is_refused_and_the_trip_can_be_corrected() -> None:
    state, _ = run(card(1_000), [(on(), T0)], T)
    late = T0 + T.transit.tap_off_window_ms + 1
    out = decide(state, off(), late, T)
    assert out.decision.reason == reasons.NO_OPEN_JOURNEY and out.state is state
    assert rule(out, "open_journey")["journey"] == "J1"
    # Still open on the card, but past the window: an operator can correct it already.
    fixed = decide(state, FareCorrection("ops", "city-ops", "J1", 0), late, T)
    assert (fixed.decision.amount, fixed.decision.balance) == (-250, 1_000)
    assert fixed.state is not None and fixed.state.transit is not None
    assert fixed.state.transit.trip is None


def test_correction_bad_input() -> None:
    state, _ = run(card(1_000), [(on(), T0), (on(gate="in-2"), T0 + 240 * MIN)], T)
    for amount in (-1, 251, True, 10**30):
        out = decide(state, FareCorrection("ops", "city-ops", "J1", amount), T0, T)
        assert out.decision.reason == reasons.INVALID_AMOUNT and out.state is state
        orjson.dumps(out.decision.to_dict())
    out = decide(state, FareCorrection("ops", "city-ops", "J9", 0), T0, T)
    assert out.decision.reason == reasons.UNKNOWN_JOURNEY
    # The open trip J2 is within its window: not incomplete, not correctable yet.
    out = decide(state, FareCorrection("ops", "city-ops", "J2", 0), T0 + 241 * MIN, T)
    assert out.decision.reason == reasons.UNKNOWN_JOURNEY


def test_tap_off_without_tap_on_and_repeat_taps() -> None:
    out = decide(card(1_000), off(), T0, T)
    assert out.decision.reason == reasons.NO_OPEN_JOURNEY and out.decision.amount == 0
    state, outs = run(
        card(1_000),
        [(on(), T0), (on(), T0 + 5_000), (off(), T0 + 10 * MIN), (off(), T0 + 10 * MIN + 5_000)],
        T,
    )
    assert [o.decision.reason for o in outs] == ["ok", "repeat_tap", "ok", "repeat_tap"]
    assert [o.decision.amount for o in outs] == [250, 0, 0, 0]
    assert state.balance == 750


def test_a_fare_tap_while_a_trip_is_open_leaves_it_incomplete() -> None:
    from tests.policies.transit_helpers import metro

    state, outs = run(card(1_000), [(on(), T0), (metro("gate-x"), T0 + 30 * MIN)], T)
    assert rule(outs[1], "incomplete_trip")["journey"] == "J1"
    assert state.transit is not None and state.transit.trip is None
    assert [t.ref for t in state.transit.incomplete] == ["J1"]


def test_incomplete_trips_are_bounded() -> None:
    from policies.transit_state import MAX_INCOMPLETE

    steps = [(on(gate=f"in-{i}"), T0 + i * 240 * MIN) for i in range(MAX_INCOMPLETE + 3)]
    state, _ = run(card(50_000), steps, flat_tariff())
    assert state.transit is not None
    assert len(state.transit.incomplete) == MAX_INCOMPLETE
    assert state.transit.incomplete[-1].ref == f"J{MAX_INCOMPLETE + 2}"
    assert CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state


def test_tap_on_declines_leave_the_state_alone() -> None:
    state = card(100)
    out = decide(state, on(), T0, T)  # 250 > 100, no negative allowance in T
    assert out.decision.reason == reasons.INSUFFICIENT_FUNDS and out.state is state
    out = decide(state, on("LOCAL", "bus-1", route="050", stop="nowhere"), T0, T)
    assert out.decision.reason == reasons.UNKNOWN_STOP and out.state is state
    trip_state, _ = run(card(1_000), [(on("LOCAL", "bus-1", route="050", stop="8126"), T0)], T)
    out = decide(trip_state, off("LOCAL", "bus-1", stop="nowhere"), T0 + MIN, T)
    assert out.decision.reason == reasons.UNKNOWN_STOP and out.state is trip_state


def test_tap_off_after_a_reload_that_dropped_the_feed_keeps_the_charge() -> None:
    z = zonal_tariff()
    t = at("2025-10-06T08:00", BERLIN)
    state, _ = run(card(1_000), [(on("RAIL", "in-A1", stop="A1"), t)], z)
    no_feed = flat_tariff()  # the new tariff prices RAIL no more
    out = decide(state, off("RAIL", "out-B1", stop="B1"), t + 10 * MIN, no_feed)
    assert (out.decision.approved, out.decision.amount) == (True, 0)
    assert rule(out, "tap_off_fare")["basis"] == "route_no_longer_priced"
