"""Reason codes: the closed vocabulary every `Decision.reason` is drawn from.

This module owns the codes and their one-line meanings. The codes are plain `str` constants rather
than an enum so that a decision serialises, compares and journals as the bare string with no
conversion step; `REASONS` maps each code to its meaning and is rendered into the operator docs, so
adding a code here without a meaning is a bug (a test checks the two stay in step).
"""

from __future__ import annotations

from typing import Final

OK: Final = "ok"
"""Approved, charged as computed."""

REPEAT_TAP: Final = "repeat_tap"
"""Approved, amount 0: same card at the same gate inside the double-tap window."""

UNKNOWN_CARD: Final = "unknown_card"
"""Declined: the gateway holds no state for this card."""

CARD_BLOCKED: Final = "card_blocked"
"""Declined: the card is blocked (lost, stolen, withdrawn); top-ups are refused too."""

INSUFFICIENT_FUNDS: Final = "insufficient_funds"
"""Declined: the balance does not cover the amount."""

INVALID_AMOUNT: Final = "invalid_amount"
"""Declined: the requested amount is zero or negative (the core also refuses a non-integer
one from any caller; on the wire that is a `bad_field` error and never reaches a decision)."""

AMOUNT_TOO_LARGE: Final = "amount_too_large"
"""Declined: the amount is above the tariff's per-operation maximum."""

BALANCE_LIMIT: Final = "balance_limit"
"""Declined: a top-up would take the balance above the tariff's maximum balance."""

UNKNOWN_NETWORK: Final = "unknown_network"
"""Declined: the tap names a network the tariff has no fare for."""

UNSUPPORTED_OPERATION: Final = "unsupported_operation"
"""Declined: the core has no rule for this kind of command."""

# City services (policies/services/).

SERVICE_NOT_OFFERED: Final = "service_not_offered"
"""Declined: the tariff offers no such city service (no taxi, recycling or rewards section)."""

UNKNOWN_FACILITY: Final = "unknown_facility"
"""Declined: the car park or access-controlled facility is not in the tariff."""

UNKNOWN_VENUE: Final = "unknown_venue"
"""Declined: the venue is not in the tariff."""

UNKNOWN_MATERIAL: Final = "unknown_material"
"""Declined: the recycling kiosk reported a material the tariff does not credit."""

INVALID_QUANTITY: Final = "invalid_quantity"
"""Declined: a weight, number of hours or of points is zero or negative (non-integers: as for
INVALID_AMOUNT)."""

IMPLAUSIBLE_QUANTITY: Final = "implausible_quantity"
"""Declined: more than the tariff deems possible at once (10 tonnes of cardboard in one deposit)."""

DAILY_LIMIT: Final = "daily_limit"
"""Declined: a per-card daily limit (taxi spending, recycling credit) leaves no room for this."""

OUTSIDE_HOURS: Final = "outside_hours"
"""Declined: the venue or facility is closed at this local time."""

CATEGORY_NOT_ALLOWED: Final = "category_not_allowed"
"""Declined: the facility is not open to the card's rider category."""

PARKING_SESSION_OPEN: Final = "parking_session_open"
"""Declined: the card already has an open parking session (not yet overdue)."""

NO_PARKING_SESSION: Final = "no_parking_session"
"""Declined: an exit or close without an open session at this car park."""

DUPLICATE_TRIP: Final = "duplicate_trip"
"""Declined: the taxi trip id was already charged with a different amount."""

NOT_AUTHORISED: Final = "not_authorised"
"""Declined: the terminal's operator may not do this (credit volunteer hours, close another
operator's parking session)."""

INSUFFICIENT_POINTS: Final = "insufficient_points"
"""Declined: the card holds fewer reward points than asked to redeem."""

# Transit products (policies/transit.py, passes.py, concessions.py).

UNKNOWN_ROUTE: Final = "unknown_route"
"""Declined: the tap names a route the tariff's GTFS feed does not have."""

