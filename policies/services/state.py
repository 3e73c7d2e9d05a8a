"""The services half of a card's state: the one optional field `CardState.services`.

This module owns `ServicesState` (reward points, the open parking session, per-day usage of the
taxi and recycling limits, the last few taxi trips and venue entries for repeat detection, venue
memberships, and which one-entry venue entitlements of the card's products were used) and its
plain-data round trip. The products themselves (the tourist card) are the transit half's
(`CardState.products`, policies/passes.py); only their used entries are recorded here, keyed by
the product's `grant_id`. Every
collection is bounded, so a card's stored state cannot grow without limit, and `to_dict` writes
only what differs from the default so a card that never used a service stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Final

from policies._validate import check_int, check_keys, check_mapping, check_str

MAX_TRIPS: Final = 4
"""Taxi trips remembered (terminal, trip id, amount) to answer a re-tapped trip."""
MAX_VENUE_TAPS: Final = 4
"""Venue entries remembered (venue, time) for double-tap protection at a turnstile."""
MAX_MEMBERSHIP_VENUES: Final = 64
"""Venues (and discounts) one membership may list."""
MAX_USED_ENTRIES: Final = 64
"""One-entry entitlements used (grant id, venue) remembered; entries of products no longer on
the card are dropped first."""
MAX_MEMBERSHIPS: Final = 8
"""Memberships (grants stored on the card itself) a card holds at once."""


@dataclass(frozen=True, slots=True)
class ParkingSession:
    """An open parking session: which car park, whose, entered when and where."""

    facility: str
    operator: str
    terminal_id: str
    entry_ms: int

    def to_dict(self) -> dict[str, object]:
        return {
            "facility": self.facility,
            "operator": self.operator,
            "terminal_id": self.terminal_id,
            "entry_ms": self.entry_ms,
        }

    @classmethod
    def from_dict(cls, data: object) -> ParkingSession:
        what = "services parking session"
        d = check_mapping(data, what)
        check_keys(d, what, ("facility", "operator", "terminal_id", "entry_ms"))
        return cls(
            check_str(d["facility"], f"{what} facility"),
            check_str(d["operator"], f"{what} operator"),
            check_str(d["terminal_id"], f"{what} terminal_id"),
            check_int(d["entry_ms"], f"{what} entry_ms"),
        )


@dataclass(frozen=True, slots=True)
class Membership:
    """Unlimited entry to the listed venues (a gym or library membership, a season ticket) and
    the listed discounts, valid in [from_ms, until_ms). Issued onto the card by an operator
    (admin `put_card`); entries under a membership are free."""

    membership_id: str
    venues: frozenset[str]
    until_ms: int
    discounts: frozenset[str] = frozenset()
    from_ms: int = 0

    def active(self, now_ms: int) -> bool:
        return self.from_ms <= now_ms < self.until_ms

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.membership_id,
            "venues": sorted(self.venues),
            "until_ms": self.until_ms,
            "discounts": sorted(self.discounts),
            "from_ms": self.from_ms,
        }

    @classmethod
    def from_dict(cls, data: object, what: str) -> Membership:
        d = check_mapping(data, what)
        check_keys(d, what, ("id", "venues", "until_ms"), ("discounts", "from_ms"))
        return cls(
            check_str(d["id"], f"{what} id"),
            _strs(d["venues"], f"{what} venues"),
            check_int(d["until_ms"], f"{what} until_ms"),
            _strs(d.get("discounts", []), f"{what} discounts"),
            check_int(d.get("from_ms", 0), f"{what} from_ms"),
        )


def _strs(value: object, what: str) -> frozenset[str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_MEMBERSHIP_VENUES:
        raise ValueError(f"{what}: expected a list of at most {MAX_MEMBERSHIP_VENUES} strings")
    return frozenset(check_str(v, f"{what} entry") for v in value)


def _rows(value: object, what: str, arity: int, limit: int) -> list[list[object]]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
    rows: list[list[object]] = []
    for i, row in enumerate(value):
        if not isinstance(row, list | tuple) or len(row) != arity:
            raise ValueError(f"{what}[{i}]: expected a list of {arity} values")
        rows.append(list(row))
    # Keep the newest, like CardState.recent_taps: a lowered bound must not brick stored cards.
    return rows[-limit:]


def _day_pair(value: object, what: str) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{what}: expected [day, amount]")
    return check_int(value[0], f"{what} day"), check_int(value[1], f"{what} amount", minimum=0)


_OPTIONAL: Final = (
    "points",
    "parking",
    "last_exit",
    "taxi_day",
    "trips",
    "recycle_day",
    "venue_taps",
    "used",
    "memberships",
)


@dataclass(frozen=True, slots=True)
class ServicesState:
    """Per-card services data. Days are local calendar dates as ordinals (`date.toordinal()`)."""

    points: int = 0
    parking: ParkingSession | None = None
    last_exit: tuple[str, int] | None = None
    """(facility, time) of the last charged exit, to answer a double tap at the exit barrier."""
    taxi_day: tuple[int, int] = (0, 0)
    """(day, amount paid by taxi that day)."""
    trips: tuple[tuple[str, str, int], ...] = ()
    """(terminal id, trip id, amount) of the last MAX_TRIPS taxi trips with a trip id."""
    recycle_day: tuple[int, int] = (0, 0)
    """(day, recycling credit earned that day)."""
    venue_taps: tuple[tuple[str, int], ...] = ()
    """(venue, time) of the last MAX_VENUE_TAPS admitted entries."""
    used: tuple[tuple[str, str], ...] = ()
    """(grant id, venue) of one-entry product entitlements already used."""
    memberships: tuple[Membership, ...] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.points:
            out["points"] = self.points
        if self.parking is not None:
            out["parking"] = self.parking.to_dict()
        if self.last_exit is not None:
            out["last_exit"] = list(self.last_exit)
        if self.taxi_day != (0, 0):
            out["taxi_day"] = list(self.taxi_day)
        if self.trips:
            out["trips"] = [list(t) for t in self.trips]
        if self.recycle_day != (0, 0):
            out["recycle_day"] = list(self.recycle_day)
        if self.venue_taps:
            out["venue_taps"] = [list(t) for t in self.venue_taps]
        if self.used:
            out["used"] = [list(u) for u in self.used]
        if self.memberships:
            out["memberships"] = [g.to_dict() for g in self.memberships]
        return out

    @classmethod
    def from_dict(cls, data: object) -> ServicesState:
        """Build from plain data (the `services` field of a stored card); `ValueError` names
        the bad field."""
        what = "card state field services"
        d: Mapping[str, object] = check_mapping(data, what)
        check_keys(d, what, (), _OPTIONAL)
        raw_parking = d.get("parking")
        parking = None if raw_parking is None else ParkingSession.from_dict(raw_parking)
        raw_exit = d.get("last_exit")
        last_exit = None
        if raw_exit is not None:
            ((facility, at),) = _rows([raw_exit], f"{what} last_exit", 2, 1)
            last_exit = (
                check_str(facility, f"{what} last_exit facility"),
                check_int(at, f"{what} last_exit time"),
            )
        trips = tuple(
            (
                check_str(t, f"{what} trips terminal"),
                check_str(i, f"{what} trips id"),
                check_int(a, f"{what} trips amount"),
            )
            for t, i, a in _rows(d.get("trips", []), f"{what} trips", 3, MAX_TRIPS)
        )
        venue_taps = tuple(
            (check_str(v, f"{what} venue_taps venue"), check_int(t, f"{what} venue_taps time"))
            for v, t in _rows(d.get("venue_taps", []), f"{what} venue_taps", 2, MAX_VENUE_TAPS)
        )
        used = tuple(
            (check_str(g, f"{what} used grant"), check_str(v, f"{what} used venue"))
            for g, v in _rows(d.get("used", []), f"{what} used", 2, MAX_USED_ENTRIES)
        )
        raw_members = d.get("memberships", [])
        if not isinstance(raw_members, list | tuple):
            raise ValueError(f"{what} memberships: expected a list")
        memberships = tuple(
            Membership.from_dict(g, f"{what} memberships[{i}]") for i, g in enumerate(raw_members)
        )[-MAX_MEMBERSHIPS:]
        return cls(
            points=check_int(d.get("points", 0), f"{what} points", minimum=0),
            parking=parking,
            last_exit=last_exit,
            taxi_day=_day_pair(d.get("taxi_day", (0, 0)), f"{what} taxi_day"),
            trips=trips,
            recycle_day=_day_pair(d.get("recycle_day", (0, 0)), f"{what} recycle_day"),
            venue_taps=venue_taps,
            used=used,
            memberships=memberships,
        )


EMPTY_SERVICES: Final = ServicesState()

_FIELDS: Final = tuple(f.name for f in fields(ServicesState))
_values: Final = attrgetter(*_FIELDS)
_INDEX: Final = {name: i for i, name in enumerate(_FIELDS)}


def evolve(services: ServicesState, **changes: object) -> ServicesState:
    """`dataclasses.replace` for `ServicesState`, about twice as fast (it is on the path of every
    service decision and of every off-peak fare); an unknown field name raises `KeyError`."""
    values = list(_values(services))
    for name, value in changes.items():
        values[_INDEX[name]] = value
    return ServicesState(*values)
