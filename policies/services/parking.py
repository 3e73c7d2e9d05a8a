"""Parking: entry / exit sessions at a car park, a time tariff, a daily maximum, lost exits.

This module owns the parking rules. An entry opens a session (amount 0); the exit charges
`period_price` per started `period_min` of the stay, at most `daily_max` per started 24 hours
since entry (a stay within `free_min` is free). A card has at most one open session: an entry
while one is open is a repeat (same car park, inside the double-tap window, amount 0), a
`parking_lost` charge of `lost_amount` for a session open longer than `lost_after_min` (paid to
that session's operator, and the new session opens), or else declined `parking_session_open`.
An operator may close its own open session (`ParkingClose`): the lost-ticket amount when overdue,
the time tariff otherwise. An exit with no open session is `no_parking_session`, except a
repeated tap at the same exit inside the double-tap window, which is answered `repeat_tap`.
"""

from __future__ import annotations

from policies import reasons
from policies.model import EVENT_REPEAT_TAP, CardState, Outcome
from policies.services._common import (
    Step,
    approve,
    decline,
    funds_step,
    services_of,
    updated,
)
from policies.services.commands import (
    EVENT_PARKING_ENTRY,
    EVENT_PARKING_EXIT,
    EVENT_PARKING_LOST,
    ParkingClose,
    ParkingEntry,
    ParkingExit,
)
from policies.services.local_time import DAY_MS, MINUTE_MS
from policies.services.state import ParkingSession, evolve
from policies.services.tariff import ParkingFacility
from policies.tariff import Tariff


def parking_product(command: ParkingEntry | ParkingExit | ParkingClose) -> str:
    return "parking:" + command.facility


