"""What a card remembers for transit and products, as small immutable values with a plain-data form.

This module owns the card-side shapes of issue 3's transit half, each optional on `CardState`:

- `HeldProduct`: a product bought onto the card (1-/7-/31-day pass, tourist card), with its
  terms copied at purchase (so withdrawing a product from sale never voids one already sold) and
  its entitlements: the transit networks it covers, one entry per listed venue, listed discounts.
  This is the structure the city-services rules read (docs/tariff.md, "Entitlements").
- `TransitMemory`: the GTFS transfer context of the current journey, the open tap-on trip,
  incomplete trips awaiting an operator correction, and the spend per local day / month that
  the caps are measured against.
- `AutoTopup`: the card's automatic top-up setting.
- `CapProgress`: how far one decision left the card toward one cap (reported, not stored).

Every collection is bounded (the MAX_* constants), so a card's stored state cannot grow without
limit. `from_dict` refuses malformed data with a `ValueError` naming the field, like
`CardState.from_dict`. No rules live here; only shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from policies._slots import slot_setters
from policies._validate import check_int, check_keys, check_mapping, check_str
from policies.gtfs.quote import MAX_HELD_PASSES, HeldPass, JourneyState
from policies.gtfs.transfers import SubJourney

MAX_PRODUCTS: Final = 8
"""Products a card holds at once (expired ones are dropped first when a new one is bought)."""

MAX_INCOMPLETE: Final = 8
"""Incomplete trips remembered for correction; the oldest is forgotten first."""

SPEND_DAYS: Final = 7
"""Local days of spend kept: enough for the daily, ISO-weekly and rolling 7-day caps."""

SPEND_MONTHS: Final = 2
"""Local months of spend kept: the monthly cap's month and the one before."""

MAX_VENUES: Final = 32
MAX_DISCOUNTS: Final = 16
MAX_NETWORKS: Final = 32

DURATION_UNITS: Final = ("minutes", "hours", "days", "weeks", "months")


def _opt_int(value: object, what: str) -> int | None:
    return None if value is None else check_int(value, what)


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else check_str(value, what)


