"""Property tests of the transit products over random journeys (hypothesis).

- money is conserved: balances move exactly by the decisions' amounts, and a clearing report
  that sums every charge and credit per operator equals what the cardholder paid;
- no cap is ever exceeded, per period, recomputed independently from the events;
- no fare is negative, and no credit gives back more than its tap on took;
- the same inputs give the same decision;
- a journey's fare never depends on how its legs were batched (tap by tap with the card stored
  and reloaded at random points equals the engine's quote of the whole journey);
- the calendar caches of the GTFS engine agree with plain `datetime` arithmetic.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import (
    BuyProduct,
    CardState,
    Command,
    FareCorrection,
    FareTap,
    Outcome,
    Purchase,
    TapOff,
    TapOn,
    Tariff,
    TopUp,
    decide,
    reasons,
)
from policies.caps import _monday
from policies.gtfs import quote_journey
from policies.gtfs.local_time import _groups_at as plain_groups
from policies.gtfs.local_time import local_day_and_time, month_of, timeframe_groups
from policies.gtfs.quote import Leg
from policies.model import EVENT_TYPES
from policies.transit_state import AutoTopup
from tests.policies.gtfs.helpers import CTRAN, feed
from tests.policies.transit_helpers import at, ctran_tariff, zonal_tariff

CAPS: list[dict[str, Any]] = [
    {"id": "day", "kind": "daily", "amount": 500},
    {"id": "week", "kind": "weekly", "category": "adult", "amount": 1_200},
    {"id": "7d", "kind": "rolling_7d", "amount": 1_400},
    {"id": "month", "kind": "monthly", "amount": 2_000},
]
PRODUCTS: dict[str, Any] = {
    "DAY": {"name": "day", "prices": {"adult": 500}, "duration": {"amount": 1, "unit": "days"}},
    "RAIL-2H": {
        "name": "rail 2 h",
        "prices": {"adult": 200},
        "networks": ["RAIL"],
        "duration": {"amount": 2, "unit": "hours"},
    },
}
CATS = {"adult": {"gtfs": "ADULT"}, "senior": {"gtfs": "HONORED_CITIZEN", "flat_percent": 50}}

TARIFFS = [
    ctran_tariff(
        caps=CAPS,
        products=PRODUCTS | {"RAIL-2H": {**PRODUCTS["RAIL-2H"], "networks": ["METRO"]}},
        negative_limit=300,
        tap_off_window_ms=3_600_000,
    ),
    zonal_tariff(
        caps=CAPS,
        products=PRODUCTS,
        categories={"adult": {}, "senior": {"flat_percent": 50}},
        negative_limit=0,
    ),
    ctran_tariff(categories=CATS),
]
START = at("2025-10-05T20:00")  # a Sunday evening: day, week and month edges come up
ROUTES = ("050", "002", "105", "060", "999")
STOPS = ("8126", "8111", "110", "nowhere")
ZONE_STOPS = ("A1", "A2", "B1", "C1")

ops = st.sampled_from(["op-a", "op-b", "op-c"])
gates = st.sampled_from(["g1", "g2", "g3"])


def commands_for(index: int) -> st.SearchStrategy[Command]:
    network = "RAIL" if index == 1 else "LOCAL"
    stops = ZONE_STOPS if index == 1 else STOPS
    route = st.none() if index == 1 else st.sampled_from(ROUTES)
    stop = st.one_of(st.none(), st.sampled_from(stops))
    nets = st.sampled_from([network, "METRO", "TRAM", "FERRY"])
    fare = st.builds(FareTap, gates, ops, nets, gates, route=route, stop=stop)
    tap_on = st.builds(TapOn, gates, ops, nets, gates, route=route, stop=stop)
    tap_off = st.builds(TapOff, gates, ops, nets, gates, route=route, stop=stop)
    return st.one_of(
        fare,
        fare,
        tap_on,
        tap_on,
        tap_off,
        tap_off,
        st.builds(TopUp, st.just("kiosk"), st.just("funding"), st.integers(-5, 3_000)),
        st.builds(Purchase, st.just("till"), st.just("shop"), st.integers(1, 900), st.just("m")),
        st.builds(BuyProduct, st.just("kiosk"), ops, st.sampled_from(["DAY", "RAIL-2H", "X"])),
        st.builds(
            FareCorrection,
            st.just("ops"),
            st.just("city-ops"),
            st.sampled_from(["J1", "J2", "J3", "J4"]),
            st.integers(-10, 600),
        ),
    )


steps_ms = st.one_of(
    st.integers(0, 120_000),
    st.integers(0, 6 * 3_600_000),
    st.sampled_from([0, 59_999, 60_000, 3_600_000, 86_400_000, 3 * 86_400_000]),
    st.integers(-30_000, 0),  # a gateway clock a little behind another's
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, CardState, list[tuple[Command, int]]]:
    index = draw(st.integers(0, len(TARIFFS) - 1))
    category = draw(st.sampled_from(["adult", "senior"]))
    until = draw(st.one_of(st.none(), st.integers(START, START + 5 * 86_400_000)))
    auto = draw(st.one_of(st.none(), st.just(AutoTopup(400, 1_000))))
    state = CardState(
        "card-p",
        draw(st.integers(0, 20_000)),
        "active",
        category,
        category_until_ms=until,
        auto_topup=auto,
    )
    now = START
    steps = []
    for command, step in draw(st.lists(st.tuples(commands_for(index), steps_ms), max_size=30)):
        now += step
        steps.append((command, now))
    return index, state, steps


@st.composite
def busy_riders(draw: st.DrawFn) -> tuple[int, CardState, list[tuple[Command, int]]]:
    """A rider with money who taps a lot: the caps bind, trips open and close."""
    index = draw(st.sampled_from([0, 1]))
    network = "RAIL" if index == 1 else "METRO"
    stops = st.sampled_from(ZONE_STOPS) if index == 1 else st.none()
    taps = st.one_of(
        st.builds(FareTap, gates, ops, st.just(network), gates, stop=stops),
        st.builds(TapOn, gates, ops, st.just(network), gates, stop=stops),
        st.builds(TapOff, gates, ops, st.just(network), gates, stop=stops),
        st.builds(
            FareCorrection,
            st.just("ops"),
            st.just("city-ops"),
            st.sampled_from(["J1", "J2", "J3"]),
            st.integers(0, 300),
        ),
    )
    gaps = st.one_of(st.integers(61_000, 3 * 3_600_000), st.sampled_from([86_400_000]))
    now = START
    steps = []
    for command, gap in draw(st.lists(st.tuples(taps, gaps), min_size=5, max_size=40)):
        now += gap
        steps.append((command, now))
    return index, CardState("card-busy", 100_000, "active", "adult"), steps


def play(
    state: CardState, steps: list[tuple[Command, int]], tariff: Tariff, reload: bool = True
) -> list[tuple[CardState, Outcome]]:
    trace = []
    for command, now in steps:
        out = decide(state, command, now, tariff)
        trace.append((state, out))
        assert out.state is not None
        state = out.state
        if reload:
            state = CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
            assert state == out.state
    return trace


FARE_EVENTS = {"fare_charged", "tap_on"}
CREDIT_EVENTS = {"tap_off", "fare_corrected"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(scenarios(), busy_riders()))
def test_outcomes_are_well_formed_and_money_is_conserved(
    scenario: tuple[int, CardState, list[tuple[Command, int]]],
) -> None:
    index, state, steps = scenario
    tariff = TARIFFS[index]
    trace = play(state, steps, tariff)
    loaded = 0
    clearing: Counter[str] = Counter()
    for before, out in trace:
        d = out.decision
        assert d.reason in reasons.REASONS and d.approved == (d.reason in reasons.APPROVING)
        assert d.tariff_version == tariff.version
        first, *rest = out.events
        assert first.type in EVENT_TYPES
        assert (first.amount, first.balance, first.reason) == (d.amount, d.balance, d.reason)
        assert all(e.amount == 0 and e.type == "auto_topup_requested" for e in rest)
        orjson.dumps(d.to_dict())
        for e in out.events:
            orjson.dumps(e.to_dict())
        assert out.state is not None
        assert out.state.balance - before.balance == -d.amount
        if not d.approved:
            assert out.state is before and d.amount == 0
        for e in out.events:
            if e.type == "topup":
                loaded += -e.amount
            elif e.amount:
                clearing[e.operator] += e.amount
        assert out.state.balance >= -tariff.transit.negative_limit
    final = trace[-1][1].state if trace else state
    assert final is not None
    # What the cardholder paid = opening balance + loaded - closing balance, and the clearing
    # report (every charge and credit, per operator) sums to exactly that.
    assert sum(clearing.values()) == state.balance + loaded - final.balance


@settings(max_examples=400, deadline=None)
@given(st.one_of(scenarios(), busy_riders()))
def test_no_cap_is_ever_exceeded_and_no_fare_is_negative(
    scenario: tuple[int, CardState, list[tuple[Command, int]]],
) -> None:
    index, state, steps = scenario
    tariff = TARIFFS[index]
    rules = tariff.transit
    trace = play(state, steps, tariff, reload=False)
    # Net transit spend per local day and month, credits taken back from their trip's charge.
    by_day: Counter[int] = Counter()
    by_month: Counter[int] = Counter()
    trip_day: dict[str, tuple[int, int, int]] = {}
    for _, out in trace:
        d = out.decision
        for progress in d.caps:
            assert 0 <= progress.spent <= max(progress.amount, 0)
        event = out.events[0]
        if not d.approved:
            continue
        if event.type in FARE_EVENTS:
            assert event.amount >= 0
            assert rules.zone is not None
            day, _ = local_day_and_time(rules.zone, event.time_ms)
            month = month_of(day)
            by_day[day] += event.amount
            by_month[month] += event.amount
            if event.type == "tap_on":
                assert event.detail is not None
                trip_day[str(event.detail["journey"])] = (day, month, event.amount)
        elif event.type in CREDIT_EVENTS:
            assert event.amount <= 0
            assert event.detail is not None
            day, month, charged = trip_day[str(event.detail["journey"])]
            assert -event.amount <= charged
            trip_day[str(event.detail["journey"])] = (day, month, charged + event.amount)
            by_day[day] += event.amount
            by_month[month] += event.amount
        assert d.amount >= 0 or event.type in CREDIT_EVENTS | {"topup"}
    if not rules.caps:
        return
    caps = {c.cap_id: c for c in rules.caps}
    categories = {state.category, rules.default_category}
    for cap in caps.values():
        if cap.category is not None and cap.category not in categories:
            continue
        if len(categories) > 1 and cap.category is not None:
            continue  # the category changed mid-run: a category-specific cap bound only part
        if cap.kind == "daily":
            totals = list(by_day.values())
        elif cap.kind == "monthly":
            totals = list(by_month.values())
        elif cap.kind == "weekly":
            weeks: Counter[int] = Counter()
            for day, amount in by_day.items():
                weeks[_monday(day)] += amount
            totals = list(weeks.values())
        else:
            totals = [sum(a for d2, a in by_day.items() if day - 6 <= d2 <= day) for day in by_day]
        assert all(total <= cap.amount for total in totals), (cap, totals)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_the_same_inputs_give_the_same_decision(
    scenario: tuple[int, CardState, list[tuple[Command, int]]],
) -> None:
    index, state, steps = scenario
    a = play(state, steps, TARIFFS[index], reload=False)
    b = play(state, steps, TARIFFS[index], reload=True)
    assert [out for _, out in a] == [out for _, out in b]


legs = st.lists(
    st.tuples(
        st.sampled_from(["050", "002", "105", "060", "190"]),
        st.sampled_from(["8126", "8111", "110"]),
        st.integers(0, 4 * 3_600_000),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    legs,
    st.sampled_from(["adult", "senior", "student"]),
    st.sampled_from(["2025-10-06T06:30", "2025-10-07T13:00", "2025-12-31T16:00"]),
)
def test_a_journeys_fare_does_not_depend_on_how_its_legs_were_batched(
    raw: list[tuple[str, str, int, bool]], category: str, start: str
) -> None:
    tariff = ctran_tariff()
    gtfs = {"adult": "ADULT", "senior": "HONORED_CITIZEN", "student": "YOUTH"}[category]
    now = at(start)
    state = CardState("card-b", 1_000_000, "active", category)
    charged: list[int] = []
    journey: list[Leg] = []
    for i, (route, stop, gap, reload) in enumerate(raw):
        now += gap + 61_000  # past the double-tap window
        out = decide(
            state,
            FareTap(f"bus-{i}", "ctran", "LOCAL", f"bus-{i}", route=route, stop=stop),
            now,
            tariff,
        )
        if not out.decision.approved:
            # C-TRAN's timeframes leave gaps (08:59-09:00, 14:59-15:00, 23:59-24:00): no fare
            # rule there, the tap is declined and is no leg of the journey.
            assert out.decision.reason == reasons.NO_FARE_RULE, out.decision
            continue
        charged.append(out.decision.amount)
        journey.append(Leg(route, stop, stop, now))
        assert out.state is not None
        state = out.state
        if reload:
            state = CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    whole = quote_journey(feed(CTRAN), journey, rider_category=gtfs, fare_media="2")
    assert charged == [leg.amount for leg in whole.legs]
    # ... and in two batches: the second one continuing the first's state.
    cut = len(journey) // 2
    from policies.gtfs import extend_journey

    first = quote_journey(feed(CTRAN), journey[:cut], rider_category=gtfs, fare_media="2")
    for leg in journey[cut:]:
        first = extend_journey(feed(CTRAN), first, leg)
    assert first.total == whole.total == sum(charged)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(-(2**40), 2**42),
    st.sampled_from(["America/Los_Angeles", "Europe/Berlin", "Australia/Lord_Howe", "UTC"]),
)
def test_cached_local_time_matches_datetime(ms: int, zone_name: str) -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    t = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).astimezone(zone)
    expected = (
        t.toordinal(),
        ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000,
    )
    assert local_day_and_time(zone, ms) == expected
    assert month_of(t.toordinal()) == t.year * 12 + t.month - 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 130), st.integers(0, 86_400_000 - 1))
def test_timeframe_table_matches_the_rules(day_offset: int, ms_of_day: int) -> None:
    f = feed(CTRAN)
    day = datetime(2025, 9, 10).toordinal() + day_offset
    assert timeframe_groups(f, day, ms_of_day) == plain_groups(f, day, ms_of_day)


def test_clearing_report_by_operator_example() -> None:
    # A worked example of settlement attribution: a zonal tap on (450 to rail-op), its tap off
    # (150 back, from rail-op), a pass sale (500 to the kiosk's operator), a top-up.
    from tests.policies.transit_helpers import BERLIN

    tariff = zonal_tariff(products=PRODUCTS)
    t = at("2025-10-06T08:00", BERLIN)
    steps: list[tuple[Command, int]] = [
        (TopUp("kiosk", "funding", 2_000), t),
        (TapOn("in", "rail-op", "RAIL", "in", stop="A1"), t + 1),
        (TapOff("out", "station-co", "RAIL", "out", stop="B1"), t + 600_000),
        (BuyProduct("kiosk", "kiosk-op", "DAY"), t + 700_000),
    ]
    trace = play(CardState("c", 0, "active"), steps, tariff)
    clearing: defaultdict[str, int] = defaultdict(int)
    for _, out in trace:
        for e in out.events:
            if e.type != "topup":
                clearing[e.operator] += e.amount
    assert dict(clearing) == {"rail-op": 300, "kiosk-op": 500}
    final = trace[-1][1].state
    assert final is not None and final.balance == 2_000 - 800


odd_text = st.one_of(st.text(max_size=70), st.sampled_from(["", "J1", "METRO", "LOCAL", "A1"]))
odd_ids = st.one_of(st.none(), odd_text)
odd_amounts: st.SearchStrategy[object] = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([True, 1.5, None, "100"])
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(TARIFFS) - 1),
    st.one_of(
        st.builds(FareTap, odd_text, odd_text, odd_text, odd_text, route=odd_ids, stop=odd_ids),
        st.builds(TapOn, odd_text, odd_text, odd_text, odd_text, route=odd_ids, stop=odd_ids),
        st.builds(TapOff, odd_text, odd_text, odd_text, odd_text, route=odd_ids, stop=odd_ids),
        st.builds(BuyProduct, odd_text, odd_text, odd_text),
        st.builds(FareCorrection, odd_text, odd_text, odd_text, odd_amounts),
    ),
    st.integers(-(2**63), 2**63 - 1),
)
def test_odd_input_never_raises(index: int, command: Command, now: int) -> None:
    # A card in the middle of a trip, holding a product, with spend on the caps.
    tariff = TARIFFS[index]
    state = CardState("card-o", 1_000, "active", "adult")
    prior = [
        (BuyProduct("k", "o", "DAY"), START),
        (TapOn("g", "o", "RAIL" if index == 1 else "METRO", "g", stop="A1"), START + 1),
    ]
    for cmd, t in prior:
        out = decide(state, cmd, t, tariff)
        assert out.state is not None
        state = out.state
    out = decide(state, command, now, tariff)
    orjson.dumps(out.decision.to_dict())
    for e in out.events:
        orjson.dumps(e.to_dict())
    if not out.decision.approved:
        assert out.state is state


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.lists(st.integers(0, len(TARIFFS)), min_size=30, max_size=30))
def test_tariff_reloads_between_taps_never_break_a_card(
    scenario: tuple[int, CardState, list[tuple[Command, int]]], picks: list[int]
) -> None:
    # Each tap is decided under one of the tariffs (or a flat-only one): a reload between a
    # tap on and its tap off, a feed replaced or dropped, must decline or price, never raise.
    from tests.policies.transit_helpers import flat_tariff

    tariffs = [*TARIFFS, flat_tariff()]
    _, state, steps = scenario
    for (command, now), pick in zip(steps, picks, strict=False):
        tariff = tariffs[pick]
        out = decide(state, command, now, tariff)
        assert out.decision.tariff_version == tariff.version
        assert out.state is not None
        assert out.state.balance - state.balance == -out.decision.amount
        state = CardState.from_dict(orjson.loads(orjson.dumps(out.state.to_dict())))