def parking_charge(facility: ParkingFacility, duration_ms: int) -> tuple[int, Step]:
    """The time tariff of a stay of `duration_ms` (>= 0) and the explanation of it."""
    minutes = -(-duration_ms // MINUTE_MS)
    if duration_ms <= facility.free_min * MINUTE_MS:
        return 0, {
            "rule": "parking_free_time",
            "minutes": minutes,
            "free_min": facility.free_min,
        }
    period_ms = facility.period_min * MINUTE_MS
    price = facility.period_price
    full_days, rest_ms = divmod(duration_ms, DAY_MS)
    day_periods = -(-DAY_MS // period_ms)
    day_charge = min(day_periods * price, facility.daily_max)
    rest_periods = -(-rest_ms // period_ms)
    rest_charge = min(rest_periods * price, facility.daily_max)
    amount = full_days * day_charge + rest_charge
    return amount, {
        "rule": "parking_time_tariff",
        "minutes": minutes,
        "period_min": facility.period_min,
        "period_price": price,
        "periods": full_days * day_periods + rest_periods,
        "full_days": full_days,
        "daily_max": facility.daily_max,
        "daily_max_applied": (full_days > 0 and day_charge < day_periods * price)
        or rest_charge < rest_periods * price,
        "amount": amount,
    }


def _lost_step(session: ParkingSession, facility: ParkingFacility, now_ms: int) -> Step:
    return {
        "rule": "lost_exit",
        "facility": session.facility,
        "entry_ms": session.entry_ms,
        "open_min": max(0, now_ms - session.entry_ms) // MINUTE_MS,
        "lost_after_min": facility.lost_after_min,
        "amount": facility.lost_amount,
    }


def parking_entry(state: CardState, command: ParkingEntry, now_ms: int, tariff: Tariff) -> Outcome:
    product = "parking:" + command.facility
    parking = tariff.services.parking
    if command.facility not in parking:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.UNKNOWN_FACILITY,
            product,
            {"rule": "facility_known", "facility": command.facility},
        )
    services = services_of(state)
    session = services.parking
    charge = 0
    payee = command.operator
    event_type = EVENT_PARKING_ENTRY
    steps: list[Step] = []
    if session is not None:
        age = now_ms - session.entry_ms
        window = tariff.double_tap_window_ms
        if session.facility == command.facility and -window < age < window:
            return approve(
                state,
                command,
                now_ms,
                tariff,
                0,
                product,
                EVENT_REPEAT_TAP,
                (
                    {
                        "rule": "double_tap",
                        "facility": session.facility,
                        "entry_ms": session.entry_ms,
                        "window_ms": window,
                    },
                ),
                reason=reasons.REPEAT_TAP,
            )
        old = parking.get(session.facility)
        if old is None:
            # The car park left the tariff: its session cannot be priced, so it closes free.
            steps.append({"rule": "facility_withdrawn", "facility": session.facility})
        elif age <= old.lost_after_min * MINUTE_MS:
            return decline(
                state,
                command,
                now_ms,
                tariff,
                reasons.PARKING_SESSION_OPEN,
                product,
                {
                    "rule": "one_open_session",
                    "facility": session.facility,
                    "entry_ms": session.entry_ms,
                    "lost_after_min": old.lost_after_min,
                },
            )
        else:
            charge = old.lost_amount
            payee = session.operator
            event_type = EVENT_PARKING_LOST
            product = "parking_lost:" + session.facility
            steps.append(_lost_step(session, old, now_ms))
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
    steps.append({"rule": "parking_session_opened", "facility": command.facility})
    new_services = evolve(
        services,
        parking=ParkingSession(command.facility, command.operator, command.terminal_id, now_ms),
    )
    return approve(
        updated(state, new_services, balance - charge),
        command,
        now_ms,
        tariff,
        charge,
        product,
        event_type,
        tuple(steps),
        payee=payee,
    )


def parking_exit(state: CardState, command: ParkingExit, now_ms: int, tariff: Tariff) -> Outcome:
    product = "parking:" + command.facility
    facility = tariff.services.parking.get(command.facility)
    if facility is None:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.UNKNOWN_FACILITY,
            product,
            {"rule": "facility_known", "facility": command.facility},
        )
    services = services_of(state)
    session = services.parking
    if session is None or session.facility != command.facility:
        last = services.last_exit
        window = tariff.double_tap_window_ms
        if last is not None and last[0] == command.facility and -window < now_ms - last[1] < window:
            return approve(
                state,
                command,
                now_ms,
                tariff,
                0,
                product,
                EVENT_REPEAT_TAP,
                (
                    {
                        "rule": "double_tap",
                        "facility": last[0],
                        "exit_ms": last[1],
                        "window_ms": window,
                    },
                ),
                reason=reasons.REPEAT_TAP,
            )
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.NO_PARKING_SESSION,
            product,
            {
                "rule": "open_session",
                "facility": command.facility,
                "open_at": None if session is None else session.facility,
            },
        )
    charge, step = parking_charge(facility, max(0, now_ms - session.entry_ms))
    balance = state.balance
    if balance < charge:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            product,
            step,
            funds_step(balance, charge),
        )
    new_services = evolve(services, parking=None, last_exit=(command.facility, now_ms))
    return approve(
        updated(state, new_services, balance - charge),
        command,
        now_ms,
        tariff,
        charge,
        product,
        EVENT_PARKING_EXIT,
        (step,),
        payee=session.operator,
    )


def parking_close(state: CardState, command: ParkingClose, now_ms: int, tariff: Tariff) -> Outcome:
    product = "parking:" + command.facility
    services = services_of(state)
    session = services.parking
    if session is None or session.facility != command.facility:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.NO_PARKING_SESSION,
            product,
            {
                "rule": "open_session",
                "facility": command.facility,
                "open_at": None if session is None else session.facility,
            },
        )
    if command.operator != session.operator:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.NOT_AUTHORISED,
            product,
            {"rule": "session_operator", "operator": command.operator},
        )
    facility = tariff.services.parking.get(session.facility)
    event_type = EVENT_PARKING_EXIT
    step: Step
    if facility is None:
        charge, step = 0, {"rule": "facility_withdrawn", "facility": session.facility}
    elif now_ms - session.entry_ms > facility.lost_after_min * MINUTE_MS:
        charge, step = facility.lost_amount, _lost_step(session, facility, now_ms)
        event_type = EVENT_PARKING_LOST
        product = "parking_lost:" + session.facility
    else:
        charge, step = parking_charge(facility, max(0, now_ms - session.entry_ms))
    balance = state.balance
    if balance < charge:
        return decline(
            state,
            command,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            product,
            step,
            funds_step(balance, charge),
        )
    closed = {"rule": "operator_close", "operator": command.operator}
    return approve(
        updated(state, evolve(services, parking=None), balance - charge),
        command,
        now_ms,
        tariff,
        charge,
        product,
        event_type,
        (step, closed),
        payee=session.operator,
    )