def _list(value: object, what: str, limit: int) -> list[object] | tuple[object, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{what}: at most {limit} entries, got {len(value)}")
    return value


def _pairs(value: object, what: str, *, minimum: int) -> list[tuple[int, int]]:
    """[[period, amount], ...] -> (period, amount) pairs sorted by period."""
    out: list[tuple[int, int]] = []
    for i, pair in enumerate(_list(value, what, 10_000)):
        raw = _list(pair, f"{what}[{i}]", 2)
        if len(raw) != 2:
            raise ValueError(f"{what}[{i}]: expected [period, amount]")
        out.append(
            (
                check_int(raw[0], f"{what}[{i}] period", minimum=minimum),
                check_int(raw[1], f"{what}[{i}] amount", minimum=0),
            )
        )
    out.sort()
    return out


def _strs(value: object, what: str, limit: int) -> tuple[str, ...]:
    return tuple(check_str(v, f"{what}[{i}]") for i, v in enumerate(_list(value, what, limit)))


# ------------------------------------------------------------------------------------------------
# Products on the card
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldProduct:
    """A product bought onto the card. Usable while not activated (first use activates it) or
    activated and `now < expires_ms`."""

    product_id: str
    bought_ms: int
    operator: str
    """Who the sale was attributed to (settlement)."""
    price: int
    duration_amount: int
    duration_unit: str
    """One of DURATION_UNITS; the validity runs from activation (local wall-clock for days+)."""
    networks: tuple[str, ...] | None = None
    """Transit networks covered; None: every network; (): no transit (a venue-only product)."""
    activated_ms: int | None = None
    expires_ms: int | None = None
    """Exclusive; set together with `activated_ms`."""
    venues: tuple[str, ...] = ()
    """Venues with one entry each while usable; the services rules record the entries used
    (keyed by `grant_id`), so this list itself never changes."""
    discounts: tuple[str, ...] = ()
    """Discount ids of the discount network this product entitles to while usable."""

    @property
    def grant_id(self) -> str:
        """Unique per product instance on a card: "<product id>@<bought ms>"."""
        return f"{self.product_id}@{self.bought_ms}"

    def usable(self, now_ms: int) -> bool:
        return self.expires_ms is None or (
            self.activated_ms is not None and self.activated_ms <= now_ms < self.expires_ms
        )

    def covers(self, network: str) -> bool:
        return self.networks is None or network in self.networks

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "product": self.product_id,
            "bought_ms": self.bought_ms,
            "operator": self.operator,
            "price": self.price,
            "duration": [self.duration_amount, self.duration_unit],
            "networks": None if self.networks is None else list(self.networks),
        }
        if self.activated_ms is not None:
            d["activated_ms"] = self.activated_ms
            d["expires_ms"] = self.expires_ms
        if self.venues:
            d["venues"] = list(self.venues)
        if self.discounts:
            d["discounts"] = list(self.discounts)
        return d

    @classmethod
    def from_dict(cls, data: object, what: str = "product") -> HeldProduct:
        d = check_mapping(data, what)
        check_keys(
            d,
            what,
            ("product", "bought_ms", "operator", "price", "duration", "networks"),
            ("activated_ms", "expires_ms", "venues", "discounts"),
        )
        duration = _list(d["duration"], f"{what} duration", 2)
        if len(duration) != 2:
            raise ValueError(f"{what} duration: expected [amount, unit]")
        unit = check_str(duration[1], f"{what} duration unit")
        if unit not in DURATION_UNITS:
            raise ValueError(f"{what} duration unit: expected one of {DURATION_UNITS}")
        raw_networks = d["networks"]
        networks = (
            None if raw_networks is None else _strs(raw_networks, f"{what} networks", MAX_NETWORKS)
        )
        activated = _opt_int(d.get("activated_ms"), f"{what} activated_ms")
        expires = _opt_int(d.get("expires_ms"), f"{what} expires_ms")
        if (activated is None) != (expires is None):
            raise ValueError(f"{what}: activated_ms and expires_ms go together")
        return cls(
            product_id=check_str(d["product"], f"{what} product"),
            bought_ms=check_int(d["bought_ms"], f"{what} bought_ms"),
            operator=check_str(d["operator"], f"{what} operator"),
            price=check_int(d["price"], f"{what} price", minimum=0),
            duration_amount=check_int(duration[0], f"{what} duration amount", minimum=1),
            duration_unit=unit,
            networks=networks,
            activated_ms=activated,
            expires_ms=expires,
            venues=_strs(d.get("venues", ()), f"{what} venues", MAX_VENUES),
            discounts=_strs(d.get("discounts", ()), f"{what} discounts", MAX_DISCOUNTS),
        )


# ------------------------------------------------------------------------------------------------
# Transit memory: journey context, trips, spend
# ------------------------------------------------------------------------------------------------


def _journey_state_to_list(s: JourneyState) -> dict[str, object]:
    d: dict[str, object] = {"last": s.last_start_ms}
    if s.sub is not None:
        sub = s.sub
        d["sub"] = [
            sub.first_start_ms,
            sub.first_end_ms,
            sub.transfers,
            sub.last_group,
            sub.last_amount,
        ]
    if s.passes:
        d["passes"] = [[p.fare_product_id, p.valid_from_ms, p.valid_until_ms] for p in s.passes]
    return d


