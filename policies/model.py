"""The core's vocabulary: card state, the commands a terminal can send, and what `decide` returns.

This module owns the shapes only, no rules: `CardState` (what the store persists per card, with a
plain-data round trip), one frozen command class per operation, and the `Decision` / `Event` /
`Outcome` triple. Everything is a frozen, slotted dataclass so a value handed to an actor, a
journal or a test can never change under it, and so construction on the hot path stays cheap.
Money is `int` minor units and time `int` epoch milliseconds throughout (docs/internals.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from policies._slots import slot_setters
from policies._validate import check_int, check_keys, check_mapping, check_str
from policies.services.commands import SERVICE_EVENT_TYPES, ServiceCommand
from policies.services.state import ServicesState
from policies.transit_state import (
    AutoTopup,
    CapProgress,
    HeldProduct,
    TransitMemory,
    products_from,
    products_to_list,
)

MAX_RECENT_TAPS: Final = 8
"""How many (gate, time) taps a card remembers for double-tap protection.

Bounded so a card's stored state cannot grow without limit; 8 distinct gates inside one double-tap
window is far beyond any real journey, and forgetting the oldest only risks charging a tap that
would otherwise have been a repeat."""

CardStatus: TypeAlias = Literal["active", "blocked"]
CARD_STATUSES: Final[frozenset[str]] = frozenset({"active", "blocked"})

# Event types. `decide` emits one event per decision, so the journal has an entry for every tap,
# including the ones that moved no money; the first event always mirrors the decision. A second
# event may follow that moves no money (auto_topup_requested, for the funding side).
EVENT_FARE_CHARGED: Final = "fare_charged"
EVENT_REPEAT_TAP: Final = "repeat_tap"
EVENT_PURCHASE: Final = "purchase"
EVENT_TOPUP: Final = "topup"
EVENT_DECLINED: Final = "declined"
# Transit products (policies/transit.py, passes.py, stored_value.py).
EVENT_TAP_ON: Final = "tap_on"
"""The maximum fare charged at a tap on."""
EVENT_TAP_OFF: Final = "tap_off"
"""A tap off: the difference between the maximum and the real fare credited (amount <= 0)."""
EVENT_FARE_CORRECTED: Final = "fare_corrected"
"""An operator's correction of an incomplete trip (a credit, amount <= 0)."""
EVENT_PRODUCT_BOUGHT: Final = "product_bought"
EVENT_AUTO_TOPUP_REQUESTED: Final = "auto_topup_requested"
"""Amount 0: asks the funding side to load `detail["amount"]` onto the card."""
EVENT_CARD_INFO: Final = "card_info"
"""Amount 0: a kiosk showed the cardholder the card's balance and products."""
EVENT_INSPECTION: Final = "inspection"
"""Amount 0: a ticket inspector found a valid ticket on the card."""
TRANSIT_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        EVENT_TAP_ON,
        EVENT_TAP_OFF,
        EVENT_FARE_CORRECTED,
        EVENT_PRODUCT_BOUGHT,
        EVENT_AUTO_TOPUP_REQUESTED,
        EVENT_CARD_INFO,
        EVENT_INSPECTION,
    }
)
#: Operator commands (policies/operator_commands.py).
EVENT_BALANCE_ADJUSTMENT: Final = "balance_adjustment"
EVENT_CARD_BLOCKED: Final = "card_blocked"
EVENT_CARD_UNBLOCKED: Final = "card_unblocked"
OPERATOR_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {EVENT_BALANCE_ADJUSTMENT, EVENT_CARD_BLOCKED, EVENT_CARD_UNBLOCKED}
)
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {EVENT_FARE_CHARGED, EVENT_REPEAT_TAP, EVENT_PURCHASE, EVENT_TOPUP, EVENT_DECLINED}
    | SERVICE_EVENT_TYPES  # city services (policies/services/commands.py)
    | TRANSIT_EVENT_TYPES  # transit products (above)
    | OPERATOR_EVENT_TYPES
)

