"""Transit fares: what a tap at a gate or validator costs, and why.

This module owns the transit rules of `decide`:

- `fare_tap` (`FareTap`, tap-in only) and `tap_on` (`TapOn`): after the tariff's validity dates,
  double-tap protection (a second tap at the same gate inside the tariff's window is answered
  "approved" without a second charge) and the rider category in force (concessions.py), a held
  pass that covers the network rides free (activated by its first ride, passes.py); otherwise
  the fare comes from the tariff's GTFS feed when the tap's route or network is in it
  (journey.py: transfers, timeframes and categories included), else from the city's flat fare
  for the network (scaled by the category's `flat_percent`). A tap on charges the maximum fare
  from its stop and opens a trip. The fare is then capped (caps.py) and paid from stored value,
  which one transit tap may take below zero, once, down to the tariff's `negative_limit`.
- `tap_off` (`TapOff`): prices the real leg of the open trip and credits the difference to what
  the tap on took. A new tap on (or a fare tap) before it, or no tap off within the tariff's
  `tap_off_window_ms`, leaves the trip incomplete: it keeps the maximum fare.
- `fare_correction` (`FareCorrection`): an operator sets the fare of an incomplete trip; the
  difference is refunded.

Every charge and credit is attributed (`Event.operator`) to the operator that received the
money: a tap off's credit and a correction's refund to the tap on's operator, so a clearing
report per operator sums exactly to what cardholders paid. A tariff with nothing beyond flat
fares (`TransitRules.plain`) and a card without products or trips take the v1 path unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Final, NamedTuple

from policies import reasons
from policies.caps import (
    applicable,
    cap_fare,
    local_period,
    progress_only,
    progress_step,
    recorded_spend,
    safe_local_period,
    unrecord,
)
from policies.concessions import effective_category, unknown_category_step
from policies.evolve import evolve
from policies.journey import Priced, Refused, price, price_max
from policies.model import (
    EVENT_FARE_CHARGED,
    EVENT_FARE_CORRECTED,
    EVENT_REPEAT_TAP,
    EVENT_TAP_OFF,
    EVENT_TAP_ON,
    MAX_RECENT_TAPS,
    CardState,
    Decision,
    Event,
    FareCorrection,
    FareTap,
    Outcome,
    TapOff,
    TapOn,
)
from policies.outcomes import approved, declined
from policies.passes import covering_pass, use_pass
from policies.tariff import Tariff
from policies.transit_state import (
    EMPTY_TRANSIT,
    MAX_INCOMPLETE,
    CapProgress,
    IncompleteTrip,
    OpenTrip,
    TransitJourney,
    TransitMemory,
)

Explain = tuple[Mapping[str, object], ...]

_tuple_new: Final = tuple.__new__

TAP_OFF_GATE_PREFIX: Final = "off:"
"""Tap offs are remembered for double-tap protection under "off:<gate>", apart from tap ons."""


def fare_product(command: FareTap | TapOn | TapOff) -> str:
    return "fare:" + str(command.network)


def correction_product(command: FareCorrection) -> str:
    return "correction:" + str(command.journey)[:64]


# ------------------------------------------------------------------------------------------------
# Small shared steps
# ------------------------------------------------------------------------------------------------


def _repeat(state: CardState, gate: str, now_ms: int, window: int) -> int | None:
    """Time of a charged tap at `gate` inside the double-tap window, if any.

    The window is symmetric: two gateway processes serving the same card may disagree on the
    time by a little, and a tap seen "slightly in the future" is still the same tap."""
    for tap_gate, tap_ms in state.recent_taps:
        if tap_gate == gate and -window < now_ms - tap_ms < window:
            return tap_ms
    return None


def _remember_tap(
    state: CardState, gate: str, now_ms: int, window: int
) -> tuple[tuple[str, int], ...]:
    # Only the latest tap per gate matters, and only inside the window; dropping the rest keeps
    # the stored state small before the hard MAX_RECENT_TAPS bound even applies. A tap more than
    # a window in the future means the clock jumped back; it is pruned so it cannot grant free
    # rides until the clock catches up.
    kept = [
        (tap_gate, tap_ms)
        for tap_gate, tap_ms in state.recent_taps
        if tap_gate != gate and -window < now_ms - tap_ms < window
    ]
    kept.append((gate, now_ms))
    return tuple(kept[-MAX_RECENT_TAPS:])


def _repeat_outcome(
    state: CardState,
    command: FareTap | TapOn | TapOff,
    now_ms: int,
    tariff: Tariff,
    gate: str,
    tap_ms: int,
) -> Outcome:
    # State is returned as is: the window stays anchored on the charged tap, so tapping
    # every 50 s does not ride for free forever.
    return approved(
        state,
        command.terminal_id,
        command.operator,
        now_ms,
        tariff,
        reasons.REPEAT_TAP,
        0,
        fare_product(command),
        EVENT_REPEAT_TAP,
        (
            {
                "rule": "double_tap",
                "gate": gate,
                "last_tap_ms": tap_ms,
                "window_ms": tariff.double_tap_window_ms,
            },
        ),
    )


def _outside_validity(tariff: Tariff, now_ms: int) -> Mapping[str, object] | None:
    rules = tariff.transit
    if (rules.valid_from_ms is not None and now_ms < rules.valid_from_ms) or (
        rules.valid_until_ms is not None and now_ms >= rules.valid_until_ms
    ):
        return {
            "rule": "tariff_validity",
            "valid_from": rules.valid_from,
            "valid_until": rules.valid_until,
        }
    return None


def _funds_problem(
    balance: int, charge: int, limit: int
) -> tuple[str, Mapping[str, object]] | None:
    """Why stored value cannot pay `charge`, or None. Octopus-style: a tap from a balance of 0
    or more may end below zero, down to -limit; a negative balance pays nothing more."""
    if charge <= 0 or balance - charge >= 0:
        return None
    if balance < 0:
        return reasons.NEGATIVE_BALANCE, {
            "rule": "negative_allowance",
            "balance": balance,
            "required": charge,
            "used": True,
        }
    if balance - charge < -limit:
        return reasons.INSUFFICIENT_FUNDS, {
            "rule": "sufficient_funds",
            "balance": balance,
            "required": charge,
            "negative_limit": limit,
        }
    return None


def _transit_outcome(
    new_state: CardState,
    command: FareTap | TapOn | TapOff | FareCorrection,
    operator: str,
    now_ms: int,
    tariff: Tariff,
    amount: int,
    product: str,
    event_type: str,
    explain: Explain,
    caps: tuple[CapProgress, ...],
    detail: Mapping[str, object] | None = None,
) -> Outcome:
    version = tariff.version
    balance = new_state.balance
    return Outcome(
        new_state,
        Decision(True, reasons.OK, amount, balance, product, version, explain, caps),
        (
            Event(
                event_type,
                new_state.card_id,
                amount,
                balance,
                operator,
                command.terminal_id,
                now_ms,
                reasons.OK,
                version,
                product,
                detail,
            ),
        ),
    )


def _close_trip(memory: TransitMemory, explain: list[Mapping[str, object]]) -> TransitMemory:
    """`memory` with its open trip (if any) moved to the incomplete trips: it keeps its fare."""
    trip = memory.trip
    if trip is None:
        return memory
    explain.append({"rule": "incomplete_trip", "journey": trip.ref, "kept": trip.charged})
    incomplete = (
        *memory.incomplete,
        IncompleteTrip(trip.ref, trip.network, trip.on_ms, trip.charged, trip.operator),
    )[-MAX_INCOMPLETE:]
    return replace(memory, trip=None, incomplete=incomplete)


# ------------------------------------------------------------------------------------------------
# Where the fare comes from
# ------------------------------------------------------------------------------------------------


class _Mode(NamedTuple):
    network: str
    """The network as passes and explanations name it."""
    route: str | None
    """The feed route to price with; None: the flat fare."""


def _mode(tariff: Tariff, command: FareTap | TapOn) -> _Mode | tuple[str, Explain]:
    rules = tariff.transit
    feed = rules.feed
    network, route = command.network, command.route
    if feed is not None:
        if route is not None and route in feed.route_network:
            # _Mode built as the tuple it is (no NamedTuple __new__ frame on every tap).
            return _tuple_new(_Mode, (feed.route_network[route] or network, route))
        gtfs_route = rules.network_route.get(network)
        if gtfs_route is not None and route is None:
            return _Mode(network, gtfs_route)
    if network in tariff.network_fares:
        return _Mode(network, None)
    if route is not None and feed is not None:
        return reasons.UNKNOWN_ROUTE, (
            {"rule": "route_known", "route": route, "feed": feed.version},
        )
    return reasons.UNKNOWN_NETWORK, ({"rule": "network_known", "network": network},)


def _stop_for(tariff: Tariff, stop: str | None) -> str | None:
    return stop if stop is not None else tariff.transit.any_stop


# ------------------------------------------------------------------------------------------------
# Tap in (fare) and tap on
# ------------------------------------------------------------------------------------------------


def fare_tap(state: CardState, command: FareTap, now_ms: int, tariff: Tariff) -> Outcome:
    if tariff.transit.plain and state.transit is None and not state.products:
        return _v1_fare_tap(state, command, now_ms, tariff)
    return _charge(state, command, now_ms, tariff, on=False)


def tap_on(state: CardState, command: TapOn, now_ms: int, tariff: Tariff) -> Outcome:
    return _charge(state, command, now_ms, tariff, on=True)


def _v1_fare_tap(state: CardState, command: FareTap, now_ms: int, tariff: Tariff) -> Outcome:
    """Flat fare, double-tap protection, no overdraft: the whole of v1, on its fast path."""
    network = command.network
    product = "fare:" + network
    fare = tariff.network_fares.get(network)
    if fare is None:
        return declined(
            state,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reasons.UNKNOWN_NETWORK,
            product,
            ({"rule": "network_known", "network": network},),
        )
    window = tariff.double_tap_window_ms
    gate = command.gate
    tap_ms = _repeat(state, gate, now_ms, window)
    if tap_ms is not None:
        return _repeat_outcome(state, command, now_ms, tariff, gate, tap_ms)
    balance = state.balance
    flat = {"rule": "flat_fare", "network": network, "fare": fare}
    if balance < fare:
        return declined(
            state,
            command.terminal_id,
            command.operator,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            product,
            (flat, {"rule": "sufficient_funds", "balance": balance, "required": fare}),
        )
    new_state = evolve(
        state, balance=balance - fare, recent_taps=_remember_tap(state, gate, now_ms, window)
    )
    return approved(
        new_state,
        command.terminal_id,
        command.operator,
        now_ms,
        tariff,
        reasons.OK,
        fare,
        product,
        EVENT_FARE_CHARGED,
        (flat,),
    )


def _charge(
    state: CardState, command: FareTap | TapOn, now_ms: int, tariff: Tariff, *, on: bool
) -> Outcome:
    rules = tariff.transit
    terminal, operator = command.terminal_id, command.operator
    product = fare_product(command)

    def decline(reason: str, explain: Explain) -> Outcome:
        return declined(state, terminal, operator, now_ms, tariff, reason, product, explain)

    invalid = _outside_validity(tariff, now_ms)
    if invalid is not None:
        return decline(reasons.OUTSIDE_VALIDITY, (invalid,))
    mode = _mode(tariff, command)
    if not isinstance(mode, _Mode):
        return decline(*mode)
    window = tariff.double_tap_window_ms
    gate = command.gate
    tap_ms = _repeat(state, gate, now_ms, window)
    if tap_ms is not None:
        return _repeat_outcome(state, command, now_ms, tariff, gate, tap_ms)
    resolved = effective_category(state, now_ms, rules)
    if resolved is None:
        return decline(reasons.UNKNOWN_CATEGORY, (unknown_category_step(state, rules),))

    explain: list[Mapping[str, object]] = [resolved.step]
    memory = state.transit or EMPTY_TRANSIT
    if memory.trip is not None:
        memory = _close_trip(memory, explain)  # a new boarding: an open trip stays incomplete
    products = state.products
    stop = _stop_for(tariff, command.stop)
    pass_index = covering_pass(products, mode.network, now_ms)
    journey: TransitJourney | None = memory.journey
    fare_name: str
    if pass_index is not None:
        products, held, step = use_pass(rules, products, pass_index, now_ms)
        explain.append(step)
        fare = 0
        fare_name = "pass:" + held.product_id
    elif mode.route is None:
        full = tariff.network_fares[mode.network]
        fare = full * resolved.flat_percent // 100
        step = {"rule": "flat_fare", "network": mode.network, "fare": fare}
        if fare != full:
            step["full_fare"] = full
            step["percent"] = resolved.flat_percent
        explain.append(step)
        fare_name = product
    else:
        if stop is None:
            return decline(
                reasons.UNKNOWN_STOP,
                ({"rule": "stop_known", "stop": None, "why": "the feed's fares depend on stops"},),
            )
        priced: Priced | Refused
        if on:
            priced = price_max(rules, journey, resolved.gtfs, mode.route, stop, now_ms)
        else:
            priced = price(rules, journey, resolved.gtfs, mode.route, stop, stop, now_ms)
        if isinstance(priced, Refused):
            return decline(priced.reason, (resolved.step, *priced.explain))
        explain.extend(priced.explain)
        fare = priced.amount
        journey = priced.journey
        fare_name = "fare:" + priced.product

    if rules.caps:
        # Spend is recorded whatever the category (caps.py); only the category's caps bind.
        period = safe_local_period(rules, now_ms)
        if period is None:
            return decline(reasons.OUTSIDE_VALIDITY, ({"rule": "time_representable"},))
        day, month = period
        charge, progress, cap_steps = cap_fare(
            memory, applicable(rules, resolved.name), fare, day, month
        )
        explain.extend(cap_steps)
    else:
        charge, progress = fare, ()
        day = month = 0
    balance = state.balance
    problem = _funds_problem(balance, charge, rules.negative_limit)
    if problem is not None:
        return decline(problem[0], (*explain, problem[1]))
    if charge > balance:
        explain.append(
            {
                "rule": "negative_allowance",
                "balance_after": balance - charge,
                "limit": rules.negative_limit,
            }
        )
    spend_days, spend_months = memory.spend_days, memory.spend_months
    if rules.caps:
        # `record`, folded into the one TransitMemory built below.
        spend_days, spend_months = recorded_spend(memory, charge, day, month)
    trips = memory.trips
    detail: Mapping[str, object] | None = None
    if on:
        trips += 1
        ref = f"J{trips}"
        trip = OpenTrip(
            ref=ref,
            network=mode.network,
            route=mode.route,
            stop=stop,
            on_ms=now_ms,
            charged=charge,
            max_fare=fare,
            operator=operator,
            terminal_id=terminal,
            product=fare_name,
            before=memory.journey if mode.route is not None and pass_index is None else None,
        )
        explain.append(
            {
                "rule": "tap_on",
                "journey": ref,
                "max_fare": fare,
                "charged": charge,
                "tap_off_within_ms": rules.tap_off_window_ms,
            }
        )
        memory = TransitMemory(journey, trip, memory.incomplete, spend_days, spend_months, trips)
        detail = {"journey": ref}
    elif journey is not memory.journey or spend_days is not memory.spend_days:
        memory = TransitMemory(journey, None, memory.incomplete, spend_days, spend_months, trips)
    new_state = evolve(
        state,
        balance=balance - charge,
        recent_taps=_remember_tap(state, gate, now_ms, window),
        products=products,
        transit=memory,
    )
    return _transit_outcome(
        new_state,
        command,
        operator,
        now_ms,
        tariff,
        charge,
        fare_name,
        EVENT_TAP_ON if on else EVENT_FARE_CHARGED,
        tuple(explain),
        progress,
        detail,
    )


# ------------------------------------------------------------------------------------------------
# Tap off
# ------------------------------------------------------------------------------------------------


def tap_off(state: CardState, command: TapOff, now_ms: int, tariff: Tariff) -> Outcome:
    rules = tariff.transit
    terminal = command.terminal_id
    product = fare_product(command)

    def decline(reason: str, explain: Explain) -> Outcome:
        return declined(state, terminal, command.operator, now_ms, tariff, reason, product, explain)

    window = tariff.double_tap_window_ms
    gate = TAP_OFF_GATE_PREFIX + command.gate
    tap_ms = _repeat(state, gate, now_ms, window)
    if tap_ms is not None:
        return _repeat_outcome(state, command, now_ms, tariff, gate, tap_ms)
    memory = state.transit or EMPTY_TRANSIT
    trip = memory.trip
    if trip is None or not 0 <= now_ms - trip.on_ms <= rules.tap_off_window_ms:
        step: dict[str, object] = {"rule": "open_journey", "window_ms": rules.tap_off_window_ms}
        if trip is not None:
            step["journey"] = trip.ref
            step["on_ms"] = trip.on_ms
        return decline(reasons.NO_OPEN_JOURNEY, (step,))
    invalid = _outside_validity(tariff, now_ms)
    if invalid is not None:
        return decline(reasons.OUTSIDE_VALIDITY, (invalid,))
    explain: list[Mapping[str, object]] = []
    journey = memory.journey
    feed = rules.feed
    if (
        trip.product.startswith("pass:")
        or trip.route is None
        or feed is None
        or trip.route not in feed.route_network
    ):
        # A pass ride costs nothing; a flat fare does not depend on where the rider left; a
        # trip whose route the tariff in force no longer prices (reloaded since the tap on)
        # keeps what it was charged.
        real = trip.max_fare
        if trip.product.startswith("pass:"):
            why = "pass"
        elif trip.route is None:
            why = "flat_fare"
        else:
            why = "route_no_longer_priced"
        explain.append({"rule": "tap_off_fare", "basis": why, "fare": real})
    else:
        resolved = effective_category(state, trip.on_ms, rules)
        if resolved is None:
            return decline(reasons.UNKNOWN_CATEGORY, (unknown_category_step(state, rules),))
        stop = _stop_for(tariff, command.stop)
        if stop is None or trip.stop is None:
            return decline(
                reasons.UNKNOWN_STOP,
                ({"rule": "stop_known", "stop": None, "why": "the feed's fares depend on stops"},),
            )
        priced = price(
            rules, trip.before, resolved.gtfs, trip.route, trip.stop, stop, trip.on_ms, now_ms
        )
        if isinstance(priced, Refused):
            return decline(priced.reason, priced.explain)
        explain.extend(priced.explain)
        real = priced.amount
        journey = priced.journey
    final = min(real, trip.charged)
    credit = trip.charged - final
    explain.append(
        {
            "rule": "tap_off",
            "journey": trip.ref,
            "max_fare": trip.max_fare,
            "charged": trip.charged,
            "fare": real,
            "final": final,
            "credit": credit,
            "attributed_to": trip.operator,
        }
    )
    progress: tuple[CapProgress, ...] = ()
    if rules.caps:
        if credit:
            memory = unrecord(memory, credit, *local_period(rules, trip.on_ms))
        resolved_now = effective_category(state, now_ms, rules)
        caps = applicable(rules, resolved_now.name) if resolved_now is not None else ()
        if caps:
            progress = progress_only(memory, caps, *local_period(rules, now_ms))
            explain.append(progress_step(progress))
    memory = replace(memory, journey=journey, trip=None)
    new_state = evolve(
        state,
        balance=state.balance + credit,
        recent_taps=_remember_tap(state, gate, now_ms, window),
        transit=memory,
    )
    return _transit_outcome(
        new_state,
        command,
        trip.operator,
        now_ms,
        tariff,
        -credit,
        trip.product,
        EVENT_TAP_OFF,
        tuple(explain),
        progress,
        {"journey": trip.ref},
    )


# ------------------------------------------------------------------------------------------------
# Operator correction of an incomplete trip
# ------------------------------------------------------------------------------------------------


def fare_correction(
    state: CardState, command: FareCorrection, now_ms: int, tariff: Tariff
) -> Outcome:
    rules = tariff.transit
    product = correction_product(command)
    ref = command.journey

    def decline(reason: str, explain: Explain) -> Outcome:
        return declined(
            state, command.terminal_id, command.operator, now_ms, tariff, reason, product, explain
        )

    memory = state.transit or EMPTY_TRANSIT
    found: IncompleteTrip | None = None
    for trip in memory.incomplete:
        if trip.ref == ref:
            found = trip
    open_trip = memory.trip
    from_open = False
    if (
        found is None
        and open_trip is not None
        and open_trip.ref == ref
        and now_ms - open_trip.on_ms > rules.tap_off_window_ms
    ):
        # Not tapped off within the window and not yet closed by a later tap: incomplete too.
        found = IncompleteTrip(
            open_trip.ref, open_trip.network, open_trip.on_ms, open_trip.charged, open_trip.operator
        )
        from_open = True
    if found is None:
        return decline(
            reasons.UNKNOWN_JOURNEY,
            (
                {
                    "rule": "incomplete_trip_known",
                    "journey": str(ref)[:64],
                    "incomplete": [t.ref for t in memory.incomplete],
                },
            ),
        )
    amount = command.amount
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= found.charged:
        shown = amount if isinstance(amount, int) and abs(amount) < 2**53 else None
        return decline(
            reasons.INVALID_AMOUNT,
            ({"rule": "correction_amount", "amount": shown, "min": 0, "max": found.charged},),
        )
    credit = found.charged - amount
    if from_open:
        memory = replace(memory, trip=None)
    else:
        memory = replace(memory, incomplete=tuple(t for t in memory.incomplete if t.ref != ref))
    if credit and rules.caps:
        day, month = local_period(rules, found.on_ms)
        memory = unrecord(memory, credit, day, month)
    new_state = replace(state, balance=state.balance + credit, transit=memory)
    explain = (
        {
            "rule": "fare_correction",
            "journey": ref,
            "charged": found.charged,
            "corrected_fare": amount,
            "refund": credit,
            "corrected_by": command.operator,
            "attributed_to": found.operator,
        },
    )
    return _transit_outcome(
        new_state,
        command,
        found.operator,
        now_ms,
        tariff,
        -credit,
        product,
        EVENT_FARE_CORRECTED,
        explain,
        (),
        {"journey": ref, "corrected_by": command.operator},
    )
