"""The services section of the tariff: every price, limit and window the service rules use.

This module owns `ServicesTariff` (the one optional field `Tariff.services`) and its parts:
car parks, taxi limits, venues with opening hours, recycling materials, the discount network,
rewards and facility access rules, plus `demo_services()` for the demo city. Like `Tariff`, every
part is validated when it is built (in code or from plain data), so the rules trust it on the hot
path; `to_dict` / `from_dict` round-trip through JSON. docs/services.md documents the file format.

Conventions: money in minor units of the tariff currency, durations in whole minutes, times of day
as "HH:MM" local time ("24:00" allowed as an end), weekdays as "mon".."sun". A
window whose end is not after its start runs past midnight into the next day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from policies._validate import check_int, check_keys, check_mapping, check_str
from policies.services.local_time import MINUTES_PER_DAY, check_zone

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS: Final = frozenset(range(7))
MAX_LIST: Final = 256
"""Most entries of any one list or table in the services section (a bound on tariff size)."""


def _no_entries() -> Mapping[str, Any]:
    return MappingProxyType({})


# --- small field helpers -------------------------------------------------------------------------


def _clock(value: object, what: str, *, end: bool) -> int:
    text = check_str(value, what)
    hh, sep, mm = text.partition(":")
    if not (sep and len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()):
        raise ValueError(f'{what}: expected "HH:MM", got {text!r}')
    minutes = int(hh) * 60 + int(mm)
    limit = MINUTES_PER_DAY if end else MINUTES_PER_DAY - 1
    if int(mm) > 59 or minutes > limit:
        raise ValueError(f"{what}: {text!r} is not a time of day")
    return minutes


def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _str_list(value: object, what: str) -> frozenset[str]:
    if not isinstance(value, list | tuple | frozenset | set):
        raise ValueError(f"{what}: expected a list of strings, got {type(value).__name__}")
    if len(value) > MAX_LIST:
        raise ValueError(f"{what}: at most {MAX_LIST} entries")
    return frozenset(check_str(v, f"{what} entry") for v in value)


def _check_strs(values: frozenset[str], what: str) -> frozenset[str]:
    if len(values) > MAX_LIST:
        raise ValueError(f"{what}: at most {MAX_LIST} entries")
    for v in values:
        check_str(v, f"{what} entry")
    return frozenset(values)


def _table(value: object, what: str) -> Mapping[str, object]:
    d = check_mapping(value, what)
    if len(d) > MAX_LIST:
        raise ValueError(f"{what}: at most {MAX_LIST} entries")
    for key in d:
        check_str(key, f"{what} key")
    return d


def _freeze(table: Mapping[str, Any], what: str, kind: type) -> Mapping[str, Any]:
    d = _table(table, what)
    for key, value in d.items():
        if not isinstance(value, kind):
            raise ValueError(f"{what}[{key!r}]: expected a {kind.__name__}")
    return MappingProxyType(dict(d))


# --- windows -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Local-time window on some weekdays: [start, end) minutes; end <= start wraps midnight."""

    days: frozenset[int]
    start: int
    end: int

    def __post_init__(self) -> None:
        if not self.days or not self.days <= ALL_DAYS:
            raise ValueError(f"window days: expected weekdays 0..6, got {sorted(self.days)}")
        check_int(self.start, "window start", minimum=0)
        check_int(self.end, "window end", minimum=0)
        if self.start >= MINUTES_PER_DAY or self.end > MINUTES_PER_DAY or self.start == self.end:
            raise ValueError(f"window {self.start}..{self.end}: not a window within a day")

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Overnight: the evening of a listed day, and the early hours of the day after it.
        return (weekday in self.days and minute >= self.start) or (
            (weekday - 1) % 7 in self.days and minute < self.end
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "days": [DAY_NAMES[d] for d in sorted(self.days)],
            "from": _clock_text(self.start),
            "to": _clock_text(self.end),
        }

    @classmethod
    def from_dict(cls, data: object, what: str) -> Window:
        d = check_mapping(data, what)
        check_keys(d, what, ("from", "to"), ("days",))
        raw_days = d.get("days", list(DAY_NAMES))
        names = _str_list(raw_days, f"{what} days")
        unknown = sorted(names - set(DAY_NAMES))
        if unknown or not names:
            raise ValueError(f"{what} days: expected names among {', '.join(DAY_NAMES)}")
        start = _clock(d["from"], f"{what} from", end=False)
        end = _clock(d["to"], f"{what} to", end=True)
        if start == end:
            raise ValueError(f"{what}: from and to are equal; use 00:00-24:00 for all day")
        return cls(frozenset(DAY_NAMES.index(n) for n in names), start, end)