UNKNOWN_STOP: Final = "unknown_stop"
"""Declined: the stop is not in the feed, or the feed's fares need a stop and the tap has none."""

UNKNOWN_CATEGORY: Final = "unknown_category"
"""Declined: the card's rider category is not one of the tariff's categories."""

UNKNOWN_PRODUCT: Final = "unknown_product"
"""Declined: the tariff sells no such product (or none to this category)."""

NO_FARE_RULE: Final = "no_fare_rule"
"""Declined: the feed has no fare for this leg, rider category and fare medium at this time."""

OUTSIDE_VALIDITY: Final = "outside_validity"
"""Declined: the time is outside the tariff's (or its GTFS feed's) validity dates."""

NO_OPEN_JOURNEY: Final = "no_open_journey"
"""Declined: a tap off without a tap on within the tariff's tap off window."""

UNKNOWN_JOURNEY: Final = "unknown_journey"
"""Declined: a correction names no incomplete trip of this card (or it was corrected already)."""

PRODUCT_LIMIT: Final = "product_limit"
"""Declined: the card already holds the most products it can."""

NEGATIVE_BALANCE: Final = "negative_balance"
"""Declined: the balance is below zero (the one-time allowance is used); top up first."""

INVALID_NOTE: Final = "invalid_note"
"""Declined: an operator command's note (why it is done) is empty or too long."""

CARD_AUTH_REQUIRED: Final = "card_auth_required"
"""Declined: the card holds a card key, and the tap carries no card cryptogram."""

CARD_AUTH_FAILED: Final = "card_auth_failed"
"""Declined: the tap's card cryptogram does not verify with the card's key (a copied card id,
or a tap replayed at another terminal or under another tap id)."""

NO_VALID_TICKET: Final = "no_valid_ticket"
"""Declined (an inspection): no open trip, usable product or recent fare on the card."""

STALE_CARD_COUNTER: Final = "stale_card_counter"
"""Declined: the cryptogram's card counter is not above the highest one already accepted (a
replayed cryptogram, or a cloned card running behind the genuine one)."""

