"""Matching one leg against fare_leg_rules.txt and choosing the product the rider pays.

This module owns the spec's leg matching and product choice:

- network_id, from_area_id, to_area_id: a rule's value must equal the leg's. An empty value, in a
  file without rule_priority, matches only legs whose value no rule names (the spec's "all
  networks excluding the ones listed"); with a rule_priority column, empty matches anything.
- from/to timeframe: the leg's start (end) must fall in one of the group's timeframes; empty
  matches any time. Without rule_priority, rules naming a matching timeframe beat rules that
  leave it empty ("an exact match is processed first"); with it, the highest rule_priority wins.
- Among the matched rules' products, the offers (rows of fare_products.txt) for the rider's
  category and fare medium qualify (an empty category or medium in an offer means any); if none
  does, the feed's default rider category is tried. The cheapest qualifying offer is charged;
  on a tie the row naming the medium (then the category) beats a row leaving it empty, then
  the earlier rule, then the earlier row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from policies.gtfs.model import FareFeed, LegRule, Offer


@dataclass(frozen=True, slots=True)
class Priced:
    """The product chosen for a leg: which rule, which row of fare_products.txt."""

    rule: LegRule
    offer: Offer
    fallback_category: str | None
    """Set when no offer fitted the rider's category and the default category's was used."""


def field_matches(
    value: str | None, leg_values: Collection[str], listed: Collection[str], wildcard: bool
) -> bool:
    if value is not None:
        return value in leg_values
    return wildcard or all(v not in listed for v in leg_values)


def match_leg_rules(
    feed: FareFeed,
    network: str | None,
    from_areas: Collection[str],
    to_areas: Collection[str],
    from_groups: Collection[str],
    to_groups: Collection[str],
) -> list[LegRule]:
    """The leg rules that apply, most specific / highest priority only, in file order."""
    index = feed.index
    wildcard = feed.uses_rule_priority
    networks = (network,) if network is not None else ()
    matched = [
        rule
        for rule in feed.leg_rules
        if field_matches(rule.network_id, networks, index.networks, wildcard)
        and field_matches(rule.from_area_id, from_areas, index.from_areas, wildcard)
        and field_matches(rule.to_area_id, to_areas, index.to_areas, wildcard)
        and (rule.from_timeframe_group_id is None or rule.from_timeframe_group_id in from_groups)
        and (rule.to_timeframe_group_id is None or rule.to_timeframe_group_id in to_groups)
    ]
    if len(matched) <= 1:
        return matched
    if wildcard:
        top = max(rule.rule_priority for rule in matched)
        return [rule for rule in matched if rule.rule_priority == top]
    if any(rule.from_timeframe_group_id is not None for rule in matched):
        matched = [rule for rule in matched if rule.from_timeframe_group_id is not None]
    if any(rule.to_timeframe_group_id is not None for rule in matched):
        matched = [rule for rule in matched if rule.to_timeframe_group_id is not None]
    return matched


def offer_fits(offer: Offer, category: str | None, medium: str | None) -> bool:
    return (offer.rider_category_id is None or offer.rider_category_id == category) and (
        medium is None or offer.fare_media_id is None or offer.fare_media_id == medium
    )


def cheapest_offer(
    feed: FareFeed, product_ids: Sequence[str], category: str | None, medium: str | None
) -> tuple[int, Offer, str | None] | None:
    """(position in `product_ids`, offer, fallback category or None) of the cheapest fit."""
    tries: list[str | None] = [category]
    if feed.default_category is not None and feed.default_category != category:
        tries.append(feed.default_category)
    for attempt, cat in enumerate(tries):
        best: tuple[tuple[int, bool, bool], int, Offer] | None = None
        for position, product_id in enumerate(product_ids):
            for offer in feed.products[product_id].offers:
                if not offer_fits(offer, cat, medium):
                    continue
                key = (offer.amount, offer.fare_media_id is None, offer.rider_category_id is None)
                if best is None or key < best[0]:
                    best = (key, position, offer)
        if best is not None:
            return best[1], best[2], cat if attempt else None
    return None


def price_leg(
    feed: FareFeed, rules: Sequence[LegRule], category: str | None, medium: str | None
) -> Priced | None:
    """The cheapest product of `rules` the rider may use, or None when there is none."""
    found = cheapest_offer(feed, [rule.fare_product_id for rule in rules], category, medium)
    if found is None:
        return None
    position, offer, fallback = found
    return Priced(rules[position], offer, fallback)


@lru_cache(maxsize=8_192)
def match_and_price(
    feed: FareFeed,
    network: str | None,
    from_areas: frozenset[str],
    to_areas: frozenset[str],
    from_groups: frozenset[str],
    to_groups: frozenset[str],
    category: str | None,
    medium: str | None,
) -> tuple[tuple[LegRule, ...], Priced | None]:
    """`match_leg_rules` then `price_leg`, memoised: both depend only on these arguments (the
    feed is immutable), and a city's taps repeat the same few combinations all day long."""
    rules = match_leg_rules(feed, network, from_areas, to_areas, from_groups, to_groups)
    return tuple(rules), (price_leg(feed, rules, category, medium) if rules else None)


@lru_cache(maxsize=8_192)
def cheapest_offer_of(
    feed: FareFeed, product_id: str, category: str | None, medium: str | None
) -> tuple[int, Offer, str | None] | None:
    """`cheapest_offer` of one product, memoised (transfer products are priced on every leg)."""
    return cheapest_offer(feed, (product_id,), category, medium)
