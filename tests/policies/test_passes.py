"""Passes and the tourist card: bought from stored value, activated by the first use, expired
by the clock; the venue and discount entitlements the services rules read."""

from __future__ import annotations

from typing import Any

import orjson

from policies import BuyProduct, CardState, FareTap, decide, reasons
from policies.passes import entitlements, use_entitlement
from policies.transit_state import MAX_PRODUCTS
from tests.policies.transit_helpers import at, bus, card, ctran_tariff, metro, rule, run

PRODUCTS: dict[str, Any] = {
    "DAY": {
        "name": "1-day pass",
        "prices": {"adult": 500, "senior": 250},
        "duration": {"amount": 1, "unit": "days"},
        "operator": "city-transit",
    },
    "WEEK": {
        "name": "7-day pass",
        "prices": {"adult": 2_000},
        "duration": {"amount": 7, "unit": "days"},
    },
    "MONTH": {
        "name": "31-day pass",
        "prices": {"adult": 7_000},
        "duration": {"amount": 31, "unit": "days"},
    },
    "METRO-DAY": {
        "name": "metro only",
        "prices": {"adult": 300},
        "networks": ["METRO"],
        "duration": {"amount": 1, "unit": "days"},
    },
    "TOURIST": {
        "name": "Tourist card 48 h",
        "prices": {"adult": 4_500},
        "duration": {"amount": 48, "unit": "hours"},
        "venues": ["museum-city", "zoo"],
        "discounts": ["tourist-shops"],
        "operator": "city-tourism",
    },
}
T = ctran_tariff(products=PRODUCTS)
T0 = at("2025-10-06T09:00")
HOUR = 3_600_000


def buy(product: str) -> BuyProduct:
    return BuyProduct("kiosk-1", "kiosk-op", product)


def test_buying_a_pass_pays_from_stored_value_and_does_not_start_it() -> None:
    out = decide(card(1_000), buy("DAY"), T0, T)
    d = out.decision
    assert (d.approved, d.amount, d.balance, d.product) == (True, 500, 500, "product:DAY")
    step = rule(out, "product_bought")
    assert (step["price"], step["category"], step["activation"]) == (500, "adult", "first_use")
    # The sale is attributed to the product's operator (settlement), sold at kiosk-1.
    (event,) = out.events
    assert (event.type, event.operator, event.terminal_id) == (
        "product_bought",
        "city-transit",
        "kiosk-1",
    )
    assert out.state is not None
    (held,) = out.state.products
    assert (held.product_id, held.activated_ms, held.expires_ms) == ("DAY", None, None)
    assert CardState.from_dict(orjson.loads(orjson.dumps(out.state.to_dict()))) == out.state


def test_senior_price_and_default_category_price() -> None:
    assert decide(card(1_000, "senior"), buy("DAY"), T0, T).decision.amount == 250
    # No youth price: the default category's (adult) price applies.
    out = decide(card(3_000, "youth"), buy("WEEK"), T0, T)
    assert out.decision.amount == 2_000 and rule(out, "product_bought")["category"] == "adult"


def test_pass_is_activated_by_its_first_ride_and_expires_a_day_later() -> None:
    state, _ = run(card(1_000), [(buy("DAY"), at("2025-10-05T18:00"))], T)
    first = at("2025-10-06T10:15")
    state, outs = run(
        state,
        [
            (bus("050"), first),
            (metro("g1"), first + 5 * HOUR),
            (bus("105", "8111", "bus-9"), first + 24 * HOUR - 1),
            (bus("050", "8126", "bus-3"), first + 24 * HOUR),  # expired: pays 125
        ],
        T,
    )
    assert [o.decision.amount for o in outs] == [0, 0, 0, 125]
    assert [o.decision.product for o in outs[:3]] == ["pass:DAY"] * 3
    step = rule(outs[0], "pass")
    assert (step["activated_ms"], step["valid_until_ms"]) == (first, first + 24 * HOUR)
    assert "activated_ms" not in rule(outs[1], "pass")


def test_day_pass_spans_the_dst_change_in_wall_clock_time() -> None:
    # First used 2025-11-01 10:00 local; valid until 2025-11-02 10:00 local, a 25-hour day.
    state, _ = run(card(1_000), [(buy("DAY"), T0)], T)
    first = at("2025-11-01T10:00")
    out = decide(state, metro(), first, T)
    assert rule(out, "pass")["valid_until_ms"] == at("2025-11-02T10:00") == first + 25 * HOUR