def _windows(value: object, what: str) -> tuple[Window, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what}: expected a list of windows")
    if len(value) > MAX_LIST:
        raise ValueError(f"{what}: at most {MAX_LIST} entries")
    return tuple(Window.from_dict(w, f"{what}[{i}]") for i, w in enumerate(value))


def in_windows(windows: tuple[Window, ...], weekday: int, minute: int) -> bool:
    """True when any window contains the moment; an empty tuple means "at any time"."""
    if not windows:
        return True
    return any(w.contains(weekday, minute) for w in windows)


# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParkingFacility:
    """A car park: `period_price` per started `period_min`, at most `daily_max` per 24 h of
    stay; a stay of at most `free_min` is free; a session without exit for more than
    `lost_after_min` is charged `lost_amount` (at the next entry or by the operator)."""

    period_min: int
    period_price: int
    daily_max: int
    lost_after_min: int
    lost_amount: int
    free_min: int = 0

    def __post_init__(self) -> None:
        check_int(self.period_min, "parking period_min", minimum=1)
        check_int(self.lost_after_min, "parking lost_after_min", minimum=1)
        for name in ("period_price", "daily_max", "lost_amount", "free_min"):
            check_int(getattr(self, name), f"parking {name}", minimum=0)

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _PARKING_FIELDS}

    @classmethod
    def from_dict(cls, data: object, what: str) -> ParkingFacility:
        d = check_mapping(data, what)
        check_keys(d, what, _PARKING_FIELDS[:-1], ("free_min",))
        return cls(
            period_min=check_int(d["period_min"], f"{what} period_min"),
            period_price=check_int(d["period_price"], f"{what} period_price"),
            daily_max=check_int(d["daily_max"], f"{what} daily_max"),
            lost_after_min=check_int(d["lost_after_min"], f"{what} lost_after_min"),
            lost_amount=check_int(d["lost_amount"], f"{what} lost_amount"),
            free_min=check_int(d.get("free_min", 0), f"{what} free_min"),
        )


_PARKING_FIELDS: Final = (
    "period_min",
    "period_price",
    "daily_max",
    "lost_after_min",
    "lost_amount",
    "free_min",
)


@dataclass(frozen=True, slots=True)
class TaxiRules:
    """Per-card limits on taxi payments: one tap, and the sum of a local calendar day."""

    max_per_tap: int
    max_per_day: int

    def __post_init__(self) -> None:
        check_int(self.max_per_tap, "taxi max_per_tap", minimum=0)
        check_int(self.max_per_day, "taxi max_per_day", minimum=0)

    def to_dict(self) -> dict[str, object]:
        return {"max_per_tap": self.max_per_tap, "max_per_day": self.max_per_day}

    @classmethod
    def from_dict(cls, data: object, what: str) -> TaxiRules:
        d = check_mapping(data, what)
        check_keys(d, what, ("max_per_tap", "max_per_day"))
        return cls(
            check_int(d["max_per_tap"], f"{what} max_per_tap"),
            check_int(d["max_per_day"], f"{what} max_per_day"),
        )


@dataclass(frozen=True, slots=True)
class Venue:
    """A venue: `kind` (museum, cinema, library, gym...), the price of one entry (0 = free) and
    its opening hours (empty = always open)."""

    kind: str
    price: int
    hours: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        check_str(self.kind, "venue kind")
        check_int(self.price, "venue price", minimum=0)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "price": self.price}
        if self.hours:
            out["hours"] = [w.to_dict() for w in self.hours]
        return out

    @classmethod
    def from_dict(cls, data: object, what: str) -> Venue:
        d = check_mapping(data, what)
        check_keys(d, what, ("kind", "price"), ("hours",))
        return cls(
            check_str(d["kind"], f"{what} kind"),
            check_int(d["price"], f"{what} price"),
            _windows(d.get("hours", []), f"{what} hours"),
        )


