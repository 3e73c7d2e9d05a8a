"""`Inspect`: valid by an open trip on the network, a usable product covering it, or a fare
charged within FARE_VALIDITY_MS; otherwise no_valid_ticket. Nothing charged, state unchanged."""

from __future__ import annotations

from policies import CardState, Inspect, decide, default_tariff, reasons
from policies.inspection import FARE_VALIDITY_MS
from policies.transit_state import HeldProduct

T = default_tariff()
NOW = 1_765_000_000_000
CMD = Inspect(terminal_id="insp-1", operator="metro", network="METRO")


def check(state: CardState) -> tuple[bool, str, object]:
    out = decide(state, CMD, NOW, T)
    assert out.state is state and out.decision.amount == 0
    return out.decision.approved, out.decision.reason, out.decision.explain[0].get("valid_by")


def test_recent_fare_counts_for_its_validity() -> None:
    fresh = CardState(card_id="c", balance=0, status="active", recent_taps=(("g", NOW - 60_000),))
    assert check(fresh) == (True, reasons.OK, "recent_fare")
    old = CardState(card_id="c", balance=0, status="active",
                    recent_taps=(("g", NOW - FARE_VALIDITY_MS - 1),))
    assert check(old) == (False, reasons.NO_VALID_TICKET, None)


def test_products_cover_their_networks() -> None:
    bus_only = HeldProduct("BUS-7D", NOW - 10, "city", 900, 7, "days", networks=("BUS",))
    all_transit = HeldProduct("PASS-7D", NOW - 10, "city", 2000, 7, "days")
    assert check(CardState(card_id="c", balance=0, status="active", products=(bus_only,)))[0] \
        is False
    assert check(CardState(card_id="c", balance=0, status="active",
                           products=(bus_only, all_transit))) == (True, "ok", "product:PASS-7D")