def test_seven_and_thirty_one_day_passes() -> None:
    state, _ = run(card(10_000), [(buy("WEEK"), T0), (buy("MONTH"), T0)], T)
    out = decide(state, metro(), T0, T)
    # The week pass (bought first) is activated; the month pass waits for its own first use.
    assert rule(out, "pass")["product"] == "WEEK"
    assert out.state is not None
    later = decide(out.state, metro("g2"), at("2025-10-13T09:00"), T)  # WEEK ended at 10-13 09:00
    step = rule(later, "pass")
    assert step["product"] == "MONTH"
    assert step["valid_until_ms"] == at("2025-11-13T09:00")


def test_a_pass_covers_only_its_networks() -> None:
    state, _ = run(card(1_000), [(buy("METRO-DAY"), T0)], T)
    assert decide(state, metro(), T0, T).decision.amount == 0
    assert decide(state, bus("050"), T0, T).decision.amount == 125


def test_tourist_card_transit_venues_and_discounts() -> None:
    state, _ = run(card(5_000), [(buy("TOURIST"), T0)], T)
    # Before the first use the entitlements are listed, not started.
    (ent,) = entitlements(state, T0)
    assert ent.venues == {"museum-city", "zoo"} and ent.discounts == {"tourist-shops"}
    assert (ent.from_ms, ent.until_ms) == (None, None)
    assert ent.grant_id == f"TOURIST@{T0}"
    # A museum entry as the first use (the services rules call use_entitlement): activated.
    used = use_entitlement(state, ent.grant_id, T0 + HOUR, T)
    assert used is not None
    state2, ent2 = used
    assert (ent2.from_ms, ent2.until_ms) == (T0 + HOUR, T0 + 49 * HOUR)
    # Unlimited transit within the 48 h, then the card pays again.
    assert decide(state2, bus("050"), T0 + 2 * HOUR, T).decision.amount == 0
    assert decide(state2, bus("050"), T0 + 49 * HOUR, T).decision.amount == 125
    assert entitlements(state2, T0 + 49 * HOUR) == ()
    assert use_entitlement(state2, ent.grant_id, T0 + 49 * HOUR, T) is None
    # Using it again does not restart it.
    again = use_entitlement(state2, ent.grant_id, T0 + 3 * HOUR, T)
    assert again is not None and again[0] is state2


def test_bad_product_input() -> None:
    state = card(100)
    for product, reason in [
        ("NOPE", reasons.UNKNOWN_PRODUCT),
        ("DAY", reasons.INSUFFICIENT_FUNDS),
    ]:
        out = decide(state, buy(product), T0, T)
        assert out.decision.reason == reason and out.state is state
    odd = decide(card(10_000, "astronaut"), buy("DAY"), T0, T)
    assert odd.decision.reason == reasons.UNKNOWN_CATEGORY
    dated = ctran_tariff(products=PRODUCTS, valid_until="2025-10-01")
    assert decide(card(10_000), buy("DAY"), T0, dated).decision.reason == reasons.OUTSIDE_VALIDITY


def test_product_limit_and_expired_products_are_dropped() -> None:
    steps = [(buy("DAY"), T0 + i) for i in range(MAX_PRODUCTS)]
    state, _ = run(card(100_000), steps, T)
    out = decide(state, buy("DAY"), T0 + 100, T)
    assert out.decision.reason == reasons.PRODUCT_LIMIT and out.state is state
    # Use (activate) them all... one ride activates one; expire the active one and buy again.
    ridden = decide(state, metro(), T0 + 200, T).state
    assert ridden is not None
    later = T0 + 25 * HOUR
    again = decide(ridden, buy("DAY"), later, T)
    assert again.decision.approved and again.state is not None
    assert len(again.state.products) == MAX_PRODUCTS


def test_negative_allowance_does_not_buy_products() -> None:
    t = ctran_tariff(products=PRODUCTS, negative_limit=500)
    out = decide(card(400), buy("DAY"), T0, t)
    assert out.decision.reason == reasons.INSUFFICIENT_FUNDS


def test_tap_on_with_a_pass_charges_nothing_and_opens_a_trip() -> None:
    from tests.policies.transit_helpers import off, on

    state, _ = run(card(1_000), [(buy("DAY"), T0)], T)
    state, (o1, o2) = run(state, [(on(), T0 + 1), (off(), T0 + 600_000)], T)
    assert (o1.decision.amount, o1.decision.product) == (0, "pass:DAY")
    assert (o2.decision.amount, rule(o2, "tap_off_fare")["basis"]) == (0, "pass")


def test_unknown_network_is_declined_even_with_a_pass() -> None:
    state, _ = run(card(1_000), [(buy("DAY"), T0)], T)
    out = decide(state, FareTap("g", "o", "FERRY", "g"), T0, T)
    assert out.decision.reason == reasons.UNKNOWN_NETWORK