@dataclass(frozen=True, slots=True)
class Material:
    """A recyclable material: credit per kg, the largest plausible single deposit, points/kg."""

    rate_per_kg: int
    max_deposit_g: int
    points_per_kg: int = 0

    def __post_init__(self) -> None:
        check_int(self.rate_per_kg, "material rate_per_kg", minimum=0)
        check_int(self.max_deposit_g, "material max_deposit_g", minimum=1)
        check_int(self.points_per_kg, "material points_per_kg", minimum=0)

    def to_dict(self) -> dict[str, object]:
        return {
            "rate_per_kg": self.rate_per_kg,
            "max_deposit_g": self.max_deposit_g,
            "points_per_kg": self.points_per_kg,
        }

    @classmethod
    def from_dict(cls, data: object, what: str) -> Material:
        d = check_mapping(data, what)
        check_keys(d, what, ("rate_per_kg", "max_deposit_g"), ("points_per_kg",))
        return cls(
            check_int(d["rate_per_kg"], f"{what} rate_per_kg"),
            check_int(d["max_deposit_g"], f"{what} max_deposit_g"),
            check_int(d.get("points_per_kg", 0), f"{what} points_per_kg"),
        )


@dataclass(frozen=True, slots=True)
class RecyclingRules:
    """Materials a kiosk may report, and the most credit one card earns per local day."""

    daily_max_credit: int
    materials: Mapping[str, Material]

    def __post_init__(self) -> None:
        check_int(self.daily_max_credit, "recycling daily_max_credit", minimum=0)
        object.__setattr__(
            self, "materials", _freeze(self.materials, "recycling materials", Material)
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "daily_max_credit": self.daily_max_credit,
            "materials": {k: m.to_dict() for k, m in self.materials.items()},
        }

    @classmethod
    def from_dict(cls, data: object, what: str) -> RecyclingRules:
        d = check_mapping(data, what)
        check_keys(d, what, ("daily_max_credit", "materials"))
        mats = _table(d["materials"], f"{what} materials")
        return cls(
            check_int(d["daily_max_credit"], f"{what} daily_max_credit"),
            {k: Material.from_dict(v, f"{what} materials[{k!r}]") for k, v in mats.items()},
        )


@dataclass(frozen=True, slots=True)
class Discount:
    """A merchant discount: `percent` off a retail or venue payment for cards of the listed
    rider `categories` (empty = every category), within `windows` (empty = any time).

    Scope: the merchants / merchant categories (retail) and venues / venue kinds it applies to;
    all four empty means every retail and venue payment. `entitlement=True` restricts it to cards
    holding a grant (tourist card, membership) that lists this discount's `id`."""

    id: str
    percent: int
    categories: frozenset[str] = frozenset()
    merchants: frozenset[str] = frozenset()
    merchant_categories: frozenset[str] = frozenset()
    venues: frozenset[str] = frozenset()
    venue_kinds: frozenset[str] = frozenset()
    windows: tuple[Window, ...] = ()
    entitlement: bool = False

    def __post_init__(self) -> None:
        check_str(self.id, "discount id")
        check_int(self.percent, f"discount {self.id} percent", minimum=1)
        if self.percent > 100:
            raise ValueError(f"discount {self.id} percent: at most 100, got {self.percent}")
        for name in _DISCOUNT_SETS:
            object.__setattr__(
                self, name, _check_strs(getattr(self, name), f"discount {self.id} {name}")
            )
        if not isinstance(self.entitlement, bool):
            raise ValueError(f"discount {self.id} entitlement: expected a boolean")

    @property
    def everywhere(self) -> bool:
        return not (self.merchants or self.merchant_categories or self.venues or self.venue_kinds)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "percent": self.percent}
        for name in _DISCOUNT_SETS:
            values = getattr(self, name)
            if values:
                out[name] = sorted(values)
        if self.windows:
            out["windows"] = [w.to_dict() for w in self.windows]
        if self.entitlement:
            out["entitlement"] = True
        return out

    @classmethod
    def from_dict(cls, data: object, what: str) -> Discount:
        d = check_mapping(data, what)
        check_keys(d, what, ("id", "percent"), (*_DISCOUNT_SETS, "windows", "entitlement"))
        entitlement = d.get("entitlement", False)
        if not isinstance(entitlement, bool):
            raise ValueError(f"{what} entitlement: expected a boolean")
        sets = {name: _str_list(d.get(name, []), f"{what} {name}") for name in _DISCOUNT_SETS}
        return cls(
            id=check_str(d["id"], f"{what} id"),
            percent=check_int(d["percent"], f"{what} percent"),
            windows=_windows(d.get("windows", []), f"{what} windows"),
            entitlement=entitlement,
            **sets,
        )


_DISCOUNT_SETS: Final = ("categories", "merchants", "merchant_categories", "venues", "venue_kinds")


