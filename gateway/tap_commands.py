"""Which operations each kind of terminal may send, and the pure-core command a tap becomes.

The terminal session turns every tap into a `policies` command with the terminal's registered
kind, operator, network and location (never with what the tap claims about them), or into a
decline when this kind of terminal may not perform the operation.
"""

from __future__ import annotations

from gateway.store.interface import TerminalRecord
from gateway.wire import protocol as wire
from policies import Command, Decision, Purchase, TopUp, reasons
from policies.services.commands import command_from_tap
from policies.transit_taps import TRANSIT_OPS, transit_command_from_tap

#: Which operations each kind of terminal may perform.
KIND_OPS: dict[str, frozenset[str]] = {
    "gate": frozenset({"fare", "tap_on", "tap_off"}),
    "bus": frozenset({"fare", "tap_on", "tap_off"}),
    # Operators' correction desks (incomplete tap on / tap off journeys).
    "ops": frozenset({"fare_correction"}),
    # City services (policies/services/): a taxi or car park charges through its own op, so
    # its per-day limits and session rules always apply (no plain `purchase` there).
    "taxi": frozenset({"taxi_fare"}),
    "parking": frozenset({"parking_entry", "parking_exit", "parking_close"}),
    "retail": frozenset({"purchase", "topup", "buy_product"}),
    "venue": frozenset({"purchase", "venue_entry", "access"}),
    "access": frozenset({"access"}),
    "recycling": frozenset({"recycle"}),
    "kiosk": frozenset({"topup", "reward_credit", "redeem_points", "buy_product"}),
}


#: Placeholder command of a request that is declined before it reaches a card.
NO_COMMAND = TopUp(terminal_id="", operator="", amount=0)


def command_for(term: TerminalRecord, tap: wire.Tap) -> Command | Decision:
    """The pure-core command for a tap, or a decline when this kind of terminal may not do it."""
    f = tap.fields
    if tap.op in KIND_OPS.get(term.kind, frozenset()):
        service = command_from_tap(
            tap.op,
            f,
            kind=term.kind,
            terminal_id=term.terminal_id,
            operator=term.operator,
            network=term.network,
        )
        if service is not None:
            return service
        if tap.op in TRANSIT_OPS:
            transit = transit_command_from_tap(
                tap.op,
                f,
                terminal_id=term.terminal_id,
                operator=term.operator,
                network=term.network,
                location=term.location,
            )
            if transit is not None:
                return transit
        amount = f.get("amount")
        if isinstance(amount, int):
            if tap.op == "purchase":
                merchant = f.get("merchant") or term.operator
                return Purchase(
                    terminal_id=term.terminal_id,
                    operator=term.operator,
                    amount=amount,
                    merchant=str(merchant),
                )
            if tap.op == "topup":
                return TopUp(terminal_id=term.terminal_id, operator=term.operator, amount=amount)
    return Decision(
        approved=False,
        reason=reasons.UNSUPPORTED_OPERATION,
        amount=0,
        balance=0,
        product=tap.op,
        tariff_version="",
        explain=({"rule": "terminal_kind", "kind": term.kind, "op": tap.op},),
    )