REASONS: Final[dict[str, str]] = {
    OK: "approved, charged as computed",
    REPEAT_TAP: (
        "approved, amount 0: the same card at the same gate within the double-tap window, "
        "answered without a second charge"
    ),
    UNKNOWN_CARD: "declined: the card is not known to the gateway",
    CARD_BLOCKED: "declined: the card is blocked (top-ups included)",
    INSUFFICIENT_FUNDS: "declined: the balance does not cover the amount",
    INVALID_AMOUNT: "declined: the amount is zero or negative",
    AMOUNT_TOO_LARGE: "declined: the amount is above the tariff's per-operation maximum",
    BALANCE_LIMIT: "declined: the top-up would exceed the tariff's maximum balance",
    UNKNOWN_NETWORK: "declined: the tariff has no fare for the tapped network",
    UNSUPPORTED_OPERATION: "declined: the core has no rule for this operation",
    SERVICE_NOT_OFFERED: "declined: the tariff offers no such city service",
    UNKNOWN_FACILITY: "declined: the car park or facility is not in the tariff",
    UNKNOWN_VENUE: "declined: the venue is not in the tariff",
    UNKNOWN_MATERIAL: "declined: the tariff credits no such recycling material",
    INVALID_QUANTITY: "declined: the weight, hours or points are zero or negative",
    IMPLAUSIBLE_QUANTITY: (
        "declined: the quantity is above what the tariff deems plausible at once "
        "(weight of one deposit, volunteer hours of one credit)"
    ),
    DAILY_LIMIT: (
        "declined: a per-card daily limit (taxi spending, recycling credit) leaves no room for "
        "this operation"
    ),
    OUTSIDE_HOURS: "declined: outside the venue's opening hours or the facility's access windows",
    CATEGORY_NOT_ALLOWED: "declined: the facility is not open to the card's rider category",
    PARKING_SESSION_OPEN: (
        "declined: the card already has an open parking session; exit first or ask the "
        "operator to close it"
    ),
    NO_PARKING_SESSION: "declined: no open parking session for this card at this car park",
    DUPLICATE_TRIP: "declined: this taxi trip was already charged with a different amount",
    NOT_AUTHORISED: "declined: the terminal's operator is not authorised for this operation",
    INSUFFICIENT_POINTS: "declined: the card holds fewer reward points than asked to redeem",
    UNKNOWN_ROUTE: "declined: the route is not in the tariff's GTFS feed",
    UNKNOWN_STOP: (
        "declined: the stop is not in the tariff's GTFS feed, or the fare depends on the stop "
        "and the tap named none"
    ),
    UNKNOWN_CATEGORY: "declined: the card's rider category is not one of the tariff's",
    UNKNOWN_PRODUCT: "declined: the tariff sells no such product to this card's category",
    NO_FARE_RULE: (
        "declined: the GTFS feed has no fare for this leg, rider category and fare medium at "
        "this time"
    ),
    OUTSIDE_VALIDITY: "declined: the time is outside the validity dates of the tariff or its feed",
    NO_OPEN_JOURNEY: (
        "declined: tap off without a tap on within the tap off window (the tap on, if any, "
        "kept its maximum fare and can be corrected by an operator)"
    ),
    UNKNOWN_JOURNEY: (
        "declined: the correction names no incomplete trip of this card, or it was already "
        "corrected"
    ),
    PRODUCT_LIMIT: "declined: the card already holds the most products it can",
    NEGATIVE_BALANCE: (
        "declined: the balance is negative (the one-time transit allowance is used); top up first"
    ),
    INVALID_NOTE: "declined: an operator command says no reason, or one over 200 characters",
    CARD_AUTH_REQUIRED: "declined: this card must authenticate each tap (card cryptogram) and "
    "the tap carries none",
    CARD_AUTH_FAILED: "declined: the card cryptogram does not verify with the card's key",
    NO_VALID_TICKET: "declined (an inspection): no open trip on this network, no usable product "
    "covering it and no fare charged in the last 90 minutes",
    STALE_CARD_COUNTER: "declined: the card counter is not above the last one accepted "
    "(a replayed cryptogram or a cloned card)",
}

APPROVING: Final[frozenset[str]] = frozenset({OK, REPEAT_TAP})
"""The codes that go with `approved=True`; every other code is a decline."""

__all__ = [
    "AMOUNT_TOO_LARGE",
    "APPROVING",
    "BALANCE_LIMIT",
    "CARD_AUTH_FAILED",
    "CARD_AUTH_REQUIRED",
    "CARD_BLOCKED",
    "CATEGORY_NOT_ALLOWED",
    "DAILY_LIMIT",
    "DUPLICATE_TRIP",
    "IMPLAUSIBLE_QUANTITY",
    "INSUFFICIENT_FUNDS",
    "INSUFFICIENT_POINTS",
    "INVALID_AMOUNT",
    "INVALID_NOTE",
    "INVALID_QUANTITY",
    "NEGATIVE_BALANCE",
    "NOT_AUTHORISED",
    "NO_FARE_RULE",
    "NO_OPEN_JOURNEY",
    "NO_PARKING_SESSION",
    "NO_VALID_TICKET",
    "OK",
    "OUTSIDE_HOURS",
    "OUTSIDE_VALIDITY",
    "PARKING_SESSION_OPEN",
    "PRODUCT_LIMIT",
    "REASONS",
    "REPEAT_TAP",
    "SERVICE_NOT_OFFERED",
    "STALE_CARD_COUNTER",
    "UNKNOWN_CARD",
    "UNKNOWN_CATEGORY",
    "UNKNOWN_FACILITY",
    "UNKNOWN_JOURNEY",
    "UNKNOWN_MATERIAL",
    "UNKNOWN_NETWORK",
    "UNKNOWN_PRODUCT",
    "UNKNOWN_ROUTE",
    "UNKNOWN_STOP",
    "UNKNOWN_VENUE",
    "UNSUPPORTED_OPERATION",
]