@dataclass(frozen=True, slots=True)
class RewardsRules:
    """Reward points: earned for off-peak travel (per charged fare tap inside `offpeak_windows`),
    recycling (per material) and volunteer hours (credited only by `volunteer_operators`), and
    redeemed as fare credit: every `redeem_unit_points` points give `redeem_unit_value`, paid by
    the rewards programme `operator`. A card holds at most `max_points`."""

    operator: str
    redeem_unit_points: int
    redeem_unit_value: int
    max_points: int
    offpeak_points: int = 0
    offpeak_windows: tuple[Window, ...] = ()
    volunteer_points_per_hour: int = 0
    volunteer_operators: frozenset[str] = frozenset()
    max_hours_per_credit: int = 0

    def __post_init__(self) -> None:
        check_str(self.operator, "rewards operator")
        check_int(self.redeem_unit_points, "rewards redeem_unit_points", minimum=1)
        for name in (
            "redeem_unit_value",
            "max_points",
            "offpeak_points",
            "volunteer_points_per_hour",
            "max_hours_per_credit",
        ):
            check_int(getattr(self, name), f"rewards {name}", minimum=0)
        object.__setattr__(
            self,
            "volunteer_operators",
            _check_strs(self.volunteer_operators, "rewards volunteer_operators"),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "operator": self.operator,
            "redeem_unit_points": self.redeem_unit_points,
            "redeem_unit_value": self.redeem_unit_value,
            "max_points": self.max_points,
            "offpeak_points": self.offpeak_points,
            "offpeak_windows": [w.to_dict() for w in self.offpeak_windows],
            "volunteer_points_per_hour": self.volunteer_points_per_hour,
            "volunteer_operators": sorted(self.volunteer_operators),
            "max_hours_per_credit": self.max_hours_per_credit,
        }

    @classmethod
    def from_dict(cls, data: object, what: str) -> RewardsRules:
        d = check_mapping(data, what)
        required = ("operator", "redeem_unit_points", "redeem_unit_value", "max_points")
        optional = (
            "offpeak_points",
            "offpeak_windows",
            "volunteer_points_per_hour",
            "volunteer_operators",
            "max_hours_per_credit",
        )
        check_keys(d, what, required, optional)
        return cls(
            operator=check_str(d["operator"], f"{what} operator"),
            redeem_unit_points=check_int(d["redeem_unit_points"], f"{what} redeem_unit_points"),
            redeem_unit_value=check_int(d["redeem_unit_value"], f"{what} redeem_unit_value"),
            max_points=check_int(d["max_points"], f"{what} max_points"),
            offpeak_points=check_int(d.get("offpeak_points", 0), f"{what} offpeak_points"),
            offpeak_windows=_windows(d.get("offpeak_windows", []), f"{what} offpeak_windows"),
            volunteer_points_per_hour=check_int(
                d.get("volunteer_points_per_hour", 0), f"{what} volunteer_points_per_hour"
            ),
            volunteer_operators=_str_list(
                d.get("volunteer_operators", []), f"{what} volunteer_operators"
            ),
            max_hours_per_credit=check_int(
                d.get("max_hours_per_credit", 0), f"{what} max_hours_per_credit"
            ),
        )


@dataclass(frozen=True, slots=True)
class Facility:
    """A facility opened without payment to cards of `categories` (empty = all) in `windows`
    (empty = any time), e.g. school grounds open to residents at night."""

    categories: frozenset[str] = frozenset()
    windows: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", _check_strs(self.categories, "facility categories"))

    def to_dict(self) -> dict[str, object]:
        return {
            "categories": sorted(self.categories),
            "windows": [w.to_dict() for w in self.windows],
        }

    @classmethod
    def from_dict(cls, data: object, what: str) -> Facility:
        d = check_mapping(data, what)
        check_keys(d, what, (), ("categories", "windows"))
        return cls(
            _str_list(d.get("categories", []), f"{what} categories"),
            _windows(d.get("windows", []), f"{what} windows"),
        )


_SECTION_FIELDS: Final = (
    "timezone",
    "parking",
    "taxi",
    "venues",
    "recycling",
    "discounts",
    "rewards",
    "facilities",
)


