"""Pricing transit legs from the tariff's GTFS Fares v2 feed, one tap at a time.

This module owns the bridge between a tap and `policies.gtfs`: it resumes the card's journey
context (`TransitJourney`: the transfer state `extend_journey` needs, kept on the card between
taps), prices one leg with `extend_journey`, and turns the engine's refusals (`QuoteError`) into
decline reasons. A tap-in-only tap (`fare`) is a leg boarding and alighting at the tap's stop —
exact for feeds whose fares do not depend on the destination (C-TRAN, Maryland's Metro); the
maximum fare of a tap on is the dearest leg over one destination per distinct set of fare areas.

Because every leg goes through `extend_journey` on the context the previous leg left, a
journey charged tap by tap costs exactly what `quote_journey` gives for all its legs at once.
A context priced under another feed version or rider category is not continued: the leg starts
a new journey (and says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Final, NamedTuple

from policies import reasons
from policies.gtfs import errors as gtfs_errors
from policies.gtfs.errors import QuoteError
from policies.gtfs.model import FareFeed
from policies.gtfs.quote import JourneyQuote, JourneyState, price_leg_parts
from policies.transit_state import TransitJourney
from policies.transit_tariff import TransitRules

_REASON_OF: Final[Mapping[str, str]] = {
    gtfs_errors.UNKNOWN_ROUTE: reasons.UNKNOWN_ROUTE,
    gtfs_errors.UNKNOWN_STOP: reasons.UNKNOWN_STOP,
    gtfs_errors.UNKNOWN_CATEGORY: reasons.UNKNOWN_CATEGORY,
    gtfs_errors.UNKNOWN_FARE_MEDIA: reasons.NO_FARE_RULE,
    gtfs_errors.NO_FARE_RULE: reasons.NO_FARE_RULE,
    gtfs_errors.OUTSIDE_VALIDITY: reasons.OUTSIDE_VALIDITY,
    gtfs_errors.INVALID_LEG: reasons.OUTSIDE_VALIDITY,
}

_EMPTY: Final = JourneyState()
_tuple_new: Final = tuple.__new__


class Priced(NamedTuple):
    """One leg priced by the feed (before caps)."""

    amount: int
    product: str
    """The feed's fare product that priced the leg (or the feed pass that covered it)."""
    journey: TransitJourney
    """The context after this leg."""
    explain: tuple[Mapping[str, object], ...]


class Refused(NamedTuple):
    reason: str
    explain: tuple[Mapping[str, object], ...]


def resume(
    rules: TransitRules, context: TransitJourney | None, category: str | None
) -> tuple[JourneyQuote, Mapping[str, object] | None]:
    """The quote to extend with the next leg, and a step saying why a context was dropped."""
    feed = rules.feed
    assert feed is not None
    medium = rules.fare_media
    # The feed's default category stands in for None, as start_journey would do.
    gtfs_category = category if category is not None else feed.default_category
    note: Mapping[str, object] | None = None
    if context is not None:
        if context.feed_version != feed.version:
            note = {"rule": "journey_reset", "why": "feed_changed", "was": context.feed_version}
        elif context.category != gtfs_category:
            note = {"rule": "journey_reset", "why": "category_changed", "was": context.category}
        else:
            return (
                JourneyQuote(
                    feed.version, feed.currency, gtfs_category, medium, 0, (), context.state
                ),
                None,
            )
    return _fresh(feed, gtfs_category, medium), note


@lru_cache(maxsize=256)
def _fresh(feed: FareFeed, category: str | None, medium: str | None) -> JourneyQuote:
    """An empty journey (immutable, so one per feed, category and medium serves every card)."""
    return JourneyQuote(feed.version, feed.currency, category, medium, 0, (), _EMPTY)


