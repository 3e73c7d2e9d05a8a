"""The gateway's `Store`: the card actor's port (`actors.card_store.CardStore`: load a card,
commit a tap) plus what the terminal sessions, provisioning and the auditors need (terminals,
their progress, the journal, every card), with the key layout's fixed numbers.

Two implementations: `gateway.store.memory_store.MemoryStore` (in-process, for unit tests,
asyncio and trio) and `gateway.store.redis_store.RedisStore` (the real one, asyncio only). Both
follow the semantics written here and in `actors.card_store`; `tests/gateway/store/test_store.py`
runs one behavioural suite against both.

Sharding is part of the persistent key layout: a card lives in shard `crc32(card) % NUM_SHARDS`.
NUM_SHARDS is fixed forever -- changing it moves every card's keys (state, tap records, journal)
to another shard, so it would need an offline migration.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from actors.card_store import CardRecord, CardStore

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

TerminalStatus = Literal["active", "revoked"]


def shard_of(card: str) -> int:
    """The card's shard: `zlib.crc32(card.encode()) % NUM_SHARDS`."""
    return zlib.crc32(card.encode()) % NUM_SHARDS


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


class Store(CardStore, Protocol):
    async def put_card(self, card: str, state: bytes) -> None:
        """Issue / admin overwrite: set the state and bump the version; journaled with
        `op=put_card` (and the state)."""
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