def _journey_state_from(data: object, what: str) -> JourneyState:
    d = check_mapping(data, what)
    check_keys(d, what, ("last",), ("sub", "passes"))
    sub: SubJourney | None = None
    if d.get("sub") is not None:
        raw = _list(d["sub"], f"{what} sub", 5)
        if len(raw) != 5:
            raise ValueError(f"{what} sub: expected 5 values")
        sub = SubJourney(
            check_int(raw[0], f"{what} sub first_start_ms"),
            check_int(raw[1], f"{what} sub first_end_ms"),
            check_int(raw[2], f"{what} sub transfers", minimum=0),
            _opt_str(raw[3], f"{what} sub last_group"),
            check_int(raw[4], f"{what} sub last_amount", minimum=0),
        )
    passes: list[HeldPass] = []
    for i, p in enumerate(_list(d.get("passes", ()), f"{what} passes", MAX_HELD_PASSES)):
        raw_pass = _list(p, f"{what} passes[{i}]", 3)
        if len(raw_pass) != 3:
            raise ValueError(f"{what} passes[{i}]: expected [product, from_ms, until_ms]")
        passes.append(
            HeldPass(
                check_str(raw_pass[0], f"{what} passes[{i}] product"),
                check_int(raw_pass[1], f"{what} passes[{i}] from_ms"),
                check_int(raw_pass[2], f"{what} passes[{i}] until_ms"),
            )
        )
    return JourneyState(_opt_int(d["last"], f"{what} last"), sub, tuple(passes))


@dataclass(frozen=True, slots=True, init=False)
class TransitJourney:
    """The GTFS transfer context of the journey in progress (what the next leg's price needs)."""

    feed_version: str
    """A context priced under another feed version is not continued (tariff reloaded)."""
    category: str | None
    """The GTFS rider category the journey is priced for; a change starts a new journey."""
    state: JourneyState

    def __init__(
        self,
        feed_version: str,
        category: str | None,
        state: JourneyState,
    ) -> None:
        _TRANSIT_JOURNEY[0](self, feed_version)
        _TRANSIT_JOURNEY[1](self, category)
        _TRANSIT_JOURNEY[2](self, state)

    def to_dict(self) -> dict[str, object]:
        return {
            "feed": self.feed_version,
            "category": self.category,
            **_journey_state_to_list(self.state),
        }

    @classmethod
    def from_dict(cls, data: object, what: str = "journey") -> TransitJourney:
        d = check_mapping(data, what)
        check_keys(d, what, ("feed", "category", "last"), ("sub", "passes"))
        rest = {k: v for k, v in d.items() if k in ("last", "sub", "passes")}
        return cls(
            check_str(d["feed"], f"{what} feed"),
            _opt_str(d["category"], f"{what} category"),
            _journey_state_from(rest, what),
        )


_TRANSIT_JOURNEY = slot_setters(TransitJourney)


@dataclass(frozen=True, slots=True)
class OpenTrip:
    """A tap on without its tap off yet: the maximum fare was charged (`charged`, after caps)."""

    ref: str
    """The journey reference an operator's correction names."""
    network: str
    route: str | None
    """The GTFS route priced (None: flat fare)."""
    stop: str | None
    on_ms: int
    charged: int
    max_fare: int
    """The maximum fare before caps."""
    operator: str
    """Who received `charged`; a later credit is attributed to the same operator."""
    terminal_id: str
    product: str
    before: TransitJourney | None = None
    """The journey context before the tap on, to price the real leg at tap off."""

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "ref": self.ref,
            "network": self.network,
            "route": self.route,
            "stop": self.stop,
            "on_ms": self.on_ms,
            "charged": self.charged,
            "max_fare": self.max_fare,
            "operator": self.operator,
            "terminal": self.terminal_id,
            "product": self.product,
        }
        if self.before is not None:
            d["before"] = self.before.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: object, what: str = "trip") -> OpenTrip:
        d = check_mapping(data, what)
        check_keys(
            d,
            what,
            ("ref", "network", "route", "stop", "on_ms", "charged", "max_fare", "operator"),
            ("terminal", "product", "before"),
        )
        before = d.get("before")
        return cls(
            ref=check_str(d["ref"], f"{what} ref"),
            network=check_str(d["network"], f"{what} network"),
            route=_opt_str(d["route"], f"{what} route"),
            stop=_opt_str(d["stop"], f"{what} stop"),
            on_ms=check_int(d["on_ms"], f"{what} on_ms"),
            charged=check_int(d["charged"], f"{what} charged", minimum=0),
            max_fare=check_int(d["max_fare"], f"{what} max_fare", minimum=0),
            operator=check_str(d["operator"], f"{what} operator"),
            terminal_id=check_str(d.get("terminal", "?"), f"{what} terminal"),
            product=check_str(d.get("product", "fare"), f"{what} product"),
            before=None if before is None else TransitJourney.from_dict(before, f"{what} before"),
        )