@dataclass(frozen=True, slots=True)
class ServicesTariff:
    """Everything the city-services rules read. The default offers no service at all: each
    service command is then declined (`service_not_offered` or an unknown facility/venue)."""

    timezone: str | None = None
    """IANA zone of opening hours, windows and local days; None: the transit section's (one
    city, one clock)."""
    parking: Mapping[str, ParkingFacility] = field(default_factory=_no_entries)
    taxi: TaxiRules | None = None
    venues: Mapping[str, Venue] = field(default_factory=_no_entries)
    recycling: RecyclingRules | None = None
    discounts: tuple[Discount, ...] = ()
    rewards: RewardsRules | None = None
    facilities: Mapping[str, Facility] = field(default_factory=_no_entries)

    def __post_init__(self) -> None:
        if self.timezone is not None:
            check_zone(check_str(self.timezone, "services timezone"))
        object.__setattr__(
            self, "parking", _freeze(self.parking, "services parking", ParkingFacility)
        )
        object.__setattr__(self, "venues", _freeze(self.venues, "services venues", Venue))
        object.__setattr__(
            self, "facilities", _freeze(self.facilities, "services facilities", Facility)
        )
        discounts = tuple(self.discounts)
        if len(discounts) > MAX_LIST:
            raise ValueError(f"services discounts: at most {MAX_LIST} entries")
        ids = [d.id for d in discounts]
        if len(set(ids)) != len(ids):
            raise ValueError("services discounts: ids must be unique")
        object.__setattr__(self, "discounts", discounts)
        for name, kind in (
            ("taxi", TaxiRules),
            ("recycling", RecyclingRules),
            ("rewards", RewardsRules),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"services {name}: expected {kind.__name__} or None")

    @property
    def is_empty(self) -> bool:
        return self == ServicesTariff()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.timezone is not None:
            out["timezone"] = self.timezone
        if self.parking:
            out["parking"] = {k: p.to_dict() for k, p in self.parking.items()}
        if self.taxi is not None:
            out["taxi"] = self.taxi.to_dict()
        if self.venues:
            out["venues"] = {k: v.to_dict() for k, v in self.venues.items()}
        if self.recycling is not None:
            out["recycling"] = self.recycling.to_dict()
        if self.discounts:
            out["discounts"] = [d.to_dict() for d in self.discounts]
        if self.rewards is not None:
            out["rewards"] = self.rewards.to_dict()
        if self.facilities:
            out["facilities"] = {k: f.to_dict() for k, f in self.facilities.items()}
        return out

    @classmethod
    def from_dict(cls, data: object) -> ServicesTariff:
        """Build the section from plain data; `ValueError` names the offending field."""
        what = "tariff services"
        d = check_mapping(data, what)
        check_keys(d, what, (), _SECTION_FIELDS)
        raw_discounts = d.get("discounts", [])
        if not isinstance(raw_discounts, list | tuple):
            raise ValueError(f"{what} discounts: expected a list")
        if len(raw_discounts) > MAX_LIST:
            raise ValueError(f"{what} discounts: at most {MAX_LIST} entries")
        taxi, recycling, rewards = d.get("taxi"), d.get("recycling"), d.get("rewards")
        return cls(
            timezone=(
                None if d.get("timezone") is None else check_str(d["timezone"], f"{what} timezone")
            ),
            parking={
                k: ParkingFacility.from_dict(v, f"{what} parking[{k!r}]")
                for k, v in _table(d.get("parking", {}), f"{what} parking").items()
            },
            taxi=None if taxi is None else TaxiRules.from_dict(taxi, f"{what} taxi"),
            venues={
                k: Venue.from_dict(v, f"{what} venues[{k!r}]")
                for k, v in _table(d.get("venues", {}), f"{what} venues").items()
            },
            recycling=(
                None
                if recycling is None
                else RecyclingRules.from_dict(recycling, f"{what} recycling")
            ),
            discounts=tuple(
                Discount.from_dict(x, f"{what} discounts[{i}]") for i, x in enumerate(raw_discounts)
            ),
            rewards=None if rewards is None else RewardsRules.from_dict(rewards, f"{what} rewards"),
            facilities={
                k: Facility.from_dict(v, f"{what} facilities[{k!r}]")
                for k, v in _table(d.get("facilities", {}), f"{what} facilities").items()
            },
        )


