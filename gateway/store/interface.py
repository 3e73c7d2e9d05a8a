"""The `Store` boundary: what the actors need from persistence, and the value types that cross it.

Two implementations: `gateway.memory_store.MemoryStore` (in-process, for unit tests, asyncio and
trio) and `gateway.redis_store.RedisStore` (the real one, asyncio only). Both follow the semantics
written here; `tests/gateway/test_store.py` runs one behavioural suite against both.

Sharding is part of the persistent key layout: a card lives in shard `crc32(card) % NUM_SHARDS`.
NUM_SHARDS is fixed forever -- changing it moves every card's keys (state, tap records, journal)
to another shard, so it would need an offline migration.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from policies._slots import slot_setters

#: Shards of the card keyspace. Part of the on-disk layout: never change it.
NUM_SHARDS = 64
#: A retried tap finds its original answer for this long.
TAP_RECORD_TTL_S = 35 * 24 * 3600
#: Approximate cap of each shard's journal stream (XADD MAXLEN ~).
JOURNAL_MAXLEN_PER_SHARD = 1_000_000
#: Recent (tap_id, card, tap_hash) entries kept per terminal.
RECENT_TAPS_PER_TERMINAL = 4096
#: Most entries one `read_journal` call returns (callers page with `after`).
JOURNAL_READ_MAX = 10_000
#: Most caller fields in one journal entry.
MAX_JOURNAL_FIELDS = 64
#: Journal fields the store writes itself; `CardWrite.journal` may not use them.
RESERVED_JOURNAL_FIELDS = frozenset({"op", "card", "ver", "terminal", "tap"})

CommitStatus = Literal["ok", "duplicate", "conflict"]
TerminalStatus = Literal["active", "revoked"]


def shard_of(card: str) -> int:
    """The card's shard: `zlib.crc32(card.encode()) % NUM_SHARDS`."""
    return zlib.crc32(card.encode()) % NUM_SHARDS


@dataclass(frozen=True, slots=True)
class CardRecord:
    """A card's stored state (orjson bytes of the state dict) and its version (etag)."""

    card: str
    state: bytes
    version: int


@dataclass(frozen=True, slots=True, init=False)
class CardWrite:
    """One tap's outcome, written atomically with a compare-and-set on the card's version.

    `expected_version` is the version the decision was made on (0 for a card never stored).
    `new_state=None` leaves the state and version alone (a decline) but still records the tap
    and the journal entry. `tap_record` is what a retry of (terminal_id, tap_id) gets back;
    `journal` holds flat fields for the journal entry (the store adds op, card, ver, terminal and
    tap). `seq` and `tap_hash` feed the terminal's progress record.
    """

    card: str
    expected_version: int
    new_state: bytes | None
    terminal_id: str
    tap_id: str
    tap_record: bytes
    journal: Mapping[str, str | int]
    seq: int
    tap_hash: str

    # Built once per tap: stores through the slots (policies._slots), checks the journal.
    def __init__(
        self,
        card: str,
        expected_version: int,
        new_state: bytes | None,
        terminal_id: str,
        tap_id: str,
        tap_record: bytes,
        journal: Mapping[str, str | int],
        seq: int,
        tap_hash: str,
    ) -> None:
        if len(journal) > MAX_JOURNAL_FIELDS:
            raise ValueError(f"{len(journal)} journal fields, at most {MAX_JOURNAL_FIELDS}")
        if not RESERVED_JOURNAL_FIELDS.isdisjoint(journal):
            clash = sorted(RESERVED_JOURNAL_FIELDS.intersection(journal))
            raise ValueError(f"journal fields {clash} are reserved for the store")
        s = _CARD_WRITE
        s[0](self, card)
        s[1](self, expected_version)
        s[2](self, new_state)
        s[3](self, terminal_id)
        s[4](self, tap_id)
        s[5](self, tap_record)
        s[6](self, journal)
        s[7](self, seq)
        s[8](self, tap_hash)


_CARD_WRITE: Final = slot_setters(CardWrite)


