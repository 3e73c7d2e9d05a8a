"""Live subscriptions: what an operator asked to see, a bounded queue per subscriber, and the
replay that lets a reconnecting subscriber resume exactly where it stopped.

A subscription names one stream and optional filters:

| field | streams | meaning |
|---|---|---|
| `stream` | | `taps` (default), `health` (terminals going online, silent, offline) or `alerts` |
| `kind` | taps, health | one terminal kind (`gate`, `bus`, `taxi`, ...) |
| `operator` | taps | one operator (the terminal's) |
| `terminal` | taps, health | one terminal |
| `route` | taps | one line (GTFS route id) |
| `stop` | taps | one stop or station |
| `declines` | taps | `true`: declined taps only |
| `card` | taps | one card (for a support call; supervisor role) |

Anything else is refused with `bad_subscription`. A subscriber's messages wait in a queue of at
most QUEUE_SIZE; when it is full, further messages are dropped and counted, and the subscriber
is told how many it missed before the next message it gets (`missed`). A tap message carries
its journal id; resuming with `after` set to the last id received replays what came after it
(from memory, else from Redis, at most MAX_REPLAY entries) and then continues live, with no gap
and no duplicate. Nothing here can slow a gateway: the journal is read by one tailer, and a
subscriber that never reads only fills its own queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

import anyio

from gateway.wire.protocol import is_identifier

#: Messages waiting per subscriber before new ones are dropped for it.
QUEUE_SIZE: Final = 1_000
#: Subscribers at once (a leak or a flood cannot grow without bound).
MAX_SUBSCRIBERS: Final = 256
#: Entries a resuming subscriber is replayed at most (beyond: told it missed the rest).
MAX_REPLAY: Final = 100_000
STREAMS: Final = ("taps", "health", "alerts")
_FILTER_FIELDS: Final = {
    "kind": ("taps", "health"),
    "operator": ("taps",),
    "terminal": ("taps", "health"),
    "route": ("taps",),
    "stop": ("taps",),
    "declines": ("taps",),
    "card": ("taps",),
}
#: Journal fields a tap message carries.
TAP_FIELDS: Final = (
    "card", "terminal", "tap", "time", "operator", "kind", "result", "reason", "amount",
    "balance", "product", "stop", "route",
)


class SubscriptionError(ValueError):
    """A subscription that cannot be served as asked."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Filter:
    stream: str = "taps"
    kind: str | None = None
    operator: str | None = None
    terminal: str | None = None
    route: str | None = None
    stop: str | None = None
    declines: bool = False
    card: str | None = None

    @classmethod
    def parse(cls, spec: object) -> Filter:
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            raise SubscriptionError("bad_subscription", "a subscription is a JSON object")
        stream = spec.get("stream", "taps")
        if stream not in STREAMS:
            raise SubscriptionError(
                "bad_subscription", f"stream must be one of {', '.join(STREAMS)}"
            )
        values: dict[str, Any] = {"stream": stream}
        for name, value in spec.items():
            if name == "stream":
                continue
            allowed = _FILTER_FIELDS.get(name)
            if allowed is None:
                raise SubscriptionError("bad_subscription", f"unknown filter {str(name)[:40]!r}")
            if stream not in allowed:
                raise SubscriptionError(
                    "bad_subscription", f"filter {name!r} does not apply to the {stream} stream"
                )
            if name == "declines":
                if not isinstance(value, bool):
                    raise SubscriptionError("bad_subscription", "declines must be true or false")
            elif not is_identifier(value):
                raise SubscriptionError(
                    "bad_subscription", f"{name} must be an identifier (1-64 of A-Za-z0-9._:-)"
                )
            values[name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, object]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None and v is not False}

    def matches_tap(self, e: Mapping[str, str]) -> bool:
        if self.stream != "taps":
            return False
        return (
            (self.kind is None or e.get("kind") == self.kind)
            and (self.operator is None or e.get("operator") == self.operator)
            and (self.terminal is None or e.get("terminal") == self.terminal)
            and (self.route is None or e.get("route") == self.route)
            and (self.stop is None or e.get("stop") == self.stop)
            and (self.card is None or e.get("card") == self.card)
            and (not self.declines or e.get("result") == "declined")
        )

    def matches_health(self, h: Mapping[str, Any]) -> bool:
        return (
            self.stream == "health"
            and (self.kind is None or h.get("kind") == self.kind)
            and (self.terminal is None or h.get("terminal") == self.terminal)
        )


def tap_message(jid: str, e: Mapping[str, str]) -> dict[str, Any] | None:
    """The message for one journal entry (None for entries that are not decided taps)."""
    if e.get("op") != "commit":
        return None
    msg: dict[str, Any] = {"type": "tap", "id": jid}
    for name in TAP_FIELDS:
        value = e.get(name)
        if value is None:
            continue
        msg[name] = int(value) if name in ("time", "amount", "balance") else value
    return msg


class Subscriber:
    """One subscription's queue. `offer` never blocks; `next` waits for a message."""

    def __init__(self, flt: Filter) -> None:
        self.filter = flt
        self.queue: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.dropped_total = 0
        self._wake = anyio.Event()

    def offer(self, msg: dict[str, Any]) -> None:
        if len(self.queue) >= QUEUE_SIZE:
            self.dropped += 1
            self.dropped_total += 1
            return
        self.queue.append(msg)
        self._wake.set()

    async def next(self) -> dict[str, Any]:
        while True:
            if self.dropped:
                n, self.dropped = self.dropped, 0
                return {"type": "missed", "count": n}
            if self.queue:
                return self.queue.popleft()
            await self._wake.wait()
            self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()


class Hub:
    """Every live subscriber; the tailer, the health monitor and the alert rules offer to it."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.published = 0

    def add(self, flt: Filter) -> Subscriber:
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            raise SubscriptionError("too_many_subscribers", f"at most {MAX_SUBSCRIBERS} at once")
        sub = Subscriber(flt)
        self.subscribers.add(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    @property
    def dropped_total(self) -> int:
        return sum(s.dropped_total for s in self.subscribers)

    def on_entry(self, jid: str, e: dict[str, str]) -> None:
        if not self.subscribers:
            return
        msg = tap_message(jid, e)
        if msg is None:
            return
        self.published += 1
        for sub in self.subscribers:
            if sub.filter.matches_tap(e):
                sub.offer(msg)

    def on_health(self, msg: dict[str, Any]) -> None:
        for sub in self.subscribers:
            if sub.filter.matches_health(msg):
                sub.offer(msg)

    def on_alert(self, msg: dict[str, Any]) -> None:
        for sub in self.subscribers:
            if sub.filter.stream == "alerts":
                sub.offer(msg)
