"""Terminal kinds, what cardholders do at them, and which tap operations that takes -- as data.

The city asks this module, for every activity (enter the metro, board a bus, pay a taxi, ...),
which tap operation(s) to send. The answer comes from two tables of the gateway, read at run
time rather than copied here:

* `gateway.tap_commands.KIND_OPS` -- which operations each terminal kind may perform;
* `gateway.wire.protocol.OPS` -- which operations exist on the wire, and their fields.

Each activity lists op groups in order of preference, e.g. a metro journey prefers
(`tap_on`, `tap_off`) and falls back to a single `fare` at the entry gate. The first group
whose every op is allowed for the kind, exists on the wire and has all its required fields
fillable from what the simulator knows (`FIELD_SOURCES`) is used. So when the issue-3 ops land
in those two tables, the city starts using them with no change here; an op with a required
field of an unknown name stays off and is reported (`Resolution.skipped`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Every terminal kind of the city, in report order.
KIND_ORDER: tuple[str, ...] = (
    "gate",
    "bus",
    "taxi",
    "parking",
    "retail",
    "venue",
    "recycling",
    "kiosk",
)

#: Kinds on a mobile network (they lose their connection now and then).
MOBILE_KINDS: frozenset[str] = frozenset({"bus", "taxi"})


@dataclass(frozen=True, slots=True)
class Activity:
    """Something a cardholder does at a terminal of one of `kinds`.

    `groups`: op groups in order of preference. A group is (in_op,) or (in_op, out_op): with two
    ops the journey taps twice (on and off, entry and exit) at the same kind of terminal."""

    name: str
    kinds: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]


ACTIVITIES: dict[str, Activity] = {
    a.name: a
    for a in (
        Activity("metro", ("gate",), (("tap_on", "tap_off"), ("fare",))),
        Activity("bus", ("bus",), (("tap_on", "tap_off"), ("fare",))),
        Activity("taxi", ("taxi",), (("taxi_fare",), ("purchase",))),
        # Parking with entry/exit sessions; today: pay the fee computed by the machine at exit.
        Activity("parking", ("parking",), (("parking_entry", "parking_exit"), ("purchase",))),
        Activity("shop", ("retail",), (("purchase",),)),
        Activity("product", ("retail", "kiosk"), (("buy_product",), ("buy",))),
        Activity("venue", ("venue",), (("venue_entry",), ("purchase",))),
        Activity("recycle", ("recycling",), (("recycle",),)),
        Activity("topup", ("kiosk", "retail"), (("topup",),)),
        Activity("access", ("venue", "kiosk"), (("access",),)),
        Activity("reward", ("kiosk", "recycling"), (("reward_credit",),)),
        Activity("redeem", ("kiosk", "retail"), (("redeem_points",),)),
    )
}

#: Tap field names the simulator can fill, and which value of an activity's context feeds each
#: (the context keys are what `population` knows about a tap: stop, network, amount, ...).
FIELD_SOURCES: dict[str, str] = {
    "amount": "amount",
    "fare": "amount",
    "price": "amount",
    "merchant": "merchant",
    "operator": "merchant",
    "network": "network",
    "stop": "stop",
    "station": "stop",
    "location": "stop",
    "area": "stop",
    "zone": "stop",
    "route": "route",
    "line": "route",
    "venue": "venue",
    "product": "product",
    "material": "material",
    "weight": "weight_g",
    "weight_g": "weight_g",
    "grams": "weight_g",
    "points": "points",
    "distance_m": "distance_m",
    "duration_s": "duration_s",
    "plate": "plate",
    "session": "session",
    "facility": "facility",
    "trip_id": "trip_id",
    "category": "merchant_category",
    "hours": "hours",
}


@dataclass(frozen=True, slots=True)
class Resolution:
    """How each activity is performed against one gateway's tables."""

    #: activity -> (kind -> op group) for the activities that can run
    ops: dict[str, dict[str, tuple[str, ...]]]
    #: "activity/kind: op (why)" for groups passed over because an op is unknown or unfillable
    skipped: tuple[str, ...]
    #: kinds that no runnable activity uses (their terminals connect and heartbeat, nothing else)
    idle_kinds: tuple[str, ...]
    #: op -> its field specs as (name, required)
    op_fields: dict[str, tuple[tuple[str, bool], ...]] = field(default_factory=dict)

    def group(self, activity: str, kind: str) -> tuple[str, ...] | None:
        return self.ops.get(activity, {}).get(kind)

    def kinds_for(self, activity: str) -> tuple[str, ...]:
        """Kinds that can do `activity`, in the activity's order of preference."""
        avail = self.ops.get(activity, {})
        return tuple(k for k in ACTIVITIES[activity].kinds if k in avail)

    def describe(self) -> dict[str, dict[str, list[str]]]:
        return {a: {k: list(g) for k, g in by.items()} for a, by in sorted(self.ops.items())}


def gateway_tables() -> tuple[Mapping[str, frozenset[str]], Mapping[str, Any]]:
    """The gateway's (KIND_OPS, OPS), read now (not at import: they change as the core grows)."""
    from gateway.tap_commands import KIND_OPS
    from gateway.wire.protocol import OPS

    return KIND_OPS, OPS


def resolve(
    kind_ops: Mapping[str, frozenset[str]] | None = None,
    ops: Mapping[str, Any] | None = None,
) -> Resolution:
    """Pick, for every activity and kind, the first op group the gateway supports."""
    if kind_ops is None or ops is None:
        k, o = gateway_tables()
        kind_ops = k if kind_ops is None else kind_ops
        ops = o if ops is None else ops
    op_fields: dict[str, tuple[tuple[str, bool], ...]] = {
        name: tuple((f.name, bool(f.required)) for f in spec.fields) for name, spec in ops.items()
    }
    chosen: dict[str, dict[str, tuple[str, ...]]] = {}
    skipped: list[str] = []
    for act in ACTIVITIES.values():
        for kind in act.kinds:
            allowed = kind_ops.get(kind, frozenset())
            for group in act.groups:
                why = _unusable(group, allowed, op_fields)
                if why is None:
                    chosen.setdefault(act.name, {})[kind] = group
                    break
                if why != "not allowed":
                    skipped.append(f"{act.name}/{kind}: {'+'.join(group)} ({why})")
    used = {k for by in chosen.values() for k in by}
    idle = tuple(k for k in KIND_ORDER if k not in used)
    return Resolution(chosen, tuple(skipped), idle, op_fields)


def _unusable(
    group: tuple[str, ...],
    allowed: frozenset[str],
    op_fields: Mapping[str, tuple[tuple[str, bool], ...]],
) -> str | None:
    for op in group:
        if op not in allowed:
            return "not allowed"
        if op not in op_fields:
            return f"{op} not in gateway.wire.protocol.OPS"
        for name, required in op_fields[op]:
            if required and name not in FIELD_SOURCES:
                return f"{op} needs field {name!r} the simulator cannot fill"
    return None


def fill_fields(
    op: str, context: Mapping[str, object], resolution: Resolution
) -> tuple[tuple[str, object], ...]:
    """The op's fields, filled by name from the activity's context (sorted, hashable)."""
    out: list[tuple[str, object]] = []
    for name, required in resolution.op_fields.get(op, ()):
        source = FIELD_SOURCES.get(name)
        value = context.get(source) if source is not None else None
        if value is None:
            if required:
                raise ValueError(f"op {op}: no value for required field {name!r}")
            continue
        out.append((name, value))
    return tuple(sorted(out))
