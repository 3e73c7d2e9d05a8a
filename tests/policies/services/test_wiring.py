"""From the wire to the core: protocol ops, which terminal kinds may use them, and the mapping of
a decoded tap plus the terminal's registration onto a service command."""

from __future__ import annotations

import pytest

from gateway.store.interface import TerminalRecord
from gateway.tap_commands import KIND_OPS, command_for
from gateway.wire import protocol as wire
from policies import CardState, NotPermitted, Purchase, decide, default_tariff, reasons
from policies.services.commands import (
    SERVICE_OPS,
    FacilityAccess,
    ParkingEntry,
    ParkingExit,
    RecycleDeposit,
    RedeemPoints,
    RetailPayment,
    RewardCredit,
    TaxiFare,
    VenueEntry,
    command_from_tap,
)
from policies.services.routes import SERVICE_ROUTES


def terminal(kind: str, network: str = "", operator: str = "op-1") -> TerminalRecord:
    return TerminalRecord("t-1", "00" * 32, kind, operator, network, "", "active")


def tap(op: str, **fields: object) -> wire.Tap:
    frame = wire.encode_tap(1, "tap-1", "card-1", op, 1_000, fields)
    msg = wire.decode_terminal_message(frame)
    assert isinstance(msg, wire.Tap)
    return msg


def test_every_service_op_is_on_the_wire_and_allowed_somewhere() -> None:
    allowed = set().union(*KIND_OPS.values())
    for op in SERVICE_OPS:
        assert op in wire.OPS
        assert op in allowed


@pytest.mark.parametrize(
    ("kind", "network", "op", "fields", "expected"),
    [
        ("parking", "P-CENTRE", "parking_entry", {}, ParkingEntry("t-1", "op-1", "P-CENTRE")),
        (
            "parking",
            "P-CENTRE",
            "parking_exit",
            {"facility": "P-X"},
            ParkingExit("t-1", "op-1", "P-X"),
        ),
        (
            "taxi",
            "",
            "taxi_fare",
            {"amount": 1_234, "trip_id": "tr-1"},
            TaxiFare("t-1", "op-1", 1_234, "tr-1"),
        ),
        ("taxi", "", "taxi_fare", {"amount": 99}, TaxiFare("t-1", "op-1", 99, "")),
        (
            "retail",
            "bakery",
            "purchase",
            {"amount": 250},
            RetailPayment("t-1", "op-1", 250, "op-1", "bakery"),
        ),
        (
            "retail",
            "",
            "purchase",
            {"amount": 250, "merchant": "m-2", "category": "cafe"},
            RetailPayment("t-1", "op-1", 250, "m-2", "cafe"),
        ),
        ("venue", "museum-city", "venue_entry", {}, VenueEntry("t-1", "op-1", "museum-city")),
        (
            "venue",
            "museum-city",
            "purchase",
            {"amount": 5},
            RetailPayment("t-1", "op-1", 5, "op-1", "venue"),
        ),
        ("venue", "school", "access", {}, FacilityAccess("t-1", "op-1", "school")),
        (
            "recycling",
            "",
            "recycle",
            {"material": "pet", "weight_g": 900},
            RecycleDeposit("t-1", "op-1", "pet", 900),
        ),
        ("kiosk", "", "reward_credit", {"hours": 2}, RewardCredit("t-1", "op-1", 2)),
        ("kiosk", "", "redeem_points", {"points": 300}, RedeemPoints("t-1", "op-1", 300)),
    ],
)
def test_taps_become_service_commands(
    kind: str, network: str, op: str, fields: dict[str, object], expected: object
) -> None:
    assert command_for(terminal(kind, network), tap(op, **fields)) == expected


def test_a_kind_may_only_do_its_own_ops() -> None:
    for kind, op, fields in (
        ("retail", "taxi_fare", {"amount": 5}),
        ("taxi", "purchase", {"amount": 5}),  # no bypass of the taxi limits
        ("parking", "purchase", {"amount": 5}),
        ("gate", "recycle", {"material": "pet", "weight_g": 1}),
        ("recycling", "reward_credit", {"hours": 1}),
    ):
        command = command_for(terminal(kind), tap(op, **fields))
        assert command == NotPermitted("t-1", "op-1", op, kind)
        state = CardState(card_id="c", balance=99_750, status="active")
        out = decide(state, command, 0, default_tariff())
        decision = out.decision
        assert decision.reason == reasons.UNSUPPORTED_OPERATION and not decision.approved
        # Decided against the card: its balance and the tariff version, state untouched.
        assert (decision.balance, decision.amount) == (99_750, 0) and out.state is state
        assert decision.tariff_version == default_tariff().version


def test_v1_purchase_is_unchanged_for_other_callers() -> None:
    assert (
        command_from_tap(
            "purchase", {"amount": 1}, kind="kiosk", terminal_id="t", operator="o", network=""
        )
        is None
    )
    assert isinstance(Purchase("t", "o", 1, "m"), Purchase)


def test_every_service_command_is_routed() -> None:
    from policies.core import SUPPORTED_COMMANDS

    assert set(SERVICE_ROUTES) <= SUPPORTED_COMMANDS


def test_wire_decoder_checks_service_field_types() -> None:
    with pytest.raises(wire.ProtocolError) as err:
        wire.decode_terminal_message(
            wire.encode_tap(1, "t", "c", "recycle", 1, {"material": "pet", "weight_g": "9"})
        )
    assert err.value.code == wire.BAD_FIELD
    with pytest.raises(wire.ProtocolError) as err:
        wire.decode_terminal_message(wire.encode_tap(1, "t", "c", "recycle", 1, {"weight_g": 9}))
    assert err.value.code == wire.MISSING_FIELD
