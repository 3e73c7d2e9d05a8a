"""How `decide` reaches the services rules: the route of each service command, and the one step
that runs after every other rule.

This module owns `SERVICE_ROUTES` (command type -> (product namer, handler)), which
policies/core.py merges into its `_ROUTES`, and `after_decision`, which `decide` applies to the
outcome of every non-service command. That step does two things and never touches a decision or
its events: it carries the card's services data over when a rule built its new state without it
(a rule that constructs `CardState` positionally would otherwise drop it), and it adds off-peak
travel points to a charged fare (policies/services/rewards.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final

from policies.model import CardState, Command, Outcome
from policies.services.access import access_product, facility_access
from policies.services.commands import (
    SERVICE_COMMAND_TYPES,
    FacilityAccess,
    ParkingClose,
    ParkingEntry,
    ParkingExit,
    RecycleDeposit,
    RedeemPoints,
    RetailPayment,
    RewardCredit,
    TaxiFare,
    VenueEntry,
)
from policies.services.parking import parking_close, parking_entry, parking_exit, parking_product
from policies.services.recycling import recycle, recycle_product
from policies.services.retail import retail_payment, retail_product
from policies.services.rewards import (
    accrue_travel_points,
    redeem_points,
    redeem_product,
    reward_credit,
    reward_product,
)
from policies.services.taxi import taxi_fare, taxi_product
from policies.services.venues import venue_entry, venue_product
from policies.tariff import Tariff

Handler = Callable[[CardState, Any, int, Tariff], Outcome]

SERVICE_ROUTES: Final[Mapping[type[Any], tuple[Callable[[Any], str], Handler]]] = MappingProxyType(
    {
        ParkingEntry: (parking_product, parking_entry),
        ParkingExit: (parking_product, parking_exit),
        ParkingClose: (parking_product, parking_close),
        TaxiFare: (taxi_product, taxi_fare),
        RetailPayment: (retail_product, retail_payment),
        VenueEntry: (venue_product, venue_entry),
        RecycleDeposit: (recycle_product, recycle),
        RewardCredit: (reward_product, reward_credit),
        RedeemPoints: (redeem_product, redeem_points),
        FacilityAccess: (access_product, facility_access),
    }
)
assert frozenset(SERVICE_ROUTES) == SERVICE_COMMAND_TYPES


def after_decision(
    before: CardState, command: Command, outcome: Outcome, now_ms: int, tariff: Tariff
) -> Outcome:
    """The outcome of a non-service rule, with services data carried over and travel points."""
    new = outcome.state
    if new is before or new is None or type(command) in SERVICE_COMMAND_TYPES:
        return outcome
    if new.services is None and before.services is not None:
        outcome = Outcome(replace(new, services=before.services), outcome.decision, outcome.events)
    return accrue_travel_points(outcome, now_ms, tariff)
