"""The loaded fare feed as immutable data: `FareFeed` and the records it is made of.

This module owns the shapes only: what a fare product, a leg rule, a transfer rule, a timeframe
and a service calendar look like once parsed and cross-checked, plus the read-only indexes the
calculator needs (route -> network, stop -> areas). Nothing here parses text or prices a leg.
Money is `int` minor units of the feed's single currency; times of day are seconds after
midnight; dates are proleptic Gregorian ordinals (`date.toordinal()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final
from zoneinfo import ZoneInfo

DAY_S: Final = 86_400

# fare_transfer_rules.duration_limit_type
DEPARTURE_TO_ARRIVAL: Final = 0
DEPARTURE_TO_DEPARTURE: Final = 1
ARRIVAL_TO_DEPARTURE: Final = 2
ARRIVAL_TO_ARRIVAL: Final = 3

# fare_transfer_rules.fare_transfer_type
FROM_LEG_PLUS_TRANSFER: Final = 0  # A + AB
FROM_LEG_PLUS_TRANSFER_PLUS_TO_LEG: Final = 1  # A + AB + B
TRANSFER_ONLY: Final = 2  # AB

# fare_products.duration_unit (Fares v2 duration extension)
DURATION_UNITS: Final = ("seconds", "minutes", "hours", "days", "weeks", "months", "years")


@dataclass(frozen=True, slots=True)
class FareMedium:
    fare_media_id: str
    name: str
    fare_media_type: int
    """0 none (ticket bought on board), 1 paper ticket, 2 transit card, 3 cEMV, 4 mobile app."""


@dataclass(frozen=True, slots=True)
class RiderCategory:
    rider_category_id: str
    name: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class Duration:
    """How long a product (a pass) stays valid once bought or first validated."""

    start: int
    """0: from the first validation, 1: from purchase (both taken as the leg that bought it)."""
    amount: int
    unit: int
    """Index into DURATION_UNITS."""
    type: int
    """1: relative (`amount` units from the start), 2: calendar (to the end of the unit)."""


@dataclass(frozen=True, slots=True)
class Offer:
    """One row of fare_products.txt: the price of a product for a rider category and medium."""

    rider_category_id: str | None
    """None: any rider category."""
    fare_media_id: str | None
    """None: any fare medium."""
    amount: int
    line: int
    duration: Duration | None


@dataclass(frozen=True, slots=True)
class FareProduct:
    fare_product_id: str
    name: str
    offers: tuple[Offer, ...]


@dataclass(frozen=True, slots=True)
class LegRule:
    """One row of fare_leg_rules.txt. Empty fields are None."""

    line: int
    leg_group_id: str | None
    network_id: str | None
    from_area_id: str | None
    to_area_id: str | None
    from_timeframe_group_id: str | None
    to_timeframe_group_id: str | None
    rule_priority: int
    fare_product_id: str

    @property
    def ref(self) -> str:
        return f"fare_leg_rules.txt line {self.line}"


@dataclass(frozen=True, slots=True)
class TransferRule:
    """One row of fare_transfer_rules.txt. Empty fields are None."""

    line: int
    from_leg_group_id: str | None
    to_leg_group_id: str | None
    transfer_count: int | None
    """-1 or None: no limit; n >= 1: at most n transfers in the sub-journey."""
    duration_limit_s: int | None
    duration_limit_type: int | None
    fare_transfer_type: int
    fare_product_id: str | None
    """None: the transfer itself costs nothing."""

    @property
    def ref(self) -> str:
        return f"fare_transfer_rules.txt line {self.line}"


@dataclass(frozen=True, slots=True)
class Timeframe:
    """One row of timeframes.txt: [start_s, end_s) on the days of `service_id`."""

    timeframe_group_id: str
    start_s: int
    end_s: int
    """May exceed DAY_S: such a timeframe runs on into the next calendar day."""
    service_id: str
    line: int


@dataclass(frozen=True, slots=True)
class Service:
    """When one service_id runs: a weekly pattern between two dates, plus added/removed dates."""

    start: int | None
    end: int | None
    weekdays: tuple[bool, ...]
    """Monday first, 7 entries (all False when calendar.txt has no row for the service)."""
    added: frozenset[int]
    removed: frozenset[int]

    def runs_on(self, ordinal: int) -> bool:
        if ordinal in self.added:
            return True
        if ordinal in self.removed or self.start is None or self.end is None:
            return False
        return self.start <= ordinal <= self.end and self.weekdays[(ordinal - 1) % 7]


@dataclass(frozen=True, slots=True)
class MatchIndex:
    """The values some rule names, per field: the spec's "empty matches all others" needs them."""

    networks: frozenset[str]
    from_areas: frozenset[str]
    to_areas: frozenset[str]
    transfer_from_groups: frozenset[str]
    transfer_to_groups: frozenset[str]
    leg_groups: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FareFeed:
    """A validated fare feed. Built by `parse_feed`; never changes afterwards."""

    name: str
    version: str
    agency_names: tuple[str, ...]
    timezone: str
    zone: ZoneInfo
    currency: str
    minor_digits: int
    valid_from: int | None
    """First date (ordinal) the feed prices, from feed_info.txt or the calendars; None: open."""
    valid_to: int | None
    fare_media: Mapping[str, FareMedium]
    rider_categories: Mapping[str, RiderCategory]
    default_category: str | None
    products: Mapping[str, FareProduct]
    leg_rules: tuple[LegRule, ...]
    transfer_rules: tuple[TransferRule, ...]
    timeframes: tuple[Timeframe, ...]
    services: Mapping[str, Service]
    route_network: Mapping[str, str | None]
    """Every route of routes.txt, with its network (None: the route is in no network)."""
    networks: frozenset[str]
    stops: frozenset[str]
    stop_areas: Mapping[str, frozenset[str]]
    """Areas of a stop, including the areas of its parent station. Stops in no area are absent."""
    areas: frozenset[str]
    uses_rule_priority: bool
    """fare_leg_rules.txt has a rule_priority column, which changes what an empty field means."""
    index: MatchIndex
    notes: tuple[str, ...]
    """What the loader tolerated or ignored, for the tariff writer (`fares check` prints them)."""

    def __repr__(self) -> str:
        return f"FareFeed(name={self.name!r}, version={self.version!r})"

    def validity(self) -> tuple[str | None, str | None]:
        """The validity dates as ISO strings, for display."""

        def iso(ordinal: int | None) -> str | None:
            return None if ordinal is None else date.fromordinal(ordinal).isoformat()

        return iso(self.valid_from), iso(self.valid_to)
