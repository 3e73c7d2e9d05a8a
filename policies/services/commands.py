"""The service commands (one frozen dataclass per operation), their event types, and the mapping
from a terminal's wire tap to one of them.

A leaf module: it imports nothing from the rest of policies/, so `policies.model` can list these
commands in its `Command` union and these event types in `EVENT_TYPES`. Fields that a terminal
states (amount, weight, hours, points) are typed `int` but are untrusted: the rules check them
again whatever object they hold, the same way `policies.amounts` does for purchases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

# Event types of service decisions (declines use model.EVENT_DECLINED like every other rule).
EVENT_PARKING_ENTRY: Final = "parking_entry"
EVENT_PARKING_EXIT: Final = "parking_exit"
EVENT_PARKING_LOST: Final = "parking_lost"
EVENT_TAXI_FARE: Final = "taxi_fare"
EVENT_RETAIL_PAYMENT: Final = "retail_payment"
EVENT_VENUE_ENTRY: Final = "venue_entry"
EVENT_RECYCLE_CREDIT: Final = "recycle_credit"
EVENT_REWARD_CREDIT: Final = "reward_credit"
EVENT_POINTS_REDEEMED: Final = "points_redeemed"
EVENT_FACILITY_ACCESS: Final = "facility_access"
SERVICE_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        EVENT_PARKING_ENTRY,
        EVENT_PARKING_EXIT,
        EVENT_PARKING_LOST,
        EVENT_TAXI_FARE,
        EVENT_RETAIL_PAYMENT,
        EVENT_VENUE_ENTRY,
        EVENT_RECYCLE_CREDIT,
        EVENT_REWARD_CREDIT,
        EVENT_POINTS_REDEEMED,
        EVENT_FACILITY_ACCESS,
    }
)


@dataclass(frozen=True, slots=True)
class ParkingEntry:
    """The car enters car park `facility` (a tariff parking key)."""

    terminal_id: str
    operator: str
    facility: str


@dataclass(frozen=True, slots=True)
class ParkingExit:
    """The car leaves car park `facility`: the session is charged by the time tariff."""

    terminal_id: str
    operator: str
    facility: str


@dataclass(frozen=True, slots=True)
class ParkingClose:
    """The car park's operator closes the card's open session (exit never seen)."""

    terminal_id: str
    operator: str
    facility: str


@dataclass(frozen=True, slots=True)
class TaxiFare:
    """The driver's handheld charges the metered `amount`; `trip_id` is "" when not sent."""

    terminal_id: str
    operator: str
    amount: int
    trip_id: str = ""


@dataclass(frozen=True, slots=True)
class RetailPayment:
    """A till charges `amount` for `merchant`, whose merchant category is `category`."""

    terminal_id: str
    operator: str
    amount: int
    merchant: str
    category: str


@dataclass(frozen=True, slots=True)
class VenueEntry:
    """Entry to `venue` (museum, cinema, library, gym...): an entitlement or a paid entry."""

    terminal_id: str
    operator: str
    venue: str


@dataclass(frozen=True, slots=True)
class RecycleDeposit:
    """A recycling kiosk reports `weight_g` grams of `material` deposited by the cardholder."""

    terminal_id: str
    operator: str
    material: str
    weight_g: int


@dataclass(frozen=True, slots=True)
class RewardCredit:
    """An authorised kiosk credits `hours` of volunteer work as reward points."""

    terminal_id: str
    operator: str
    hours: int


@dataclass(frozen=True, slots=True)
class RedeemPoints:
    """Turn `points` reward points into stored value (fare credit)."""

    terminal_id: str
    operator: str
    points: int


@dataclass(frozen=True, slots=True)
class FacilityAccess:
    """Open `facility` (e.g. school grounds at night) without payment, if the rules allow."""

    terminal_id: str
    operator: str
    facility: str


ServiceCommand: TypeAlias = (
    ParkingEntry
    | ParkingExit
    | ParkingClose
    | TaxiFare
    | RetailPayment
    | VenueEntry
    | RecycleDeposit
    | RewardCredit
    | RedeemPoints
    | FacilityAccess
)

SERVICE_COMMAND_TYPES: Final[frozenset[type]] = frozenset(
    {
        ParkingEntry,
        ParkingExit,
        ParkingClose,
        TaxiFare,
        RetailPayment,
        VenueEntry,
        RecycleDeposit,
        RewardCredit,
        RedeemPoints,
        FacilityAccess,
    }
)

SERVICE_OPS: Final[frozenset[str]] = frozenset(
    {
        "parking_entry",
        "parking_exit",
        "parking_close",
        "taxi_fare",
        "venue_entry",
        "recycle",
        "reward_credit",
        "redeem_points",
        "access",
    }
)
"""Wire ops that map to a service command (plus `purchase` at a retail or venue till)."""

RETAIL_PURCHASE_KINDS: Final[frozenset[str]] = frozenset({"retail", "venue"})
"""Terminal kinds whose `purchase` is a `RetailPayment` (merchant category, discounts)."""


def _text(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def command_from_tap(
    op: str,
    fields: Mapping[str, object],
    *,
    kind: str,
    terminal_id: str,
    operator: str,
    network: str,
) -> ServiceCommand | None:
    """The service command for a decoded tap, or None when `op` is not a service operation.

    `kind`, `operator` and `network` come from the terminal's registration. For the service
    kinds the registered `network` names what the terminal serves: the car park of a parking
    terminal, the venue or facility of a venue turnstile, the merchant category of a retail
    till. A tap field of the same meaning (`facility`, `venue`, `category`) overrides it.
    Whether `kind` may perform `op` at all is the caller's check (gateway.tap_commands.KIND_OPS).
    Numeric fields that are not ints (the wire decoder guarantees they are) give None.
    """
    if op == "purchase":
        if kind not in RETAIL_PURCHASE_KINDS:
            return None
        amount = fields.get("amount")
        if not isinstance(amount, int):
            return None
        default_category = network if kind == "retail" and network else kind
        return RetailPayment(
            terminal_id,
            operator,
            amount,
            _text(fields.get("merchant"), operator),
            _text(fields.get("category"), default_category),
        )
    if op not in SERVICE_OPS:
        return None
    if op in ("parking_entry", "parking_exit", "parking_close", "access"):
        facility = _text(fields.get("facility"), network)
        if op == "parking_entry":
            return ParkingEntry(terminal_id, operator, facility)
        if op == "parking_exit":
            return ParkingExit(terminal_id, operator, facility)
        if op == "parking_close":
            return ParkingClose(terminal_id, operator, facility)
        return FacilityAccess(terminal_id, operator, facility)
    if op == "venue_entry":
        return VenueEntry(terminal_id, operator, _text(fields.get("venue"), network))
    if op == "taxi_fare":
        amount = fields.get("amount")
        if not isinstance(amount, int):
            return None
        return TaxiFare(terminal_id, operator, amount, _text(fields.get("trip_id"), ""))
    if op == "recycle":
        weight = fields.get("weight_g")
        if not isinstance(weight, int):
            return None
        return RecycleDeposit(terminal_id, operator, _text(fields.get("material"), ""), weight)
    if op == "reward_credit":
        hours = fields.get("hours")
        return RewardCredit(terminal_id, operator, hours) if isinstance(hours, int) else None
    points = fields.get("points")  # redeem_points
    return RedeemPoints(terminal_id, operator, points) if isinstance(points, int) else None
