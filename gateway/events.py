"""Live fan-out of decided taps to in-process subscribers (control room, metrics, tests).

Publishing never blocks and never fails the tap path: each subscriber has a bounded queue, and
when it is full the newest entry is dropped and counted for that subscriber. Redis' journal
stream, not this bus, is the record of what happened.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import anyio

#: Entries a slow subscriber may fall behind before entries are dropped for it.
SUBSCRIBER_QUEUE = 10_000
#: Subscribers at most; more are refused so a leak cannot grow without bound.
MAX_SUBSCRIBERS = 256


@dataclass(eq=False)
class Subscription:
    queue: deque[dict[str, str | int]] = field(default_factory=deque)
    dropped: int = 0
    wakeup: anyio.Event = field(default_factory=anyio.Event)

    async def get(self) -> dict[str, str | int]:
        while not self.queue:
            await self.wakeup.wait()
            self.wakeup = anyio.Event()
        return self.queue.popleft()


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def dropped(self) -> int:
        """Entries dropped for the current subscribers."""
        return sum(sub.dropped for sub in self._subs)

    def subscribe(self) -> Subscription:
        if len(self._subs) >= MAX_SUBSCRIBERS:
            raise RuntimeError(f"at most {MAX_SUBSCRIBERS} subscribers")
        sub = Subscription()
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, journal: dict[str, str | int], card: str, terminal: str, tap: str) -> None:
        """Queue the journal entry of a decided tap, with its card, terminal and tap id, for
        every subscriber."""
        self.published += 1
        if not self._subs:
            return
        entry = {**journal, "card": card, "terminal": terminal, "tap": tap}
        for sub in self._subs:
            if len(sub.queue) >= SUBSCRIBER_QUEUE:
                sub.dropped += 1
                continue
            sub.queue.append(entry)
            sub.wakeup.set()
