"""Properties of quoting, on random journeys over both real feeds.

No fare is negative; equal inputs give equal quotes; a total is the sum of its legs; and pricing
leg by leg (`extend_journey`, what a gateway does tap by tap) gives exactly the quote of the
whole journey, for every prefix. Gaps between legs cluster around the feeds' transfer windows
(5400 s, 9000 s) so window edges come up often.
"""

from __future__ import annotations

from datetime import date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.gtfs import (
    FareFeed,
    JourneyQuote,
    Leg,
    QuoteError,
    extend_journey,
    parse_feed,
    quote_journey,
    start_journey,
)
from tests.policies.gtfs.helpers import CTRAN, MDOT, feed, feed_files

FEEDS = {CTRAN: feed(CTRAN), MDOT: feed(MDOT)}
REPARSED = {name: parse_feed(feed_files(name), name=name) for name in FEEDS}
"""The same files parsed a second time: equal inputs must price equally across parses too."""
Journey = tuple[FareFeed, list[Leg], str | None, str | None]

gaps_s = st.one_of(
    st.integers(0, 4 * 3600),
    st.sampled_from([0, 5399, 5400, 5401, 8999, 9000, 9001, 86_400]),
)


@st.composite
def journeys(draw: st.DrawFn) -> Journey:
    f = FEEDS[draw(st.sampled_from(sorted(FEEDS)))]
    assert f.valid_from is not None and f.valid_to is not None
    routes = sorted(f.route_network)
    stops = sorted(f.stops)[:5]
    category = draw(st.sampled_from([None, *sorted(f.rider_categories)]))
    medium = draw(st.sampled_from([None, *sorted(f.fare_media)]))
    day = date.fromordinal(draw(st.integers(f.valid_from, f.valid_to)))
    midnight = datetime(day.year, day.month, day.day, tzinfo=f.zone)
    t = int(midnight.timestamp()) * 1000 + draw(st.integers(0, 86_399)) * 1000
    legs: list[Leg] = []
    for i in range(draw(st.integers(1, 4))):
        if i:
            t += draw(gaps_s) * 1000
        ride = draw(st.none() | st.integers(0, 5400))
        end = None if ride is None else t + ride * 1000
        route = draw(st.sampled_from(routes))
        frm, to = draw(st.sampled_from(stops)), draw(st.sampled_from(stops))
        legs.append(Leg(route, frm, to, t, end))
    return f, legs, category, medium


def _quote(f: FareFeed, legs: list[Leg], cat: str | None, med: str | None) -> JourneyQuote | str:
    try:
        return quote_journey(f, legs, rider_category=cat, fare_media=med)
    except QuoteError as exc:
        return f"{exc.code}@{exc.leg_index}"


@settings(max_examples=300, deadline=None)
@given(journeys())
def test_no_fare_is_negative_and_total_is_the_sum(j: Journey) -> None:
    q = _quote(*j)
    if isinstance(q, str):
        return
    assert all(lq.amount >= 0 and lq.full_fare >= 0 for lq in q.legs)
    assert q.total == sum(lq.amount for lq in q.legs) >= 0
    assert len(q.legs) == len(j[1])


@settings(max_examples=150, deadline=None)
@given(journeys())
def test_same_inputs_same_quote(j: Journey) -> None:
    f, legs, cat, med = j
    first, second = _quote(f, legs, cat, med), _quote(REPARSED[f.name], list(legs), cat, med)
    assert first == second
    if not isinstance(first, str):
        assert not isinstance(second, str)
        assert first.to_dict() == second.to_dict()


@settings(max_examples=300, deadline=None)
@given(journeys())
def test_leg_by_leg_equals_at_once(j: Journey) -> None:
    f, legs, cat, med = j
    whole = _quote(f, legs, cat, med)
    try:
        running = start_journey(f, rider_category=cat, fare_media=med)
        for k, leg in enumerate(legs):
            running = extend_journey(f, running, leg)
            assert running == quote_journey(f, legs[: k + 1], rider_category=cat, fare_media=med)
    except QuoteError as exc:
        # The whole journey fails on the same leg, for the same reason.
        assert whole == f"{exc.code}@{exc.leg_index}"
        return
    assert running == whole
    # Each prefix's legs are the whole journey's first legs: nothing is re-priced later.
    for k in range(len(legs)):
        prefix = quote_journey(f, legs[: k + 1], rider_category=cat, fare_media=med)
        assert prefix.legs == whole.legs[: k + 1]
        assert prefix.total == sum(lq.amount for lq in whole.legs[: k + 1])
