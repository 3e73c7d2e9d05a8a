"""The transit section of the tariff: the city's own transit rules next to its GTFS Fares v2 feed.

This module owns `TransitRules` (the one `Tariff.transit` field) and the records it is made of:
rider categories (`Category`: the city's names, their GTFS rider_category_id and a flat-fare
percentage), caps (`Cap`: daily, ISO-weekly, rolling 7-day, monthly, per category), products
sold onto the card (`ProductDef`: passes and the tourist card with their entitlements), the tap
off window, the one-time negative balance allowance, the validity dates and timezone, and the
reference to the GTFS feed (`feed_ref`, a path relative to the tariff file, read by
gateway/tariffs/tariff_io.py; the parsed `FareFeed` is handed in, this module opens no file).

Everything is validated once, when the rules are built, against each other and against the feed
(categories and fare medium exist in the feed, caps and prices name known categories, products
name known networks), so the rules in transit.py can trust it. The plain-data form is the
`"transit"` object of the tariff file, documented in docs/tariff.md; the default (an empty
section) keeps the v1 behaviour: flat fares only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from policies._validate import check_int, check_keys, check_mapping, check_str
from policies.gtfs.local_time import (
    Zone,
    iso_date_ordinal,
    local_midnight_ms,
    zone_named,
)
from policies.gtfs.model import DURATION_UNITS as GTFS_DURATION_UNITS
from policies.gtfs.model import FareFeed
from policies.transit_state import DURATION_UNITS, MAX_DISCOUNTS, MAX_NETWORKS, MAX_VENUES

CAP_DAILY: Final = "daily"
CAP_WEEKLY: Final = "weekly"
"""Calendar week, ISO (Monday to Sunday), in the tariff's timezone."""
CAP_ROLLING_7D: Final = "rolling_7d"
"""The current local day and the six before it."""
CAP_MONTHLY: Final = "monthly"
CAP_KINDS: Final = (CAP_DAILY, CAP_WEEKLY, CAP_ROLLING_7D, CAP_MONTHLY)

DEFAULT_TAP_OFF_WINDOW_MS: Final = 3 * 3600 * 1000
MAX_CAPS: Final = 32
MAX_PRODUCT_DEFS: Final = 256
MAX_CATEGORIES: Final = 64

_GTFS_UNIT: Final = {unit: GTFS_DURATION_UNITS.index(unit) for unit in DURATION_UNITS}
"""Our duration units as indexes into the GTFS duration units (for `pass_end_ms`)."""


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else check_str(value, what)


