"""`Inspect`: a ticket inspector's check of a card on a bus or train of `network`.

Valid, in this order: an open trip (tapped on, not yet off) on the network; a product held that
is usable now and covers the network (a pass, the tourist card; one not yet activated counts:
it activates at its first use); a fare charged less than `FARE_VALIDITY_MS` ago (a flat-fare
ticket's validity). Otherwise declined `no_valid_ticket`. Nothing is charged and the state does
not change; the decision is signed and recorded like any tap, so the inspection is on record.
The card's rider category (and until when a concession runs) is reported for the inspector to
check against the rider. The tariff defines no penalty fare yet, so none is charged.
"""

from __future__ import annotations

from typing import Final

from policies import reasons
from policies.model import EVENT_INSPECTION, CardState, Inspect, Outcome
from policies.outcomes import approved, declined
from policies.tariff import Tariff

#: How long a flat fare counts as a valid ticket after it was charged.
FARE_VALIDITY_MS: Final = 90 * 60 * 1000


def inspection_product(command: Inspect) -> str:
    return "inspection"


def _valid_by(state: CardState, network: str, now_ms: int) -> str | None:
    transit = state.transit
    if transit is not None and transit.trip is not None and transit.trip.network == network:
        return f"open_trip:{transit.trip.ref}"
    for p in state.products:
        covers = p.networks is None or network in p.networks
        if covers and p.usable(now_ms):
            return f"product:{p.product_id}"
    if any(0 <= now_ms - t <= FARE_VALIDITY_MS for _, t in state.recent_taps):
        return "recent_fare"
    return None


def inspect(state: CardState, command: Inspect, now_ms: int, tariff: Tariff) -> Outcome:
    info: dict[str, object] = {"rule": "inspection", "network": command.network,
                               "category": state.category}
    if state.category_until_ms is not None:
        info["category_until_ms"] = state.category_until_ms
    valid_by = _valid_by(state, command.network, now_ms)
    if valid_by is None:
        return declined(state, command.terminal_id, command.operator, now_ms, tariff,
                        reasons.NO_VALID_TICKET, "inspection", (info,))
    info["valid_by"] = valid_by
    return approved(state, command.terminal_id, command.operator, now_ms, tariff, reasons.OK, 0,
                    "inspection", EVENT_INSPECTION, (info,))