def check_product_entitlements(
    services: ServicesTariff, products: Iterable[tuple[str, Iterable[str], Iterable[str]]]
) -> None:
    """Refuse a tariff whose products (id, venues, discounts) name a venue or discount this
    section does not define: a typo would silently make the tourist card entitle to nothing.
    Checked only when the section offers something (a tariff without services cannot be
    checked against them)."""
    if services.is_empty:
        return
    discount_ids = {d.id for d in services.discounts}
    for product_id, venues, discounts in products:
        what = f"tariff transit.products[{product_id!r}]"
        for venue in venues:
            if venue not in services.venues:
                raise ValueError(f"{what}.venues: {venue!r} is not a venue of tariff services")
        for discount in discounts:
            if discount not in discount_ids:
                raise ValueError(
                    f"{what}.discounts: {discount!r} is not a discount of tariff services"
                )


def _w(days: str, start: str, end: str) -> Window:
    names = [n.strip() for n in days.split(",")]
    return Window.from_dict({"days": names, "from": start, "to": end}, "demo window")


_WEEKDAYS: Final = "mon,tue,wed,thu,fri"
_EVERY_DAY: Final = "mon,tue,wed,thu,fri,sat,sun"


def demo_services() -> ServicesTariff:
    """The demo city's services (EUR cents, Europe/Berlin): two car parks, taxis, a discount
    network, five venues, four recyclable materials, rewards and night access to a schoolyard."""
    return ServicesTariff(
        timezone="Europe/Berlin",
        parking={
            "P-CENTRE": ParkingFacility(
                period_min=15,
                period_price=75,
                daily_max=1_800,
                lost_after_min=24 * 60,
                lost_amount=2_500,
                free_min=10,
            ),
            "P-STATION": ParkingFacility(
                period_min=60,
                period_price=150,
                daily_max=900,
                lost_after_min=72 * 60,
                lost_amount=2_700,
                free_min=0,
            ),
        },
        taxi=TaxiRules(max_per_tap=15_000, max_per_day=30_000),
        venues={
            "museum-city": Venue("museum", 900, (_w("tue,wed,thu,fri,sat,sun", "10:00", "18:00"),)),
            "cinema-lux": Venue("cinema", 1_100, (_w(_EVERY_DAY, "14:00", "02:00"),)),
            "library-central": Venue(
                "library", 0, (_w(_WEEKDAYS, "09:00", "20:00"), _w("sat", "10:00", "16:00"))
            ),
            "gym-north": Venue("gym", 600, (_w(_EVERY_DAY, "06:00", "23:00"),)),
            "pool-east": Venue("pool", 450, (_w(_EVERY_DAY, "07:00", "21:00"),)),
        },
        recycling=RecyclingRules(
            daily_max_credit=500,
            materials={
                "pet": Material(rate_per_kg=40, max_deposit_g=15_000, points_per_kg=20),
                "glass": Material(rate_per_kg=5, max_deposit_g=30_000, points_per_kg=5),
                "cardboard": Material(rate_per_kg=3, max_deposit_g=25_000, points_per_kg=2),
                "aluminium": Material(rate_per_kg=80, max_deposit_g=10_000, points_per_kg=40),
            },
        ),
        discounts=(
            Discount(
                "senior-bakery-morning",
                10,
                categories=frozenset({"senior"}),
                merchant_categories=frozenset({"bakery"}),
                windows=(_w(_WEEKDAYS, "07:00", "10:00"),),
            ),
            Discount(
                "student-culture",
                50,
                categories=frozenset({"student", "youth"}),
                venue_kinds=frozenset({"museum", "cinema"}),
            ),
            Discount(
                "senior-culture",
                30,
                categories=frozenset({"senior"}),
                venue_kinds=frozenset({"museum", "cinema", "pool"}),
            ),
            Discount(
                "tourist-shops",
                10,
                merchant_categories=frozenset({"souvenir", "cafe"}),
                venue_kinds=frozenset({"cinema"}),
                entitlement=True,
            ),
        ),
        rewards=RewardsRules(
            operator="city-rewards",
            redeem_unit_points=100,
            redeem_unit_value=50,
            max_points=100_000,
            offpeak_points=5,
            offpeak_windows=(_w(_WEEKDAYS, "10:00", "15:00"),),
            volunteer_points_per_hour=50,
            volunteer_operators=frozenset({"city", "city-volunteering"}),
            max_hours_per_credit=12,
        ),
        facilities={
            "school-north-grounds": Facility(
                categories=frozenset({"adult", "senior", "student", "youth", "child"}),
                windows=(_w(_EVERY_DAY, "18:00", "07:00"),),
            ),
            "depot-staff-gate": Facility(categories=frozenset({"staff"})),
        },
    )


NO_SERVICES: Final = ServicesTariff()
"""The default section: no city service offered."""
