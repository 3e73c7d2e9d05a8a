"""Transit fares: what a `FareTap` costs and when a tap is a repeat that costs nothing.

This module owns the v1 fare rules: a flat fare per network taken from the tariff, and
double-tap protection keyed on the tap's gate (a rider who taps twice, or taps both validators of
one bus, inside the tariff's window is answered "approved" without a second charge). It also owns
the card's bounded memory of recent charged taps. GTFS Fares v2 (areas, timeframes, transfers),
capping, passes and concessions will replace the flat-fare step here and keep the repeat check.
"""

from __future__ import annotations

from policies import reasons
from policies.model import (
    EVENT_FARE_CHARGED,
    EVENT_REPEAT_TAP,
    MAX_RECENT_TAPS,
    CardState,
    FareTap,
    Outcome,
)
from policies.outcomes import approved, declined
from policies.tariff import Tariff


def fare_product(command: FareTap) -> str:
    return "fare:" + command.network


def fare_tap(state: CardState, command: FareTap, now_ms: int, tariff: Tariff) -> Outcome:
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
    # The window is symmetric: two gateway processes serving the same card may disagree on the
    # time by a little, and a tap seen "slightly in the future" is still the same tap. A tap more
    # than a window in the future means the clock jumped back; it is ignored and pruned below so
    # it cannot grant free rides until the clock catches up.
    for tap_gate, tap_ms in state.recent_taps:
        if tap_gate == gate and -window < now_ms - tap_ms < window:
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
                product,
                EVENT_REPEAT_TAP,
                ({"rule": "double_tap", "gate": gate, "last_tap_ms": tap_ms, "window_ms": window},),
            )

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

    # Only the latest tap per gate matters, and only inside the window; dropping the rest keeps
    # the stored state small before the hard MAX_RECENT_TAPS bound even applies.
    kept = [
        (tap_gate, tap_ms)
        for tap_gate, tap_ms in state.recent_taps
        if tap_gate != gate and -window < now_ms - tap_ms < window
    ]
    kept.append((gate, now_ms))
    new_state = CardState(
        state.card_id,
        balance - fare,
        state.status,
        state.category,
        tuple(kept[-MAX_RECENT_TAPS:]),
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
