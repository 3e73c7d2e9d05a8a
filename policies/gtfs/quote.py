"""`quote_journey`: the price of a sequence of legs under a `FareFeed`, leg by leg, with reasons.

This module owns the journey: legs in, one `LegQuote` per leg out, each priced once and never
revised by a later leg (so a gateway can charge tap by tap: `extend_journey` on the previous
quote gives exactly what `quote_journey` gives for the whole list). Per leg it resolves the
network and areas, the local date and timeframes, matches leg rules (legs.py), then either
continues the sub-journey through a transfer rule (transfers.py), uses a pass the journey
already bought (a product with a duration, e.g. a 1-day pass, covers legs it matches until it
expires), or charges the leg's own fare. Amounts are `int` minor units and never negative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from policies._slots import slot_setters
from policies.gtfs import errors
from policies.gtfs.errors import QuoteError
from policies.gtfs.legs import match_and_price
from policies.gtfs.local_time import local_day_and_time, pass_end_ms, timeframe_groups
from policies.gtfs.model import FareFeed
from policies.gtfs.transfers import SubJourney, TransferChoice, find_transfer

_NO_AREAS: Final[frozenset[str]] = frozenset()

MAX_HELD_PASSES: Final = 8
"""Passes a journey remembers; the oldest are forgotten first (a bound on the state's size)."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One ride: boarding `route_id` at `from_stop_id`, alighting at `to_stop_id`.

    Times are UTC epoch milliseconds; `end_ms` None means the arrival is not known (tap-in only
    systems), in which case rules and limits that need it use the departure."""

    route_id: str
    from_stop_id: str
    to_stop_id: str
    start_ms: int
    end_ms: int | None = None


@dataclass(frozen=True, slots=True, init=False)
class AppliedTransfer:
    rule: str
    from_leg_group_id: str
    to_leg_group_id: str
    fare_transfer_type: int
    fare_product_id: str | None
    cost: int
    transfer_number: int
    elapsed_ms: int

    def __init__(
        self,
        rule: str,
        from_leg_group_id: str,
        to_leg_group_id: str,
        fare_transfer_type: int,
        fare_product_id: str | None,
        cost: int,
        transfer_number: int,
        elapsed_ms: int,
    ) -> None:
        _APPLIED_TRANSFER[0](self, rule)
        _APPLIED_TRANSFER[1](self, from_leg_group_id)
        _APPLIED_TRANSFER[2](self, to_leg_group_id)
        _APPLIED_TRANSFER[3](self, fare_transfer_type)
        _APPLIED_TRANSFER[4](self, fare_product_id)
        _APPLIED_TRANSFER[5](self, cost)
        _APPLIED_TRANSFER[6](self, transfer_number)
        _APPLIED_TRANSFER[7](self, elapsed_ms)

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "from_leg_group_id": self.from_leg_group_id,
            "to_leg_group_id": self.to_leg_group_id,
            "fare_transfer_type": self.fare_transfer_type,
            "fare_product_id": self.fare_product_id,
            "cost": self.cost,
            "transfer_number": self.transfer_number,
            "elapsed_ms": self.elapsed_ms,
        }


_APPLIED_TRANSFER = slot_setters(AppliedTransfer)


@dataclass(frozen=True, slots=True, init=False)
class LegQuote:
    """What one leg costs and why."""

    route_id: str
    network_id: str | None
    leg_group_id: str | None
    timeframe: str | None
    """The matched rule's from_timeframe_group_id (None: the rule does not depend on time)."""
    fare_product_id: str
    """The leg's own product (the matched leg rule's), or the pass that covered it."""
    rider_category_id: str | None
    """The category whose offer priced the leg (the default one after a fallback)."""
    fare_media_id: str | None
    full_fare: int
    """The leg's own fare, what it costs without a transfer or pass."""
    amount: int
    """What this leg is charged."""
    transfer: AppliedTransfer | None
    pass_product_id: str | None
    """Set when a pass bought earlier in the journey covered this leg."""
    explain: tuple[Mapping[str, object], ...]

    def __init__(
        self,
        route_id: str,
        network_id: str | None,
        leg_group_id: str | None,
        timeframe: str | None,
        fare_product_id: str,
        rider_category_id: str | None,
        fare_media_id: str | None,
        full_fare: int,
        amount: int,
        transfer: AppliedTransfer | None,
        pass_product_id: str | None,
        explain: tuple[Mapping[str, object], ...],
    ) -> None:
        _LEG_QUOTE[0](self, route_id)
        _LEG_QUOTE[1](self, network_id)
        _LEG_QUOTE[2](self, leg_group_id)
        _LEG_QUOTE[3](self, timeframe)
        _LEG_QUOTE[4](self, fare_product_id)
        _LEG_QUOTE[5](self, rider_category_id)
        _LEG_QUOTE[6](self, fare_media_id)
        _LEG_QUOTE[7](self, full_fare)
        _LEG_QUOTE[8](self, amount)
        _LEG_QUOTE[9](self, transfer)
        _LEG_QUOTE[10](self, pass_product_id)
        _LEG_QUOTE[11](self, explain)

    def to_dict(self) -> dict[str, object]:
        return {
            "route_id": self.route_id,
            "network_id": self.network_id,
            "leg_group_id": self.leg_group_id,
            "timeframe": self.timeframe,
            "fare_product_id": self.fare_product_id,
            "rider_category_id": self.rider_category_id,
            "fare_media_id": self.fare_media_id,
            "full_fare": self.full_fare,
            "amount": self.amount,
            "transfer": None if self.transfer is None else self.transfer.to_dict(),
            "pass_product_id": self.pass_product_id,
            "explain": [dict(step) for step in self.explain],
        }


_LEG_QUOTE = slot_setters(LegQuote)


@dataclass(frozen=True, slots=True)
class HeldPass:
    fare_product_id: str
    valid_from_ms: int
    valid_until_ms: int
    """Exclusive."""


@dataclass(frozen=True, slots=True, init=False)
class JourneyState:
    """What the next leg's price depends on: the open sub-journey and the passes held."""

    last_start_ms: int | None = None
    sub: SubJourney | None = None
    passes: tuple[HeldPass, ...] = ()

    def __init__(
        self,
        last_start_ms: int | None = None,
        sub: SubJourney | None = None,
        passes: tuple[HeldPass, ...] = (),
    ) -> None:
        _JOURNEY_STATE[0](self, last_start_ms)
        _JOURNEY_STATE[1](self, sub)
        _JOURNEY_STATE[2](self, passes)


_JOURNEY_STATE = slot_setters(JourneyState)


@dataclass(frozen=True, slots=True)
class JourneyQuote:
    feed_version: str
    currency: str
    rider_category: str | None
    """The category asked for, or the feed's default when none was given."""
    fare_media: str | None
    total: int
    legs: tuple[LegQuote, ...]
    state: JourneyState

    def to_dict(self) -> dict[str, object]:
        return {
            "feed_version": self.feed_version,
            "currency": self.currency,
            "rider_category": self.rider_category,
            "fare_media": self.fare_media,
            "total": self.total,
            "legs": [leg.to_dict() for leg in self.legs],
        }


def start_journey(
    feed: FareFeed, *, rider_category: str | None, fare_media: str | None
) -> JourneyQuote:
    """An empty journey for a rider: checks the category and medium against the feed."""
    if rider_category is not None and rider_category not in feed.rider_categories:
        raise QuoteError(
            errors.UNKNOWN_CATEGORY, f"rider category {rider_category!r} is not in the feed"
        )
    if fare_media is not None and fare_media not in feed.fare_media:
        raise QuoteError(
            errors.UNKNOWN_FARE_MEDIA, f"fare medium {fare_media!r} is not in the feed"
        )
    category = rider_category if rider_category is not None else feed.default_category
    return JourneyQuote(feed.version, feed.currency, category, fare_media, 0, (), JourneyState())


def quote_journey(
    feed: FareFeed,
    legs: Sequence[Leg],
    *,
    rider_category: str | None,
    fare_media: str | None,
) -> JourneyQuote:
    """Price `legs` (in time order) for a rider. Raises `QuoteError` with a reason code."""
    quote = start_journey(feed, rider_category=rider_category, fare_media=fare_media)
    for leg in legs:
        quote = extend_journey(feed, quote, leg)
    return quote


def extend_journey(feed: FareFeed, quote: JourneyQuote, leg: Leg) -> JourneyQuote:
    """`quote` with one more leg priced; the earlier legs' amounts are never changed."""
    leg_quote, state = price_next_leg(feed, quote, leg)
    return JourneyQuote(
        quote.feed_version,
        quote.currency,
        quote.rider_category,
        quote.fare_media,
        quote.total + leg_quote.amount,
        (*quote.legs, leg_quote),
        state,
    )


def price_next_leg(
    feed: FareFeed, quote: JourneyQuote, leg: Leg
) -> tuple[LegQuote, JourneyState]:
    """The price of `leg` after `quote`, and the journey state after it: the one step of
    `extend_journey`, for a caller that keeps only the state between legs (a gateway charging
    tap by tap stores `JourneyState`, not the legs). Raises `QuoteError`."""
    return _price(feed, quote, leg, len(quote.legs))


def _check_leg(feed: FareFeed, quote: JourneyQuote, leg: Leg, i: int) -> tuple[int, int, int]:
    """(start day, start ms of day, end ms) of a leg, or the QuoteError that refuses it."""
    return _check(
        feed, quote.state, leg.route_id, leg.from_stop_id, leg.to_stop_id, leg.start_ms,
        leg.end_ms, i,
    )


def _check(
    feed: FareFeed,
    state: JourneyState,
    route_id: str,
    from_stop_id: str,
    to_stop_id: str,
    start: int,
    end: int | None,
    i: int,
) -> tuple[int, int, int]:
    if isinstance(start, bool) or not isinstance(start, int):
        raise QuoteError(errors.INVALID_LEG, "start_ms must be an int", leg_index=i)
    if end is not None and (isinstance(end, bool) or not isinstance(end, int) or end < start):
        raise QuoteError(errors.INVALID_LEG, "end_ms must be an int >= start_ms", leg_index=i)
    last = state.last_start_ms
    if last is not None and start < last:
        raise QuoteError(errors.INVALID_LEG, "legs must be in time order", leg_index=i)
    if route_id not in feed.route_network:
        raise QuoteError(errors.UNKNOWN_ROUTE, f"route {route_id!r}", leg_index=i)
    for stop in (from_stop_id, to_stop_id):
        if stop not in feed.stops:
            raise QuoteError(errors.UNKNOWN_STOP, f"stop {stop!r}", leg_index=i)
    try:
        day, ms_of_day = local_day_and_time(feed.zone, start)
        if end is not None:
            local_day_and_time(feed.zone, end)
    except (OverflowError, ValueError):
        raise QuoteError(errors.INVALID_LEG, "time out of range", leg_index=i) from None
    if (feed.valid_from is not None and day < feed.valid_from) or (
        feed.valid_to is not None and day > feed.valid_to
    ):
        first, last_day = feed.validity()
        raise QuoteError(
            errors.OUTSIDE_VALIDITY,
            f"the leg's local date is outside the feed's validity {first}..{last_day}",
            leg_index=i,
        )
    return day, ms_of_day, start if end is None else end


def _price(feed: FareFeed, quote: JourneyQuote, leg: Leg, i: int) -> tuple[LegQuote, JourneyState]:
    return price_leg_parts(
        feed,
        quote.rider_category,
        quote.fare_media,
        quote.state,
        leg.route_id,
        leg.from_stop_id,
        leg.to_stop_id,
        leg.start_ms,
        leg.end_ms,
        i,
    )


def price_leg_parts(
    feed: FareFeed,
    category: str | None,
    medium: str | None,
    state: JourneyState,
    route_id: str,
    from_stop_id: str,
    to_stop_id: str,
    start_ms: int,
    end_ms_or_none: int | None,
    i: int = 0,
) -> tuple[LegQuote, JourneyState]:
    """`price_next_leg` on the parts of the quote and leg, without building either (the hot
    path of a tap: the quote's category, medium and state, the leg's route, stops and times;
    `i` is the leg's index for errors, `len(quote.legs)`)."""
    day, ms_of_day, end_ms = _check(
        feed, state, route_id, from_stop_id, to_stop_id, start_ms, end_ms_or_none, i
    )
    network = feed.route_network[route_id]
    from_groups = timeframe_groups(feed, day, ms_of_day) if feed.timeframes else frozenset()
    to_groups = from_groups
    if feed.timeframes and end_ms != start_ms:
        to_groups = timeframe_groups(feed, *local_day_and_time(feed.zone, end_ms))
    rules, priced = match_and_price(
        feed,
        network,
        feed.stop_areas.get(from_stop_id, _NO_AREAS),
        feed.stop_areas.get(to_stop_id, _NO_AREAS),
        from_groups,
        to_groups,
        category,
        medium,
    )
    if not rules:
        where = f"network {network!r}, timeframes {sorted(from_groups)}"
        raise QuoteError(
            errors.NO_FARE_RULE, f"no fare_leg_rules row matches ({where})", leg_index=i
        )
    if priced is None:
        products = sorted({r.fare_product_id for r in rules})
        raise QuoteError(
            errors.NO_FARE_RULE,
            f"none of {products} is offered to category {category!r} with medium {medium!r}",
            leg_index=i,
        )
    rule, offer = priced.rule, priced.offer
    full_fare = max(0, offer.amount)
    explain: list[Mapping[str, object]] = [
        {
            "rule": rule.ref,
            "leg_group": rule.leg_group_id,
            "product": rule.fare_product_id,
            "offer": f"fare_products.txt line {offer.line}",
            "fare": full_fare,
        }
    ]
    if priced.fallback_category is not None:
        explain.append({"category_fallback": priced.fallback_category})

    transfer: TransferChoice | None = None
    if state.sub is not None:
        transfer = find_transfer(
            feed, state.sub, rule.leg_group_id, start_ms, end_ms, full_fare, category, medium
        )
    held: HeldPass | None = None
    passes: tuple[HeldPass, ...] = ()
    if state.passes:
        passes = tuple(p for p in state.passes if p.valid_until_ms > start_ms)
        rule_products = {r.fare_product_id for r in rules}
        held = next(
            (
                p
                for p in passes
                if p.fare_product_id in rule_products and p.valid_from_ms <= start_ms
            ),
            None,
        )
    applied: AppliedTransfer | None = None
    pass_used: str | None = None
    if transfer is not None and state.sub is not None and (held is None or transfer.amount == 0):
        amount = transfer.amount
        t_rule, previous = transfer.rule, state.sub
        t_ref, t_type, t_product = t_rule.ref, t_rule.fare_transfer_type, t_rule.fare_product_id
        cost, number = transfer.cost, transfer.transfer_number
        applied = AppliedTransfer(
            t_ref,
            previous.last_group or "",
            rule.leg_group_id or "",
            t_type,
            t_product,
            cost,
            number,
            transfer.elapsed_ms,
        )
        explain.append(
            {
                "transfer": t_ref,
                "type": t_type,
                "product": t_product,
                "cost": cost,
                "number": number,
            }
        )
        sub = SubJourney(
            previous.first_start_ms, previous.first_end_ms, number, rule.leg_group_id, amount
        )
    else:
        if held is not None:
            amount = 0
            pass_used = held.fare_product_id
            explain.append({"pass": held.fare_product_id, "valid_until_ms": held.valid_until_ms})
        else:
            amount = full_fare
            if offer.duration is not None:
                until = pass_end_ms(feed.zone, start_ms, offer.duration)
                passes = (*passes, HeldPass(rule.fare_product_id, start_ms, until))
                passes = passes[-MAX_HELD_PASSES:]
                explain.append({"pass_bought": rule.fare_product_id, "valid_until_ms": until})
        sub = SubJourney(start_ms, end_ms, 0, rule.leg_group_id, amount)
    leg_quote = LegQuote(  # positional, in field order (the hot path: no keyword matching)
        route_id,  # route_id
        network,  # network_id
        rule.leg_group_id,  # leg_group_id
        rule.from_timeframe_group_id,  # timeframe
        pass_used or rule.fare_product_id,  # fare_product_id
        offer.rider_category_id or priced.fallback_category or category,  # rider_category_id
        offer.fare_media_id,  # fare_media_id
        full_fare,  # full_fare
        amount,  # amount
        applied,  # transfer
        pass_used,  # pass_product_id
        tuple(explain),  # explain
    )
    return leg_quote, JourneyState(start_ms, sub, passes)