def _str_list(value: object, what: str, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{what}: at most {limit} entries")
    out = tuple(check_str(v, f"{what}[{i}]") for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate entries")
    return out


def gtfs_unit(unit: str) -> int:
    """Index of one of DURATION_UNITS in the GTFS duration units (`Duration.unit`)."""
    return _GTFS_UNIT[unit]


@dataclass(frozen=True, slots=True)
class Category:
    """A rider category of the city (the card's `category`)."""

    name: str
    gtfs: str | None = None
    """The feed's rider_category_id for this category; None: the feed's default category."""
    flat_percent: int = 100
    """Share of the flat network fares this category pays (50: half fare), rounded down."""

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {}
        if self.gtfs is not None:
            d["gtfs"] = self.gtfs
        if self.flat_percent != 100:
            d["flat_percent"] = self.flat_percent
        return d

    @classmethod
    def from_dict(cls, name: str, data: object) -> Category:
        what = f"tariff transit.categories[{name!r}]"
        d = check_mapping(data, what)
        check_keys(d, what, (), ("gtfs", "flat_percent"))
        return cls(
            name,
            _opt_str(d.get("gtfs"), f"{what}.gtfs"),
            check_int(d.get("flat_percent", 100), f"{what}.flat_percent", minimum=0),
        )


@dataclass(frozen=True, slots=True)
class Cap:
    """Never charge more than `amount` of transit fares in one period of `kind`."""

    cap_id: str
    kind: str
    amount: int
    category: str | None = None
    """The category this cap is for; None: every category."""

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"id": self.cap_id, "kind": self.kind, "amount": self.amount}
        if self.category is not None:
            d["category"] = self.category
        return d

    @classmethod
    def from_dict(cls, data: object, i: int) -> Cap:
        what = f"tariff transit.caps[{i}]"
        d = check_mapping(data, what)
        check_keys(d, what, ("id", "kind", "amount"), ("category",))
        kind = check_str(d["kind"], f"{what}.kind")
        if kind not in CAP_KINDS:
            raise ValueError(f"{what}.kind: expected one of {', '.join(CAP_KINDS)}, got {kind!r}")
        return cls(
            check_str(d["id"], f"{what}.id"),
            kind,
            check_int(d["amount"], f"{what}.amount", minimum=0),
            _opt_str(d.get("category"), f"{what}.category"),
        )


@dataclass(frozen=True, slots=True)
class ProductDef:
    """A product the city sells onto the card (a pass, the tourist card)."""

    product_id: str
    name: str
    prices: Mapping[str, int]
    """Price per category; a category without a price pays the default category's."""
    duration_amount: int
    duration_unit: str
    networks: tuple[str, ...] | None = None
    """Transit networks covered; None: all; (): none (a venue-only product)."""
    venues: tuple[str, ...] = ()
    """One entry per listed venue while the product is valid (the services rules enforce it)."""
    discounts: tuple[str, ...] = ()
    """Discount ids (services discount network) the holder is entitled to while valid."""
    operator: str | None = None
    """Who the sale is attributed to; None: the selling terminal's operator."""

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "name": self.name,
            "prices": dict(self.prices),
            "duration": {"amount": self.duration_amount, "unit": self.duration_unit},
            "networks": None if self.networks is None else list(self.networks),
        }
        if self.venues:
            d["venues"] = list(self.venues)
        if self.discounts:
            d["discounts"] = list(self.discounts)
        if self.operator is not None:
            d["operator"] = self.operator
        return d

    @classmethod
    def from_dict(cls, product_id: str, data: object) -> ProductDef:
        what = f"tariff transit.products[{product_id!r}]"
        d = check_mapping(data, what)
        check_keys(
            d, what, ("name", "prices", "duration"), ("networks", "venues", "discounts", "operator")
        )
        prices = check_mapping(d["prices"], f"{what}.prices")
        duration = check_mapping(d["duration"], f"{what}.duration")
        check_keys(duration, f"{what}.duration", ("amount", "unit"))
        unit = check_str(duration["unit"], f"{what}.duration.unit")
        if unit not in DURATION_UNITS:
            raise ValueError(
                f"{what}.duration.unit: expected one of {', '.join(DURATION_UNITS)}, got {unit!r}"
            )
        networks = d.get("networks")
        return cls(
            product_id=product_id,
            name=check_str(d["name"], f"{what}.name"),
            prices={k: check_int(v, f"{what}.prices[{k!r}]", minimum=0) for k, v in prices.items()},
            duration_amount=check_int(duration["amount"], f"{what}.duration.amount", minimum=1),
            duration_unit=unit,
            networks=None if networks is None else _str_list(networks, f"{what}.networks", 32),
            venues=_str_list(d.get("venues", ()), f"{what}.venues", MAX_VENUES),
            discounts=_str_list(d.get("discounts", ()), f"{what}.discounts", MAX_DISCOUNTS),
            operator=_opt_str(d.get("operator"), f"{what}.operator"),
        )


_FIELDS: Final = (
    "timezone",
    "valid_from",
    "valid_until",
    "gtfs",
    "default_category",
    "categories",
    "caps",
    "products",
    "tap_off_window_ms",
    "negative_limit",
)


def _no_categories() -> Mapping[str, Category]:
    return MappingProxyType({})


def _no_products() -> Mapping[str, ProductDef]:
    return MappingProxyType({})


def _no_routes() -> Mapping[str, str]:
    return MappingProxyType({})