_CARD_FIELDS: Final = ("card_id", "balance", "status")
_CARD_OPTIONAL: Final = (
    "category",
    "recent_taps",
    "services",
    # transit products (policies/transit_state.py)
    "category_until_ms",
    "products",
    "transit",
    "auto_topup",
    # card authentication (policies/card_auth.py)
    "card_key",
    "card_counter",
)


@dataclass(frozen=True, slots=True)
class CardState:
    """Everything the core knows about one card. Persisted via `to_dict` / `from_dict`."""

    card_id: str
    balance: int
    status: CardStatus
    category: str = "adult"
    recent_taps: tuple[tuple[str, int], ...] = ()
    """((gate, time_ms), ...) of charged taps, oldest first, at most MAX_RECENT_TAPS long."""
    services: ServicesState | None = None
    """City services data (policies/services/state.py); None until the card uses a service.
    Rules that build a new state must carry it over (`dataclasses.replace` does)."""
    category_until_ms: int | None = None
    """A concession's expiry: from then on the tariff's default category applies."""
    products: tuple[HeldProduct, ...] = ()
    """Passes and the tourist card bought onto the card, with their entitlements."""
    transit: TransitMemory | None = None
    """Journey context, open and incomplete trips, spend toward caps; None: never travelled."""
    auto_topup: AutoTopup | None = None
    card_key: str | None = None
    """The card's Ed25519 public key (hex) for cards that authenticate each tap; None: a card
    without a key (its id alone identifies it)."""
    card_counter: int = 0
    """The highest card counter accepted in a tap cryptogram (the card's transaction counter)."""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "card_id": self.card_id,
            "balance": self.balance,
            "status": self.status,
            "category": self.category,
            "recent_taps": [[gate, t] for gate, t in self.recent_taps],
        }
        if self.services is not None:
            out["services"] = self.services.to_dict()
        if self.category_until_ms is not None:
            out["category_until_ms"] = self.category_until_ms
        if self.products:
            out["products"] = products_to_list(self.products)
        if self.transit is not None:
            out["transit"] = self.transit.to_dict()
        if self.auto_topup is not None:
            out["auto_topup"] = self.auto_topup.to_dict()
        if self.card_key is not None:
            out["card_key"] = self.card_key
            out["card_counter"] = self.card_counter
        return out

    @classmethod
    def from_dict(cls, data: object) -> CardState:
        """Build a state from plain data (e.g. orjson output); `ValueError` names the bad field."""
        d = check_mapping(data, "card state")
        check_keys(d, "card state", _CARD_FIELDS, _CARD_OPTIONAL)
        card_id = check_str(d["card_id"], "card state field card_id")
        balance = check_int(d["balance"], "card state field balance")
        status = d["status"]
        if status == "active":
            checked_status: CardStatus = "active"
        elif status == "blocked":
            checked_status = "blocked"
        else:
            raise ValueError(
                f"card state field status: expected 'active' or 'blocked', got {status!r}"
            )
        category = check_str(d.get("category", "adult"), "card state field category")
        raw_taps = d.get("recent_taps", ())
        if not isinstance(raw_taps, list | tuple):
            raise ValueError(
                f"card state field recent_taps: expected a list, got {type(raw_taps).__name__}"
            )
        taps: list[tuple[str, int]] = []
        for i, pair in enumerate(raw_taps):
            what = f"card state field recent_taps[{i}]"
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValueError(f"{what}: expected a [gate, time_ms] pair, got {pair!r}")
            taps.append((check_str(pair[0], what + " gate"), check_int(pair[1], what + " time")))
        # Keep the newest rather than refuse: lowering MAX_RECENT_TAPS in a release must not make
        # every stored card unloadable, and the oldest taps are the least useful ones.
        raw_services = d.get("services")
        services = None if raw_services is None else ServicesState.from_dict(raw_services)
        until = d.get("category_until_ms")
        raw_transit = d.get("transit")
        raw_auto = d.get("auto_topup")
        raw_key = d.get("card_key")
        return cls(
            card_id,
            balance,
            checked_status,
            category,
            tuple(taps[-MAX_RECENT_TAPS:]),
            services=services,
            category_until_ms=(
                None if until is None else check_int(until, "card state field category_until_ms")
            ),
            products=products_from(d.get("products", ())),
            transit=None if raw_transit is None else TransitMemory.from_dict(raw_transit),
            auto_topup=None if raw_auto is None else AutoTopup.from_dict(raw_auto),
            card_key=None if raw_key is None else check_str(raw_key, "card state field card_key"),
            card_counter=check_int(d.get("card_counter", 0), "card state field card_counter"),
        )