def price(
    rules: TransitRules,
    context: TransitJourney | None,
    category: str | None,
    route: str,
    from_stop: str,
    to_stop: str,
    start_ms: int,
    end_ms: int | None = None,
) -> Priced | Refused:
    """The price of one leg on `route` after the journey `context`."""
    feed = rules.feed
    assert feed is not None
    # `resume` without building the quote: only its category and state are needed here.
    gtfs_category = category if category is not None else feed.default_category
    note: Mapping[str, object] | None = None
    journey_state = _EMPTY
    if context is not None:
        if context.feed_version != feed.version:
            note = {"rule": "journey_reset", "why": "feed_changed", "was": context.feed_version}
        elif context.category != gtfs_category:
            note = {"rule": "journey_reset", "why": "category_changed", "was": context.category}
        else:
            journey_state = context.state
    last = journey_state.last_start_ms
    if last is not None and start_ms < last:
        # Two gateway processes' clocks differ by a little: the leg is taken as starting when
        # the previous one did, never "before" it (the engine requires time order).
        if end_ms is not None and end_ms < last:
            end_ms = last
        start_ms = last
    try:
        leg, state = price_leg_parts(
            feed,
            gtfs_category,
            rules.fare_media,
            journey_state,
            route,
            from_stop,
            to_stop,
            start_ms,
            end_ms,
        )
    except QuoteError as exc:
        return Refused(
            _REASON_OF.get(exc.code, reasons.NO_FARE_RULE),
            (
                {
                    "rule": "gtfs_fare",
                    "feed": feed.version,
                    "error": exc.code,
                    "message": exc.reason[:200],
                },
            ),
        )
    step: dict[str, object] = {
        "rule": "gtfs_fare",
        "feed": feed.version,
        "route": route,
        "network": leg.network_id,
        "from_stop": from_stop,
        "to_stop": to_stop,
        "category": leg.rider_category_id,
        "fare_media": leg.fare_media_id,
        "product": leg.fare_product_id,
        "timeframe": leg.timeframe,
        "full_fare": leg.full_fare,
        "fare": leg.amount,
    }
    if leg.transfer is not None:
        t = leg.transfer
        step["transfer"] = {
            "rule": t.rule,
            "from_group": t.from_leg_group_id,
            "to_group": t.to_leg_group_id,
            "type": t.fare_transfer_type,
            "product": t.fare_product_id,
            "cost": t.cost,
            "number": t.transfer_number,
            "elapsed_ms": t.elapsed_ms,
        }
    if leg.pass_product_id is not None:
        step["feed_pass"] = leg.pass_product_id
    for detail in leg.explain:
        if "rule" in detail and "leg_group" in detail:
            step["leg_rule"] = detail["rule"]
            break
    explain: tuple[Mapping[str, object], ...] = (step,) if note is None else (note, step)
    # Priced built as the tuple it is (no NamedTuple __new__ frame on every tap).
    journey = TransitJourney(feed.version, gtfs_category, state)
    return _tuple_new(Priced, (leg.amount, leg.fare_product_id, journey, explain))


def price_max(
    rules: TransitRules,
    context: TransitJourney | None,
    category: str | None,
    route: str,
    from_stop: str,
    start_ms: int,
) -> Priced | Refused:
    """The dearest leg from `from_stop` on `route` over every destination that could differ."""
    best: Priced | None = None
    refused: Refused | None = None
    for to_stop in rules.max_fare_stops:
        priced = price(rules, context, category, route, from_stop, to_stop, start_ms)
        if isinstance(priced, Refused):
            if priced.reason in (
                reasons.UNKNOWN_STOP,
                reasons.UNKNOWN_ROUTE,
                reasons.OUTSIDE_VALIDITY,
                reasons.UNKNOWN_CATEGORY,
            ):
                return priced  # about the tap itself, the same for every destination
            refused = refused or priced
            continue
        if best is None or priced.amount > best.amount:
            best = priced
    if best is None:
        return refused or Refused(reasons.NO_FARE_RULE, ({"rule": "gtfs_fare", "stops": 0},))
    step = {"rule": "max_fare", "destinations": len(rules.max_fare_stops), "fare": best.amount}
    return Priced(best.amount, best.product, best.journey, (*best.explain, step))
