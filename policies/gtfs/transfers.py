"""Applying fare_transfer_rules.txt between a sub-journey and the next leg.

This module owns the transfer half of the spec:

- from/to_leg_group_id: exact match, else empty matches the groups no rule names.
- transfer_count: -1 (or empty) is no limit; n allows the rule for the first n transfers of the
  sub-journey; among rules that allow this transfer the smallest count is selected (the spec).
- duration_limit: measured from the FIRST leg of the sub-journey (the leg paid in full) to the
  next leg, ends chosen by duration_limit_type (0 departure->arrival, 1 departure->departure,
  2 arrival->departure, 3 arrival->arrival); a leg without an arrival time uses its departure.
  The limit is inclusive. Measuring from the first leg (not the previous one) is this engine's
  reading: it is what "2 1/2 hour" tickets mean and it keeps -1 counts from chaining for ever.
- fare_transfer_type: 0 the next leg costs the transfer product (A + AB), 1 the transfer product
  plus its own fare (A + AB + B), 2 the transfer product less what the previous leg was charged
  (AB in total; never a refund). No fare_product_id means the transfer costs 0.
- A rule whose product has no offer for the rider (category, medium, default fallback) does not
  apply. Several applicable rules: the cheapest next leg wins, then file order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from policies._slots import slot_setters
from policies.gtfs.legs import cheapest_offer_of, field_matches
from policies.gtfs.model import (
    ARRIVAL_TO_ARRIVAL,
    ARRIVAL_TO_DEPARTURE,
    DEPARTURE_TO_ARRIVAL,
    FROM_LEG_PLUS_TRANSFER,
    FROM_LEG_PLUS_TRANSFER_PLUS_TO_LEG,
    FareFeed,
    Offer,
    TransferRule,
)


@dataclass(frozen=True, slots=True, init=False)
class SubJourney:
    """The legs linked by transfers so far: when it began, how many transfers, the last leg."""

    first_start_ms: int
    first_end_ms: int
    transfers: int
    last_group: str | None
    last_amount: int

    def __init__(
        self,
        first_start_ms: int,
        first_end_ms: int,
        transfers: int,
        last_group: str | None,
        last_amount: int,
    ) -> None:
        _SUB_JOURNEY[0](self, first_start_ms)
        _SUB_JOURNEY[1](self, first_end_ms)
        _SUB_JOURNEY[2](self, transfers)
        _SUB_JOURNEY[3](self, last_group)
        _SUB_JOURNEY[4](self, last_amount)


_SUB_JOURNEY = slot_setters(SubJourney)


@dataclass(frozen=True, slots=True, init=False)
class TransferChoice:
    rule: TransferRule
    offer: Offer | None
    cost: int
    """The transfer product's amount (0 without a product)."""
    amount: int
    """What the next leg is charged, never below 0."""
    elapsed_ms: int
    transfer_number: int
    fallback_category: str | None

    def __init__(
        self,
        rule: TransferRule,
        offer: Offer | None,
        cost: int,
        amount: int,
        elapsed_ms: int,
        transfer_number: int,
        fallback_category: str | None,
    ) -> None:
        _TRANSFER_CHOICE[0](self, rule)
        _TRANSFER_CHOICE[1](self, offer)
        _TRANSFER_CHOICE[2](self, cost)
        _TRANSFER_CHOICE[3](self, amount)
        _TRANSFER_CHOICE[4](self, elapsed_ms)
        _TRANSFER_CHOICE[5](self, transfer_number)
        _TRANSFER_CHOICE[6](self, fallback_category)


_TRANSFER_CHOICE = slot_setters(TransferChoice)


def elapsed_ms(rule_type: int | None, sub: SubJourney, start_ms: int, end_ms: int) -> int:
    if rule_type == DEPARTURE_TO_ARRIVAL:
        return end_ms - sub.first_start_ms
    if rule_type == ARRIVAL_TO_DEPARTURE:
        return start_ms - sub.first_end_ms
    if rule_type == ARRIVAL_TO_ARRIVAL:
        return end_ms - sub.first_end_ms
    return start_ms - sub.first_start_ms