@dataclass(frozen=True, slots=True)
class FareTap:
    """A tap at a gate or validator that charges a fare on `network`.

    `gate` is the terminal id or gate group that double-tap protection keys on: two validators
    on the same bus share a gate so that tapping both is one journey."""

    terminal_id: str
    operator: str
    network: str
    gate: str
    route: str | None = None
    """GTFS route of a bus validator's tap (or a metro's line); prices the leg from the feed."""
    stop: str | None = None
    """Boarding stop (a gate's registered location); needed when the feed's fares use areas."""


@dataclass(frozen=True, slots=True)
class Purchase:
    """A payment of `amount` at a till or handheld of `merchant`."""

    terminal_id: str
    operator: str
    amount: int
    merchant: str


@dataclass(frozen=True, slots=True)
class TopUp:
    """Loading `amount` of stored value onto the card."""

    terminal_id: str
    operator: str
    amount: int


@dataclass(frozen=True, slots=True)
class TapOn:
    """Entering a tap on / tap off system: the maximum fare from `stop` is charged."""

    terminal_id: str
    operator: str
    network: str
    gate: str
    route: str | None = None
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class TapOff:
    """Leaving: the real fare of the open trip is computed, the difference to the maximum is
    credited. The trip's network and route are the tap on's; `stop` is where the rider left."""

    terminal_id: str
    operator: str
    network: str
    gate: str
    route: str | None = None
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class FareCorrection:
    """An operator sets the fare of an incomplete trip `journey` (its reference) to `amount`
    and the difference to what was charged is refunded. Only from an `ops` terminal."""

    terminal_id: str
    operator: str
    journey: str
    amount: int


@dataclass(frozen=True, slots=True)
class BuyProduct:
    """Buying `product` (a tariff product: a pass, the tourist card) from stored value."""

    terminal_id: str
    operator: str
    product: str


@dataclass(frozen=True, slots=True)
class BalanceAdjustment:
    """An operator's refund (`credit` > 0, money to the card) or correction (`credit` < 0),
    funded by (or paid to) `operator`; `note` says why. Never sent by a terminal."""

    terminal_id: str
    operator: str
    credit: int
    note: str


@dataclass(frozen=True, slots=True)
class CardStatusChange:
    """An operator blocks (`status` "blocked") or unblocks ("active") the card; `note` says
    why. Never sent by a terminal."""

    terminal_id: str
    operator: str
    status: str
    note: str


@dataclass(frozen=True, slots=True)
class CardInfo:
    """A kiosk shows the cardholder the card: balance, category, products, points."""

    terminal_id: str
    operator: str


@dataclass(frozen=True, slots=True)
class Inspect:
    """A ticket inspector checks the card on a bus or train of `network` (policies/inspection)."""

    terminal_id: str
    operator: str
    network: str


@dataclass(frozen=True, slots=True)
class NotPermitted:
    """A tap for an operation this kind of terminal may not perform (or whose fields do not
    make a command): always declined `unsupported_operation`, but decided, recorded and
    answered against the card like any other tap, so a retry gets the original answer."""

    terminal_id: str
    operator: str
    op: str
    kind: str


