"""Which operations each kind of terminal may send, and the pure-core command a tap becomes.

The terminal session turns every tap into a `policies` command with the terminal's registered
kind, operator, network and location (never with what the tap claims about them), or into a
`NotPermitted` command (declined `unsupported_operation` by the core, against the card, so the
decline is recorded and a retry answered with it) when this kind of terminal may not perform
the operation or the fields make no command.
"""

from __future__ import annotations

from gateway.store.interface import TerminalRecord
from gateway.wire import protocol as wire
from policies import CardInfo, Command, Inspect, NotPermitted, Purchase, TopUp
from policies.services.commands import command_from_tap
from policies.transit_taps import TRANSIT_OPS, transit_command_from_tap

#: What each kind of terminal is (docs/protocol.md's table of who may send what).
KIND_DOCS: dict[str, str] = {
    "gate": "metro or rail fare gate",
    "bus": "bus or tram validator",
    "ops": "an operator's correction desk",
    "taxi": "a taxi driver's handheld",
    "parking": "car park gate or parking meter",
    "retail": "shop or bakery till",
    "venue": "museum, cinema, library or gym turnstile or till",
    "access": "a facility's door reader (no payment)",
    "recycling": "recycling kiosk",
    "kiosk": "information and top-up kiosk",
    "inspector": "a ticket inspector's handheld",
}

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
    "kiosk": frozenset({"topup", "reward_credit", "redeem_points", "buy_product", "card_info"}),
    "inspector": frozenset({"inspect"}),
}


def command_for(term: TerminalRecord, tap: wire.Tap) -> Command:
    """The pure-core command for a tap (`NotPermitted` when this kind of terminal may not do
    it)."""
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
        if tap.op == "card_info":
            return CardInfo(terminal_id=term.terminal_id, operator=term.operator)
        if tap.op == "inspect":
            network = f.get("network") or term.network
            return Inspect(
                terminal_id=term.terminal_id, operator=term.operator, network=str(network)
            )
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
    return NotPermitted(
        terminal_id=term.terminal_id, operator=term.operator, op=tap.op, kind=term.kind
    )