def _count_key(rule: TransferRule) -> float:
    return float("inf") if rule.transfer_count in (None, -1) else float(rule.transfer_count or 0)


def find_transfer(
    feed: FareFeed,
    sub: SubJourney,
    to_group: str | None,
    start_ms: int,
    end_ms: int,
    full_fare: int,
    category: str | None,
    medium: str | None,
) -> TransferChoice | None:
    """The transfer that prices the next leg (in group `to_group`), or None: it pays in full."""
    if sub.last_group is None or to_group is None:
        return None
    number = sub.transfers + 1
    # One pass: among the rules that allow this transfer (count and duration), only those with
    # the smallest count_key compete (the spec), offered ones only; the cheapest next leg wins,
    # then file order. A smaller count_key seen later drops what was chosen so far.
    smallest: float | None = None
    best: TransferChoice | None = None
    for priced in _priced_rules(feed, sub.last_group, to_group, category, medium):
        key = priced.count_key
        if number > key:
            continue
        rule = priced.rule
        # elapsed_ms, inlined (this loop runs for every transfer rule between the two groups).
        kind = rule.duration_limit_type
        if kind == DEPARTURE_TO_ARRIVAL:
            elapsed = end_ms - sub.first_start_ms
        elif kind == ARRIVAL_TO_DEPARTURE:
            elapsed = start_ms - sub.first_end_ms
        elif kind == ARRIVAL_TO_ARRIVAL:
            elapsed = end_ms - sub.first_end_ms
        else:
            elapsed = start_ms - sub.first_start_ms
        if rule.duration_limit_s is not None and elapsed > rule.duration_limit_s * 1000:
            continue
        if smallest is None or key < smallest:
            smallest = key
            best = None
        elif key != smallest:
            continue
        if not priced.offered:
            continue
        offer, cost = priced.offer, priced.cost
        if rule.fare_transfer_type == FROM_LEG_PLUS_TRANSFER:
            amount = cost
        elif rule.fare_transfer_type == FROM_LEG_PLUS_TRANSFER_PLUS_TO_LEG:
            amount = cost + full_fare
        else:
            amount = cost - sub.last_amount
        amount = max(0, amount)
        if best is None or amount < best.amount:
            best = TransferChoice(rule, offer, cost, amount, elapsed, number, priced.fallback)
    return best


@dataclass(frozen=True, slots=True)
class _PricedRule:
    """A transfer rule with what does not depend on the journey worked out once per rider."""

    rule: TransferRule
    count_key: float
    """transfer_count as a bound on the transfer number (inf: no limit)."""
    offered: bool
    """False: the rule's product has no offer for the rider (the rule does not apply)."""
    offer: Offer | None
    cost: int
    fallback: str | None


@lru_cache(maxsize=4_096)
def _priced_rules(
    feed: FareFeed, from_group: str, to_group: str, category: str | None, medium: str | None
) -> tuple[_PricedRule, ...]:
    out = []
    for rule in _rules_between(feed, from_group, to_group):
        offer: Offer | None = None
        fallback: str | None = None
        offered = True
        if rule.fare_product_id is not None:
            found = cheapest_offer_of(feed, rule.fare_product_id, category, medium)
            if found is None:
                offered = False
            else:
                _, offer, fallback = found
        out.append(
            _PricedRule(
                rule,
                _count_key(rule),
                offered,
                offer,
                offer.amount if offer is not None else 0,
                fallback,
            )
        )
    return tuple(out)


@lru_cache(maxsize=4_096)
def _rules_between(feed: FareFeed, from_group: str, to_group: str) -> tuple[TransferRule, ...]:
    """The transfer rules whose leg groups match a transfer from `from_group` to `to_group`, in
    file order (memoised: this does not depend on times, counts or the rider)."""
    index = feed.index
    return tuple(
        rule
        for rule in feed.transfer_rules
        if field_matches(rule.from_leg_group_id, (from_group,), index.transfer_from_groups, False)
        and field_matches(rule.to_leg_group_id, (to_group,), index.transfer_to_groups, False)
    )
