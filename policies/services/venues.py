"""Venues: museum, cinema, library, gym (any kind the tariff lists) entry, with opening hours.

This module owns the venue entry rule, in this order: the venue must be in the tariff and open
at the local time (its `hours`; none listed = always open); a second entry at the same venue
inside the double-tap window is a `repeat_tap` (nothing charged, nothing used); an active
membership listing the venue admits free; otherwise an active product with an entry left for the
venue (the tourist card) admits free and uses that entry; otherwise the entry is paid at the
venue's price less the best discount of the network (policies/services/discounts.py). The payee
is the terminal's operator (the venue). Every admitted entry is remembered (bounded) for the
double-tap check.
"""

from __future__ import annotations

from policies import reasons
from policies.model import EVENT_REPEAT_TAP, CardState, Outcome
from policies.services._common import (
    Step,
    approve,
    decline,
    funds_step,
    now_local,
    services_of,
    updated,
)
from policies.services.commands import EVENT_VENUE_ENTRY, VenueEntry
from policies.services.discounts import best_discount
from policies.services.entitlements import (
    active_memberships,
    record_entry,
    unused_entry,
    use_grant,
)
from policies.services.state import MAX_VENUE_TAPS, evolve
from policies.services.tariff import DAY_NAMES, in_windows
from policies.tariff import Tariff


def venue_product(command: VenueEntry) -> str:
    return "venue:" + command.venue


def venue_entry(state: CardState, command: VenueEntry, now_ms: int, tariff: Tariff) -> Outcome:
    name = command.venue
    product = "venue:" + name
    venue = tariff.services.venues.get(name)
    if venue is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.UNKNOWN_VENUE,
            product,
            {"rule": "venue_known", "venue": name},
        )
    if venue.hours:
        local = now_local(tariff, now_ms)
        if not in_windows(venue.hours, local.weekday, local.minute):
            return decline(
                state,
                command,
                now_ms,
                tariff,
                reasons.OUTSIDE_HOURS,
                product,
                {
                    "rule": "opening_hours",
                    "venue": name,
                    "local_day": DAY_NAMES[local.weekday],
                    "local_time": f"{local.minute // 60:02d}:{local.minute % 60:02d}",
                    "hours": [w.to_dict() for w in venue.hours],
                },
            )
    services = services_of(state)
    window = tariff.double_tap_window_ms
    for seen, at in services.venue_taps:
        if seen == name and -window < now_ms - at < window:
            return approve(
                state,
                command,
                now_ms,
                tariff,
                0,
                product,
                EVENT_REPEAT_TAP,
                ({"rule": "double_tap", "venue": name, "entry_ms": at, "window_ms": window},),
                reason=reasons.REPEAT_TAP,
            )
    entered = evolve(services, venue_taps=(*services.venue_taps, (name, now_ms))[-MAX_VENUE_TAPS:])
    entry: Step = {"rule": "venue_entry", "venue": name, "kind": venue.kind}

    for membership in active_memberships(state, now_ms):
        if name in membership.venues:
            return approve(
                updated(state, entered),
                command,
                now_ms,
                tariff,
                0,
                product,
                EVENT_VENUE_ENTRY,
                (
                    entry,
                    {
                        "rule": "membership",
                        "membership": membership.membership_id,
                        "until_ms": membership.until_ms,
                    },
                ),
            )

    grant = unused_entry(state, name, now_ms)
    if grant is not None:
        # Activates the product if this entry is its first use, then records the entry as used.
        used = record_entry(use_grant(state, grant.grant_id, now_ms, tariff), grant.grant_id, name)
        return approve(
            updated(used, evolve(services_of(used), venue_taps=entered.venue_taps)),
            command,
            now_ms,
            tariff,
            0,
            product,
            EVENT_VENUE_ENTRY,
            (
                entry,
                {
                    "rule": "entitlement",
                    "product": grant.product_id,
                    "grant": grant.grant_id,
                    "one_entry_per_venue": True,
                },
            ),
        )

    price = venue.price
    steps: tuple[Step, ...] = (entry, {"rule": "entry_price", "price": price})
    saving = 0
    discount_grant = None
    if price > 0:
        saving, discount, discount_grant = best_discount(
            state, now_ms, tariff, price, venue=name, venue_kind=venue.kind
        )
        if discount is not None:
            steps = (*steps, discount)
    charge = price - saving
    balance = state.balance
    if balance < charge:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            product,
            *steps,
            funds_step(balance, charge),
        )
    if discount_grant is not None:
        state = use_grant(state, discount_grant, now_ms, tariff)
    return approve(
        updated(state, entered, balance - charge),
        command,
        now_ms,
        tariff,
        charge,
        product,
        EVENT_VENUE_ENTRY,
        steps,
    )
