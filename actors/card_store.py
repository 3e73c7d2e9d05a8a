"""The card store port: what the card actor needs from persistence, and the value types that
cross it. The actor loads a card and commits one tap's outcome; `gateway.store` implements this
with Redis and in memory, as part of the gateway's wider `Store` (terminals, journal reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from policies._slots import slot_setters

#: Most caller fields in one journal entry.
MAX_JOURNAL_FIELDS = 64
#: Journal fields the store writes itself; `CardWrite.journal` may not use them.
RESERVED_JOURNAL_FIELDS = frozenset({"op", "card", "ver", "terminal", "tap"})

CommitStatus = Literal["ok", "duplicate", "conflict"]


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

    def __init__(self, status: CommitStatus, version: int, tap_record: bytes | None = None) -> None:
        s = _COMMIT_RESULT
        s[0](self, status)
        s[1](self, version)
        s[2](self, tap_record)


_COMMIT_RESULT: Final = slot_setters(CommitResult)


class StoreError(Exception):
    """The store refused one operation (e.g. a script error); other writes are unaffected."""


class StoreUnavailable(StoreError):
    """Redis is down or timed out: nothing was acknowledged. The write may or may not have been
    applied; retrying the same tap id is safe (the commit script deduplicates)."""


class StoreOverloaded(StoreUnavailable):
    """Too many writes are pending; this one was not queued (certainly not applied)."""


class CardStore(Protocol):
    """What a card actor does with its card's stored state."""

    async def load_card(self, card: str) -> CardRecord | None: ...

    async def commit(self, write: CardWrite) -> CommitResult:
        """Atomically: if the tap `(terminal_id, tap_id)` is recorded, return it (`duplicate`);
        else compare-and-set the card's version, write the new state, the tap record and the
        journal entry (`ok`), or change nothing (`conflict`). Returns only once the outcome is
        durable."""
        ...