@dataclass(frozen=True, slots=True)
class IncompleteTrip:
    """A trip that was never tapped off: it kept the maximum fare until an operator corrects it."""

    ref: str
    network: str
    on_ms: int
    charged: int
    operator: str

    def to_dict(self) -> list[object]:
        return [self.ref, self.network, self.on_ms, self.charged, self.operator]

    @classmethod
    def from_dict(cls, data: object, what: str = "incomplete trip") -> IncompleteTrip:
        raw = _list(data, what, 5)
        if len(raw) != 5:
            raise ValueError(f"{what}: expected [ref, network, on_ms, charged, operator]")
        return cls(
            check_str(raw[0], f"{what} ref"),
            check_str(raw[1], f"{what} network"),
            check_int(raw[2], f"{what} on_ms"),
            check_int(raw[3], f"{what} charged", minimum=0),
            check_str(raw[4], f"{what} operator"),
        )


@dataclass(frozen=True, slots=True, init=False)
class TransitMemory:
    """Everything transit keeps between taps. All fields bounded."""

    journey: TransitJourney | None = None
    trip: OpenTrip | None = None
    incomplete: tuple[IncompleteTrip, ...] = ()
    """Oldest first, at most MAX_INCOMPLETE."""
    spend_days: tuple[tuple[int, int], ...] = ()
    """(local date ordinal, transit spend that day), ascending, the last SPEND_DAYS days."""
    spend_months: tuple[tuple[int, int], ...] = ()
    """(local month as year * 12 + month - 1, transit spend that month), ascending, the last
    SPEND_MONTHS months (two: a clock a little behind at a month end still finds its month)."""
    trips: int = 0
    """Tap-on counter: journey references are "<card trips>"-based and never reused."""

    def __init__(
        self,
        journey: TransitJourney | None = None,
        trip: OpenTrip | None = None,
        incomplete: tuple[IncompleteTrip, ...] = (),
        spend_days: tuple[tuple[int, int], ...] = (),
        spend_months: tuple[tuple[int, int], ...] = (),
        trips: int = 0,
    ) -> None:
        _TRANSIT_MEMORY[0](self, journey)
        _TRANSIT_MEMORY[1](self, trip)
        _TRANSIT_MEMORY[2](self, incomplete)
        _TRANSIT_MEMORY[3](self, spend_days)
        _TRANSIT_MEMORY[4](self, spend_months)
        _TRANSIT_MEMORY[5](self, trips)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {}
        if self.journey is not None:
            d["journey"] = self.journey.to_dict()
        if self.trip is not None:
            d["trip"] = self.trip.to_dict()
        if self.incomplete:
            d["incomplete"] = [t.to_dict() for t in self.incomplete]
        if self.spend_days:
            d["spend_days"] = [[day, amount] for day, amount in self.spend_days]
        if self.spend_months:
            d["spend_months"] = [[month, amount] for month, amount in self.spend_months]
        if self.trips:
            d["trips"] = self.trips
        return d

    @classmethod
    def from_dict(cls, data: object, what: str = "card state field transit") -> TransitMemory:
        d = check_mapping(data, what)
        check_keys(
            d, what, (), ("journey", "trip", "incomplete", "spend_days", "spend_months", "trips")
        )
        journey = d.get("journey")
        trip = d.get("trip")
        # Keep the newest rather than refuse (as recent_taps does): lowering a bound in a release
        # must not make stored cards unloadable.
        incomplete = [
            IncompleteTrip.from_dict(t, f"{what} incomplete[{i}]")
            for i, t in enumerate(_list(d.get("incomplete", ()), f"{what} incomplete", 10_000))
        ][-MAX_INCOMPLETE:]
        days = _pairs(d.get("spend_days", ()), f"{what} spend_days", minimum=1)
        months = _pairs(d.get("spend_months", ()), f"{what} spend_months", minimum=0)
        return cls(
            journey=None
            if journey is None
            else TransitJourney.from_dict(journey, f"{what} journey"),
            trip=None if trip is None else OpenTrip.from_dict(trip, f"{what} trip"),
            incomplete=tuple(incomplete),
            spend_days=tuple(days[-SPEND_DAYS:]),
            spend_months=tuple(months[-SPEND_MONTHS:]),
            trips=check_int(d.get("trips", 0), f"{what} trips", minimum=0),
        )


