"""`CardInfo`: what a kiosk shows the cardholder who presents the card: balance, rider category
(and until when a concession runs), the products held (usable now or not yet activated, and
when they expire) and reward points. It charges nothing and changes nothing; it is a decision
like any other, so it is signed and recorded, and its retry gets the original."""

from __future__ import annotations

from policies import reasons
from policies.gtfs.local_time import iso_date
from policies.model import EVENT_CARD_INFO, CardInfo, CardState, Outcome
from policies.outcomes import approved
from policies.tariff import Tariff


def card_info_product(command: CardInfo) -> str:
    return "card_info"


def card_info(state: CardState, command: CardInfo, now_ms: int, tariff: Tariff) -> Outcome:
    products = [
        {
            "product": p.product_id,
            "usable": p.usable(now_ms),
            "activated": p.activated_ms is not None,
            "expires_ms": p.expires_ms,
        }
        for p in state.products
        if p.expires_ms is None or now_ms < p.expires_ms
    ]
    info: dict[str, object] = {
        "rule": "card_info",
        "category": state.category,
        "products": products,
        "points": state.services.points if state.services is not None else 0,
    }
    if state.category_until_ms is not None:
        info["category_until_ms"] = state.category_until_ms
    services = state.services
    if services is not None and services.recycle_day[1]:
        # The card keeps the recycling credit of its last recycling day only (the daily limit
        # needs no more); a longer history is the journal's, for the cardholder's data access.
        day, credit = services.recycle_day
        info["recycling"] = {"day": iso_date(day), "credit": credit}
    return approved(
        state,
        command.terminal_id,
        command.operator,
        now_ms,
        tariff,
        reasons.OK,
        0,
        "card_info",
        EVENT_CARD_INFO,
        (info,),
    )