Command: TypeAlias = (
    FareTap
    | Purchase
    | TopUp
    | ServiceCommand
    | TapOn
    | TapOff
    | FareCorrection
    | BuyProduct
    | BalanceAdjustment
    | CardStatusChange
    | NotPermitted
    | CardInfo
    | Inspect
)


@dataclass(frozen=True, slots=True, init=False)
class Decision:
    """The answer to one command. `amount` is what was charged (a credit is negative)."""

    approved: bool
    reason: str
    amount: int
    balance: int
    product: str
    tariff_version: str
    explain: tuple[Mapping[str, object], ...]
    """Which rules applied, e.g. ({"rule": "flat_fare", "network": "METRO", "fare": 250},).

    Plain dicts behind a read-only type: building mapping proxies on every decision would cost
    more than the rest of `decide`, and nothing in the gateway mutates an explanation."""
    caps: tuple[CapProgress, ...] = ()
    """Progress toward each cap that applies to a transit decision (empty otherwise)."""

    def __init__(
        self,
        approved: bool,
        reason: str,
        amount: int,
        balance: int,
        product: str,
        tariff_version: str,
        explain: tuple[Mapping[str, object], ...],
        caps: tuple[CapProgress, ...] = (),
    ) -> None:
        _DECISION[0](self, approved)
        _DECISION[1](self, reason)
        _DECISION[2](self, amount)
        _DECISION[3](self, balance)
        _DECISION[4](self, product)
        _DECISION[5](self, tariff_version)
        _DECISION[6](self, explain)
        _DECISION[7](self, caps)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "approved": self.approved,
            "reason": self.reason,
            "amount": self.amount,
            "balance": self.balance,
            "product": self.product,
            "tariff_version": self.tariff_version,
            "explain": [dict(step) for step in self.explain],
        }
        if self.caps:
            out["caps"] = [cap.to_dict() for cap in self.caps]
        return out


_DECISION = slot_setters(Decision)


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """One journal entry. Same sign convention as `Decision.amount` (a top-up is negative).

    `card_id` is None only for a command against an unknown card: the core has no state to take
    it from, and the actor that called `decide` knows the key it asked for."""

    type: str
    card_id: str | None
    amount: int
    balance: int
    operator: str
    terminal_id: str
    time_ms: int
    reason: str
    tariff_version: str
    product: str
    detail: Mapping[str, object] | None = None
    """Small JSON-able extras (a trip reference, the amount an auto top-up asks for)."""

    def __init__(
        self,
        type: str,
        card_id: str | None,
        amount: int,
        balance: int,
        operator: str,
        terminal_id: str,
        time_ms: int,
        reason: str,
        tariff_version: str,
        product: str,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        _EVENT[0](self, type)
        _EVENT[1](self, card_id)
        _EVENT[2](self, amount)
        _EVENT[3](self, balance)
        _EVENT[4](self, operator)
        _EVENT[5](self, terminal_id)
        _EVENT[6](self, time_ms)
        _EVENT[7](self, reason)
        _EVENT[8](self, tariff_version)
        _EVENT[9](self, product)
        _EVENT[10](self, detail)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "type": self.type,
            "card_id": self.card_id,
            "amount": self.amount,
            "balance": self.balance,
            "operator": self.operator,
            "terminal_id": self.terminal_id,
            "time_ms": self.time_ms,
            "reason": self.reason,
            "tariff_version": self.tariff_version,
            "product": self.product,
        }
        if self.detail is not None:
            out["detail"] = dict(self.detail)
        return out


_EVENT = slot_setters(Event)


@dataclass(frozen=True, slots=True, init=False)
class Outcome:
    """Result of `decide`: `state` is the very same object when nothing changed."""

    state: CardState | None
    decision: Decision
    events: tuple[Event, ...]

    def __init__(
        self, state: CardState | None, decision: Decision, events: tuple[Event, ...]
    ) -> None:
        _OUTCOME[0](self, state)
        _OUTCOME[1](self, decision)
        _OUTCOME[2](self, events)


_OUTCOME = slot_setters(Outcome)