_TRANSIT_MEMORY = slot_setters(TransitMemory)


EMPTY_TRANSIT: Final = TransitMemory()


@dataclass(frozen=True, slots=True)
class AutoTopup:
    """Top the card up by `amount` (an event for the funding side) when a charge leaves the
    balance below `threshold`. `pending_ms`: a request is outstanding since then; no second
    request is made until a top-up arrives."""

    threshold: int
    amount: int
    pending_ms: int | None = None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"threshold": self.threshold, "amount": self.amount}
        if self.pending_ms is not None:
            d["pending_ms"] = self.pending_ms
        return d

    @classmethod
    def from_dict(cls, data: object, what: str = "card state field auto_topup") -> AutoTopup:
        d = check_mapping(data, what)
        check_keys(d, what, ("threshold", "amount"), ("pending_ms",))
        return cls(
            check_int(d["threshold"], f"{what} threshold", minimum=0),
            check_int(d["amount"], f"{what} amount", minimum=1),
            _opt_int(d.get("pending_ms"), f"{what} pending_ms"),
        )


def products_to_list(products: tuple[HeldProduct, ...]) -> list[dict[str, object]]:
    return [p.to_dict() for p in products]


def products_from(data: object, what: str = "card state field products") -> tuple[HeldProduct, ...]:
    items = _list(data, what, 10_000)
    return tuple(HeldProduct.from_dict(p, f"{what}[{i}]") for i, p in enumerate(items))[
        -MAX_PRODUCTS:
    ]


# ------------------------------------------------------------------------------------------------
# Reported with a decision
# ------------------------------------------------------------------------------------------------


class CapProgress(NamedTuple):
    """Where the card stands toward one cap after a decision. (A named tuple: a decision builds
    one per cap on every transit tap, and this is the cheapest immutable record to build.)"""

    cap_id: str
    kind: str
    period: str
    """Which period: "2026-01-05" (day), "2026-01-05..2026-01-11" (ISO week, Monday first),
    "2025-12-30..2026-01-05" (rolling 7 days ending today), "2026-01" (month)."""
    spent: int
    amount: int
    """The cap."""
    saved: int = 0
    """How much this cap (alone) would take off this decision's fare."""

    @property
    def remaining(self) -> int:
        return max(0, self.amount - self.spent)

    def to_dict(self) -> dict[str, object]:
        return {
            "cap": self.cap_id,
            "kind": self.kind,
            "period": self.period,
            "spent": self.spent,
            "amount": self.amount,
            "remaining": self.remaining,
            "saved": self.saved,
        }


def entitlement_summary(products: tuple[HeldProduct, ...]) -> Mapping[str, object]:
    """A compact view of the entitlements on a card (for admin display)."""
    return {
        "venues": sorted({v for p in products for v in p.venues}),
        "discounts": sorted({d for p in products for d in p.discounts}),
    }
