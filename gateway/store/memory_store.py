"""`MemoryStore`: the `Store` semantics in process memory, no I/O, for unit tests of the actors.

Works under asyncio and trio (every method is a checkpoint). Tap records expire after
`tap_ttl_s` on the injected `clock`. Two switches simulate Redis trouble: `unavailable` makes every
call raise `StoreUnavailable` before doing anything; `drop_acks` makes `commit` apply the write
and then raise `StoreUnavailable` (the reply was lost), the case a retried tap must survive.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import anyio.lowlevel

from actors.card_store import CardRecord, CardWrite, CommitResult, StoreUnavailable
from gateway.store.interface import (
    JOURNAL_MAXLEN_PER_SHARD,
    NUM_SHARDS,
    RECENT_TAPS_PER_TERMINAL,
    TAP_RECORD_TTL_S,
    TerminalProgress,
    TerminalRecord,
    check_journal_count,
    journal_id,
    parse_journal_id,
    shard_of,
)

_Entry = tuple[tuple[int, int, int], dict[str, str]]  # ((ms, seq, shard), fields)


@dataclass
class _Progress:
    last_seq: int = 0
    recent: deque[tuple[str, str, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_TAPS_PER_TERMINAL)
    )


class MemoryStore:
    """In-memory `Store`. Journal ids use a counter in place of milliseconds."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        tap_ttl_s: float = TAP_RECORD_TTL_S,
        journal_maxlen_per_shard: int = JOURNAL_MAXLEN_PER_SHARD,
    ) -> None:
        self._clock = clock
        self._tap_ttl_s = tap_ttl_s
        self._cards: dict[str, tuple[bytes, int]] = {}
        self._taps: dict[tuple[int, str, str], tuple[bytes, float]] = {}  # -> (record, expiry)
        self._journal: list[deque[_Entry]] = [
            deque(maxlen=journal_maxlen_per_shard) for _ in range(NUM_SHARDS)
        ]
        self._journal_counter = 0
        self._terminals: dict[str, TerminalRecord] = {}
        self._progress: dict[str, _Progress] = {}
        self.unavailable = False
        self.drop_acks = False
        self.commits = 0  # commit() calls that reached the store

    async def _enter(self) -> None:
        await anyio.lowlevel.checkpoint()
        if self.unavailable:
            raise StoreUnavailable("memory store switched to unavailable")

    def _append_journal(self, shard: int, fields: dict[str, str]) -> None:
        self._journal_counter += 1
        self._journal[shard].append(((self._journal_counter, 0, shard), fields))

    async def load_card(self, card: str) -> CardRecord | None:
        await self._enter()
        found = self._cards.get(card)
        return None if found is None else CardRecord(card, found[0], found[1])

    async def put_card(self, card: str, state: bytes) -> None:
        await self._enter()
        ver = self._cards.get(card, (b"", 0))[1] + 1
        self._cards[card] = (state, ver)
        self._append_journal(
            shard_of(card),
            {"op": "put_card", "card": card, "ver": str(ver), "state": state.decode()},
        )

    async def commit(self, write: CardWrite) -> CommitResult:
        await self._enter()
        self.commits += 1
        result = self._apply(write)
        if self.drop_acks:
            raise StoreUnavailable("memory store dropped the acknowledgement")
        return result

    def _apply(self, w: CardWrite) -> CommitResult:
        shard = shard_of(w.card)
        self._record_progress(w)
        current = self._cards.get(w.card)
        ver = 0 if current is None else current[1]
        tap_key = (shard, w.terminal_id, w.tap_id)
        found = self._taps.get(tap_key)
        if found is not None:
            if found[1] > self._clock():
                return CommitResult("duplicate", ver, found[0])
            del self._taps[tap_key]
        if ver != w.expected_version:
            return CommitResult("conflict", ver)
        if w.new_state is not None:
            ver += 1
            self._cards[w.card] = (w.new_state, ver)
        self._taps[tap_key] = (w.tap_record, self._clock() + self._tap_ttl_s)
        fields = {
            "op": "commit",
            "card": w.card,
            "ver": str(ver),
            "terminal": w.terminal_id,
            "tap": w.tap_id,
        }
        fields.update((k, str(v)) for k, v in w.journal.items())
        self._append_journal(shard, fields)
        return CommitResult("ok", ver)

    def _record_progress(self, w: CardWrite) -> None:
        # Like RedisStore, which runs the progress script beside the commit script whatever the
        # outcome: the terminal did submit this tap.
        prog = self._progress.setdefault(w.terminal_id, _Progress())
        prog.last_seq = max(prog.last_seq, w.seq)
        entry = (w.tap_id, w.card, w.tap_hash)
        if not prog.recent or prog.recent[0] != entry:
            prog.recent.appendleft(entry)

    async def get_terminal(self, terminal_id: str) -> TerminalRecord | None:
        await self._enter()
        return self._terminals.get(terminal_id)

    async def put_terminal(self, rec: TerminalRecord) -> None:
        await self._enter()
        self._terminals[rec.terminal_id] = rec

    async def terminal_progress(self, terminal_id: str) -> TerminalProgress:
        await self._enter()
        prog = self._progress.get(terminal_id)
        if prog is None:
            return TerminalProgress(0, ())
        return TerminalProgress(prog.last_seq, tuple(prog.recent))

    async def read_journal(
        self, *, count: int, after: str | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        await self._enter()
        check_journal_count(count)
        if count <= 0:
            return []
        cursor = (-1, -1, -1) if after is None else parse_journal_id(after)
        out: list[tuple[str, dict[str, str]]] = []
        merged: Iterator[_Entry] = heapq.merge(*self._journal, key=lambda e: e[0])
        for (ms, seq, shard), fields in merged:
            if (ms, seq, shard) <= cursor:
                continue
            out.append((journal_id(ms, seq, shard), dict(fields)))
            if len(out) >= count:
                break
        return out

    async def all_cards(self) -> AsyncIterator[CardRecord]:
        await self._enter()
        for card, (state, ver) in list(self._cards.items()):
            yield CardRecord(card, state, ver)
