"""From a terminal's wire tap to a transit command: which fields come from the tap, which from the
terminal's registration.

This module owns the mapping of the transit ops of the wire protocol (`fare`, `tap_on`,
`tap_off`, `buy_product`, `fare_correction`; gateway/wire/protocol.py `OPS`) onto the pure-core
commands. The network defaults to the terminal's registered network and the stop to its
registered location (a metro gate does not move; a bus validator sends both its route and its
current stop). The double-tap gate is the terminal itself. Which kinds of terminal may send
which op is decided before this (gateway/tap_commands.py `KIND_OPS`); the field values were already
checked for type by the protocol decoder, and the rules check them again for meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from policies.model import BuyProduct, Command, FareCorrection, FareTap, TapOff, TapOn

TRANSIT_OPS: Final = frozenset({"fare", "tap_on", "tap_off", "buy_product", "fare_correction"})


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def transit_command_from_tap(
    op: str,
    fields: Mapping[str, object],
    *,
    terminal_id: str,
    operator: str,
    network: str,
    location: str,
) -> Command | None:
    """The transit command of a tap, or None when `op` is not a transit op (or lacks a field)."""
    if op in ("fare", "tap_on", "tap_off"):
        net = _opt(fields.get("network")) or network
        stop = _opt(fields.get("stop")) or _opt(location)
        route = _opt(fields.get("route"))
        cls = FareTap if op == "fare" else TapOn if op == "tap_on" else TapOff
        return cls(
            terminal_id=terminal_id,
            operator=operator,
            network=net,
            gate=terminal_id,
            route=route,
            stop=stop,
        )
    if op == "buy_product":
        product = _opt(fields.get("product"))
        if product is None:
            return None
        return BuyProduct(terminal_id=terminal_id, operator=operator, product=product)
    if op == "fare_correction":
        journey = _opt(fields.get("journey"))
        amount = fields.get("amount")
        if journey is None or not isinstance(amount, int) or isinstance(amount, bool):
            return None
        return FareCorrection(
            terminal_id=terminal_id, operator=operator, journey=journey, amount=amount
        )
    return None
