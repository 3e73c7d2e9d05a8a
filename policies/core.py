"""`decide`: the single entry point of the pure core, and the table that routes commands to rules.

This module owns the checks every operation shares (is the operation supported, is the card
known, is it active) and the dispatch table from command type to its rule module. Adding an
operation means one line in `_ROUTES` plus a handler module; `decide` itself does not change.
Nothing here reads a clock, a random source or the network: given equal arguments it returns
equal outcomes, which is what lets the actor replay, the auditor re-check and the tests shrink.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, NamedTuple, TypeVar

from policies import reasons
from policies.card_info import card_info, card_info_product
from policies.inspection import inspect, inspection_product
from policies.model import (
    BalanceAdjustment,
    BuyProduct,
    CardInfo,
    CardState,
    CardStatusChange,
    Command,
    FareCorrection,
    FareTap,
    Inspect,
    NotPermitted,
    Outcome,
    Purchase,
    TapOff,
    TapOn,
    TopUp,
)
from policies.operator_commands import (
    adjustment_product,
    balance_adjustment,
    card_status_change,
    status_product,
)
from policies.outcomes import declined
from policies.passes import buy_product, product_name
from policies.retail import purchase, purchase_product
from policies.services.routes import SERVICE_ROUTES, after_decision
from policies.stored_value import request_auto_topup, topup, topup_product
from policies.tariff import Tariff
from policies.transit import (
    correction_product,
    fare_correction,
    fare_product,
    fare_tap,
    tap_off,
    tap_on,
)

C = TypeVar("C")


def _not_permitted_product(command: NotPermitted) -> str:
    return command.op


def _not_permitted(state: CardState, command: NotPermitted, now_ms: int, tariff: Tariff) -> Outcome:
    return declined(
        state,
        command.terminal_id,
        command.operator,
        now_ms,
        tariff,
        reasons.UNSUPPORTED_OPERATION,
        command.op,
        ({"rule": "terminal_kind", "kind": command.kind, "op": command.op},),
    )


class Route(NamedTuple, Generic[C]):
    """How to name the product a command asks for, and the rule that decides it."""

    product: Callable[[C], str]
    """Used for declines that happen before the rule runs (unknown or blocked card)."""
    handle: Callable[[CardState, C, int, Tariff], Outcome]
    """Called only with a known, active card."""


# Keyed on the exact type: a subclass of a command is a different operation until it is routed.
# The explicit Route[X] makes mypy check each handler against the type it is filed under.
# Read-only so no caller can re-route operations at run time behind the core's back.
_ROUTES: Mapping[type[Any], Route[Any]] = MappingProxyType(
    {
        FareTap: Route[FareTap](fare_product, fare_tap),
        Purchase: Route[Purchase](purchase_product, purchase),
        TopUp: Route[TopUp](topup_product, topup),
        # Transit products (policies/transit.py, passes.py).
        TapOn: Route[TapOn](fare_product, tap_on),
        TapOff: Route[TapOff](fare_product, tap_off),
        FareCorrection: Route[FareCorrection](correction_product, fare_correction),
        BuyProduct: Route[BuyProduct](product_name, buy_product),
        NotPermitted: Route[NotPermitted](_not_permitted_product, _not_permitted),
        CardInfo: Route[CardInfo](card_info_product, card_info),
        Inspect: Route[Inspect](inspection_product, inspect),
        # City services (policies/services/routes.py).
        **{kind: Route[Any](*route) for kind, route in SERVICE_ROUTES.items()},
    }
)

# Operator commands (policies/operator_commands.py): decided for a blocked card too, and not
# followed by the after-tap rules (reward points, automatic top-up): they are not taps.
_OPERATOR_ROUTES: Mapping[type[Any], Route[Any]] = MappingProxyType(
    {
        BalanceAdjustment: Route[BalanceAdjustment](adjustment_product, balance_adjustment),
        CardStatusChange: Route[CardStatusChange](status_product, card_status_change),
    }
)

SUPPORTED_COMMANDS: frozenset[type[Any]] = frozenset(_ROUTES) | frozenset(_OPERATOR_ROUTES)


def product_of(command: Command) -> str:
    """The product a command asks for (what a decline before its rule runs names)."""
    route = _ROUTES.get(type(command)) or _OPERATOR_ROUTES.get(type(command))
    return "unsupported" if route is None else str(route.product(command))


def _str_attr(obj: object, name: str) -> str:
    value = getattr(obj, name, "")
    return value if isinstance(value, str) else ""


def decide(state: CardState | None, command: Command, now_ms: int, tariff: Tariff) -> Outcome:
    """Decide one command against one card's state at `now_ms` under `tariff`.

    Never raises for well-typed arguments: anything unacceptable becomes a declined decision.
    """
    route = _ROUTES.get(type(command))
    operator_route = None if route is not None else _OPERATOR_ROUTES.get(type(command))
    if route is None and operator_route is None:
        # The command type is outside the static union here; read its attribution defensively.
        return declined(
            state,
            _str_attr(command, "terminal_id"),
            _str_attr(command, "operator"),
            now_ms,
            tariff,
            reasons.UNSUPPORTED_OPERATION,
            "unsupported",
            ({"rule": "operation_supported", "operation": type(command).__name__},),
        )
    if state is None:
        known = route or operator_route
        assert known is not None
        return declined(
            None,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reasons.UNKNOWN_CARD,
            known.product(command),
            ({"rule": "card_known"},),
        )
    if operator_route is not None:
        return operator_route.handle(state, command, now_ms, tariff)
    assert route is not None
    # Anything but "active" is refused, so a status this version does not know fails closed.
    if state.status != "active":
        return declined(
            state,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reasons.CARD_BLOCKED,
            route.product(command),
            ({"rule": "card_active", "status": state.status},),
        )
    outcome = route.handle(state, command, now_ms, tariff)
    if state.auto_topup is not None:
        # A charge that leaves the balance below the card's threshold asks for a top-up.
        outcome = request_auto_topup(state, outcome, now_ms)
    # Services data carried over and off-peak points added; the decision itself never changes.
    return after_decision(state, command, outcome, now_ms, tariff)
