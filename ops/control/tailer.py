"""One reader of the journal for the whole control room: it follows the merged shard streams
from a cursor (`Store.read_journal`, gap-free across shards), keeps the latest entries in a
bounded ring, and hands each entry, in journal order, to its listeners (today's figures, the
alert rules, the live subscriptions).

However many operators watch, Redis sees one reader polling every POLL_S (and, per reconnecting
subscriber, one catch-up read of what it missed).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

import anyio
import redis.exceptions as rexc

from actors.card_store import StoreUnavailable
from gateway.store.interface import JOURNAL_READ_MAX, parse_journal_id

log = logging.getLogger(__name__)

#: Seconds between two reads when the last one found nothing more.
POLL_S: Final = 0.2
#: Entries kept in memory for subscribers that reconnect.
RING_SIZE: Final = 20_000

Entry = tuple[str, dict[str, str]]
Listener = Callable[[str, dict[str, str]], None]


class JournalReader(Protocol):
    async def read_journal(
        self, *, count: int, after: str | None = None
    ) -> list[tuple[str, dict[str, str]]]: ...


def position(jid: str) -> tuple[int, int, int]:
    return parse_journal_id(jid)


class JournalTailer:
    def __init__(self, store: JournalReader, after: str | None = None) -> None:
        self._store = store
        #: the last entry read (None: nothing read yet, start at `after`)
        self.head: str | None = after
        self.ring: deque[Entry] = deque(maxlen=RING_SIZE)
        self._listeners: list[Listener] = []
        self.read_errors = 0
        self.caught_up = anyio.Event()

    def listen(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def unlisten(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    async def run(self) -> None:
        failing = False
        while True:
            try:
                entries = await self._store.read_journal(count=JOURNAL_READ_MAX, after=self.head)
            except (StoreUnavailable, rexc.RedisError, OSError) as exc:
                self.read_errors += 1
                if not failing:
                    log.warning("journal not readable: %s", exc)
                    failing = True
                await anyio.sleep(1.0)
                continue
            failing = False
            for jid, fields in entries:
                self.head = jid
                self.ring.append((jid, fields))
                for fn in list(self._listeners):
                    fn(jid, fields)
            if len(entries) < JOURNAL_READ_MAX:
                self.caught_up.set()
                await anyio.sleep(POLL_S)

    def since(self, after: str) -> list[Entry] | None:
        """Entries after the cursor `after` up to the head, from memory; None when the ring no
        longer reaches back to it."""
        if not self.ring:
            return [] if self.head is None or self.head == after else None
        cursor = position(after)
        if position(self.ring[0][0]) > cursor:
            # The oldest kept entry is after the cursor: complete only if it is the very next.
            return None
        return [e for e in self.ring if position(e[0]) > cursor]