@dataclass(frozen=True, slots=True, init=False)
class CommitResult:
    """`ok`: written, `version` is the card's version now (unchanged for a decline).
    `duplicate`: the tap was already recorded, nothing written, `tap_record` is the stored one,
    `version` the card's current version. `conflict`: the card's version is not the expected one,
    nothing written, `version` is the current one (0 if the card does not exist)."""

    status: CommitStatus
    version: int
    tap_record: bytes | None = None

    def __init__(
        self, status: CommitStatus, version: int, tap_record: bytes | None = None
    ) -> None:
        s = _COMMIT_RESULT
        s[0](self, status)
        s[1](self, version)
        s[2](self, tap_record)


_COMMIT_RESULT: Final = slot_setters(CommitResult)


@dataclass(frozen=True, slots=True)
class TerminalRecord:
    terminal_id: str
    public_key_hex: str
    kind: str
    operator: str
    network: str
    location: str
    status: TerminalStatus


@dataclass(frozen=True, slots=True)
class TerminalProgress:
    """Highest sequence number committed (0 if none) and recent taps, newest first.

    A tap is recorded when its commit reaches the store, whatever the outcome, so a retried tap
    may appear twice; a consecutive repeat is not pushed again."""

    last_seq: int
    recent: tuple[tuple[str, str, str], ...]  # (tap_id, card, tap_hash)


class StoreError(Exception):
    """The store refused one operation (e.g. a script error); other writes are unaffected."""


class StoreUnavailable(StoreError):
    """Redis is down or timed out: nothing was acknowledged. The write may or may not have been
    applied; retrying the same tap id is safe (the commit script deduplicates)."""


class StoreOverloaded(StoreUnavailable):
    """Too many writes are pending; this one was not queued (certainly not applied)."""


class Store(Protocol):
    async def load_card(self, card: str) -> CardRecord | None: ...

    async def put_card(self, card: str, state: bytes) -> None:
        """Issue / admin overwrite: set the state and bump the version; journaled with
        `op=put_card` (and the state)."""
        ...

    async def commit(self, write: CardWrite) -> CommitResult:
        """Returns only once the outcome is durable (acknowledged by Redis)."""
        ...

    async def get_terminal(self, terminal_id: str) -> TerminalRecord | None: ...

    async def put_terminal(self, rec: TerminalRecord) -> None: ...

    async def terminal_progress(self, terminal_id: str) -> TerminalProgress: ...

    async def read_journal(
        self, *, count: int, after: str | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` (<= JOURNAL_READ_MAX) entries across all shards in journal id order,
        strictly after the cursor `after` (an id previously returned; None = from the start).
        An empty list means nothing more for now."""
        ...

    def all_cards(self) -> AsyncIterator[CardRecord]:
        """Every stored card (SCAN-based; for auditors, not the hot path)."""
        ...


# --- journal ids -------------------------------------------------------------------------------
# Each shard has its own stream with ids "<ms>-<seq>". Across shards the order is
# (ms, seq, shard) and the id handed out is "<ms>-<seq>@<shard>", an opaque cursor for callers.


def check_journal_count(count: int) -> None:
    if count > JOURNAL_READ_MAX:
        raise ValueError(f"read_journal count {count} > JOURNAL_READ_MAX ({JOURNAL_READ_MAX})")


def journal_id(ms: int, seq: int, shard: int) -> str:
    return f"{ms}-{seq}@{shard:02d}"


def parse_journal_id(jid: str) -> tuple[int, int, int]:
    """(ms, seq, shard) of a journal id; ValueError if it is not one."""
    stream_id, sep, shard_s = jid.partition("@")
    ms_s, dash, seq_s = stream_id.partition("-")
    if not (sep and dash):
        raise ValueError(f"not a journal id: {jid!r}")
    ms, seq, shard = int(ms_s), int(seq_s), int(shard_s)
    if not 0 <= shard < NUM_SHARDS or ms < 0 or seq < 0:
        raise ValueError(f"not a journal id: {jid!r}")
    return ms, seq, shard