def _no_cap_index() -> Mapping[str, tuple[Cap, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TransitRules:
    """The transit rules beyond v1's flat fares. The default instance adds nothing."""

    timezone: str = "UTC"
    """Local time of cap periods, pass expiry and validity dates (default: the feed's)."""
    valid_from: str | None = None
    """First local date (YYYY-MM-DD) the tariff prices transit; None: open."""
    valid_until: str | None = None
    """Last local date (inclusive); None: open."""
    feed: FareFeed | None = None
    feed_ref: str | None = None
    """The feed folder as written in the tariff file (relative to it)."""
    fare_media: str | None = None
    """The feed's fare_media_id of the citizen card; None: any medium (the cheapest offer)."""
    default_category: str = "adult"
    categories: Mapping[str, Category] = field(default_factory=_no_categories)
    """Empty: categories are not checked (v1), every card pays the flat fares in full."""
    caps: tuple[Cap, ...] = ()
    products: Mapping[str, ProductDef] = field(default_factory=_no_products)
    tap_off_window_ms: int = DEFAULT_TAP_OFF_WINDOW_MS
    """A trip not tapped off within this time after its tap on is incomplete."""
    negative_limit: int = 0
    """How far below zero one transit tap may take a non-negative balance (0: never)."""

    # Derived when built (not compared, not serialised).
    zone: Zone | None = field(default=None, compare=False)
    valid_from_ms: int | None = field(default=None, compare=False)
    valid_until_ms: int | None = field(default=None, compare=False)
    """Exclusive."""
    network_route: Mapping[str, str] = field(default_factory=_no_routes, compare=False)
    """A route of each feed network: a leg's price depends on its route only through the
    network, so a gate that knows only its network is priced with this route."""
    max_fare_stops: tuple[str, ...] = field(default=(), compare=False)
    """One stop per distinct set of fare areas: the destinations a tap on's maximum fare is
    taken over (one stop when the feed has no areas)."""
    any_stop: str | None = field(default=None, compare=False)
    """A stop used when a tap names none and the feed's fares do not depend on stops."""
    caps_by_category: Mapping[str, tuple[Cap, ...]] = field(
        default_factory=_no_cap_index, compare=False
    )
    """The caps binding each category the tariff names (caps.py reads it on every tap)."""
    plain: bool = field(default=True, compare=False)
    """Nothing beyond v1: no feed, caps, products, categories, validity, negative allowance."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        zone = zone_named(check_str(self.timezone, "tariff transit.timezone"))
        set_(self, "zone", zone)
        from_ms = until_ms = None
        if self.valid_from is not None:
            from_ms = local_midnight_ms(zone, _date(self.valid_from, "valid_from"))
        if self.valid_until is not None:
            until_ms = local_midnight_ms(zone, _date(self.valid_until, "valid_until") + 1)
        if from_ms is not None and until_ms is not None and until_ms <= from_ms:
            raise ValueError("tariff transit.valid_until: must not be before valid_from")
        set_(self, "valid_from_ms", from_ms)
        set_(self, "valid_until_ms", until_ms)
        check_str(self.default_category, "tariff transit.default_category")
        check_int(self.tap_off_window_ms, "tariff transit.tap_off_window_ms", minimum=1)
        check_int(self.negative_limit, "tariff transit.negative_limit", minimum=0)
        categories: dict[str, Category] = dict(self.categories)
        if len(categories) > MAX_CATEGORIES:
            raise ValueError(f"tariff transit.categories: at most {MAX_CATEGORIES}")
        for name, cat in categories.items():
            if not isinstance(cat, Category) or cat.name != name:
                raise ValueError(f"tariff transit.categories[{name!r}]: expected a Category")
            check_int(
                cat.flat_percent, f"tariff transit.categories[{name!r}].flat_percent", minimum=0
            )
        if categories and self.default_category not in categories:
            raise ValueError(
                f"tariff transit.default_category: {self.default_category!r} is not in categories"
            )
        set_(self, "categories", MappingProxyType(categories))
        feed = self.feed
        if feed is not None:
            self._check_feed(feed, categories)
        elif self.feed_ref is not None:
            raise ValueError(f"tariff transit.gtfs.feed: feed {self.feed_ref!r} was not loaded")
        if len(self.caps) > MAX_CAPS:
            raise ValueError(f"tariff transit.caps: at most {MAX_CAPS}")
        seen_caps: set[str] = set()
        for cap in self.caps:
            if cap.kind not in CAP_KINDS:
                raise ValueError(f"tariff transit.caps {cap.cap_id!r}: unknown kind {cap.kind!r}")
            check_int(cap.amount, f"tariff transit.caps {cap.cap_id!r} amount", minimum=0)
            if cap.cap_id in seen_caps:
                raise ValueError(f"tariff transit.caps: duplicate id {cap.cap_id!r}")
            seen_caps.add(cap.cap_id)
            if cap.category is not None and categories and cap.category not in categories:
                raise ValueError(
                    f"tariff transit.caps {cap.cap_id!r}: unknown category {cap.category!r}"
                )
        names = set(categories) | {self.default_category}
        names.update(cap.category for cap in self.caps if cap.category is not None)
        set_(
            self,
            "caps_by_category",
            MappingProxyType(
                {
                    name: tuple(c for c in self.caps if c.category is None or c.category == name)
                    for name in names
                }
            ),
        )
        products: dict[str, ProductDef] = dict(self.products)
        if len(products) > MAX_PRODUCT_DEFS:
            raise ValueError(f"tariff transit.products: at most {MAX_PRODUCT_DEFS}")
        for pid, product in products.items():
            what = f"tariff transit.products[{pid!r}]"
            if not isinstance(product, ProductDef) or product.product_id != pid:
                raise ValueError(f"{what}: expected a ProductDef")
            if not product.prices:
                raise ValueError(f"{what}.prices: at least one price")
            for cat_name, price in product.prices.items():
                check_int(price, f"{what}.prices[{cat_name!r}]", minimum=0)
                if categories and cat_name not in categories:
                    raise ValueError(f"{what}.prices: unknown category {cat_name!r}")
            if categories and self.default_category not in product.prices:
                raise ValueError(
                    f"{what}.prices: needs a price for the default category "
                    f"{self.default_category!r}"
                )
            if product.duration_unit not in DURATION_UNITS:
                raise ValueError(f"{what}.duration.unit: unknown unit {product.duration_unit!r}")
            if product.networks is not None and len(product.networks) > MAX_NETWORKS:
                raise ValueError(f"{what}.networks: at most {MAX_NETWORKS}")
        set_(self, "products", MappingProxyType(products))
        set_(
            self,
            "plain",
            feed is None
            and not self.caps
            and not products
            and not categories
            and from_ms is None
            and until_ms is None
            and self.negative_limit == 0,
        )

    def _check_feed(self, feed: FareFeed, categories: Mapping[str, Category]) -> None:
        if self.fare_media is not None and self.fare_media not in feed.fare_media:
            raise ValueError(
                f"tariff transit.gtfs.fare_media: {self.fare_media!r} is not in feed "
                f"{feed.name!r} (media: {', '.join(sorted(feed.fare_media))})"
            )
        for name, cat in categories.items():
            if cat.gtfs is not None and cat.gtfs not in feed.rider_categories:
                raise ValueError(
                    f"tariff transit.categories[{name!r}].gtfs: {cat.gtfs!r} is not a rider "
                    f"category of feed {feed.name!r} "
                    f"({', '.join(sorted(feed.rider_categories))})"
                )
        routes: dict[str, str] = {}
        for route, network in sorted(feed.route_network.items()):
            if network is not None and network not in routes:
                routes[network] = route
        object.__setattr__(self, "network_route", MappingProxyType(routes))
        by_areas: dict[frozenset[str], str] = {}
        for stop in sorted(feed.stops):
            by_areas.setdefault(feed.stop_areas.get(stop, frozenset()), stop)
        object.__setattr__(self, "max_fare_stops", tuple(sorted(by_areas.values())))
        uses_areas = bool(feed.index.from_areas or feed.index.to_areas)
        object.__setattr__(
            self, "any_stop", None if uses_areas or not feed.stops else min(feed.stops)
        )

    def gtfs_networks(self) -> frozenset[str]:
        return frozenset(self.network_route)

    def to_dict(self) -> dict[str, object]:
        """The `"transit"` object of a tariff file (fields left at their default omitted)."""
        d: dict[str, object] = {}
        if self.timezone != "UTC" and not (
            self.feed is not None and self.feed.timezone == self.timezone
        ):
            d["timezone"] = self.timezone
        if self.valid_from is not None:
            d["valid_from"] = self.valid_from
        if self.valid_until is not None:
            d["valid_until"] = self.valid_until
        if self.feed_ref is not None:
            gtfs: dict[str, object] = {"feed": self.feed_ref}
            if self.fare_media is not None:
                gtfs["fare_media"] = self.fare_media
            d["gtfs"] = gtfs
        if self.default_category != "adult":
            d["default_category"] = self.default_category
        if self.categories:
            d["categories"] = {name: c.to_dict() for name, c in self.categories.items()}
        if self.caps:
            d["caps"] = [c.to_dict() for c in self.caps]
        if self.products:
            d["products"] = {pid: p.to_dict() for pid, p in self.products.items()}
        if self.tap_off_window_ms != DEFAULT_TAP_OFF_WINDOW_MS:
            d["tap_off_window_ms"] = self.tap_off_window_ms
        if self.negative_limit:
            d["negative_limit"] = self.negative_limit
        return d

    @classmethod
    def from_dict(cls, data: object, *, feed: FareFeed | None = None) -> TransitRules:
        """Build from the `"transit"` object; `feed` is the parsed feed `gtfs.feed` names."""
        what = "tariff transit"
        d = check_mapping(data, what)
        check_keys(d, what, (), _FIELDS)
        feed_ref: str | None = None
        media: str | None = None
        if d.get("gtfs") is not None:
            gtfs = check_mapping(d["gtfs"], f"{what}.gtfs")
            check_keys(gtfs, f"{what}.gtfs", ("feed",), ("fare_media",))
            feed_ref = check_str(gtfs["feed"], f"{what}.gtfs.feed")
            media = _opt_str(gtfs.get("fare_media"), f"{what}.gtfs.fare_media")
        elif feed is not None:
            raise ValueError(f"{what}.gtfs: a feed was given but the tariff names none")
        default_zone = feed.timezone if feed is not None else "UTC"
        raw_categories = check_mapping(d.get("categories", {}), f"{what}.categories")
        raw_caps = d.get("caps", [])
        if not isinstance(raw_caps, list | tuple):
            raise ValueError(f"{what}.caps: expected a list")
        raw_products = check_mapping(d.get("products", {}), f"{what}.products")
        return cls(
            timezone=check_str(d.get("timezone", default_zone), f"{what}.timezone"),
            valid_from=_opt_str(d.get("valid_from"), f"{what}.valid_from"),
            valid_until=_opt_str(d.get("valid_until"), f"{what}.valid_until"),
            feed=feed,
            feed_ref=feed_ref,
            fare_media=media,
            default_category=check_str(
                d.get("default_category", "adult"), f"{what}.default_category"
            ),
            categories={name: Category.from_dict(name, c) for name, c in raw_categories.items()},
            caps=tuple(Cap.from_dict(c, i) for i, c in enumerate(raw_caps)),
            products={pid: ProductDef.from_dict(pid, p) for pid, p in raw_products.items()},
            tap_off_window_ms=check_int(
                d.get("tap_off_window_ms", DEFAULT_TAP_OFF_WINDOW_MS),
                f"{what}.tap_off_window_ms",
            ),
            negative_limit=check_int(d.get("negative_limit", 0), f"{what}.negative_limit"),
        )


def _date(text: str, name: str) -> int:
    try:
        return iso_date_ordinal(text)
    except ValueError:
        raise ValueError(
            f"tariff transit.{name}: expected a date YYYY-MM-DD, got {text!r}"
        ) from None


NO_TRANSIT_RULES: Final = TransitRules()
"""The default: v1 flat fares only."""
