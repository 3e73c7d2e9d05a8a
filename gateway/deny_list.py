"""The deny list as one gateway process holds it: the listed cards at a version, the recent
changes, and the signed `deny_list` frames that bring a terminal up to date.

Redis (`gateway.store.deny_store`) is the truth; this copy follows it through the control
channel and a periodic version check (`gateway.control`). What a terminal is sent depends on
the version it holds: nothing when current, one delta frame when the changes since fit in one,
else the whole list in parts. Frames are signed once per (base, version) and cached.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol

from gateway.store.deny_store import DENY_LOG_KEEP, DenyOp
from gateway.wire import protocol as wire

#: (base version, version) pairs whose signed frames are kept.
FRAME_CACHE: Final = 64


class DenySigner(Protocol):
    def deny_frames(
        self,
        list_version: int,
        base_version: int,
        add: list[str],
        remove: list[str],
        gateway_time: int,
    ) -> Awaitable[list[bytes]]: ...


class DenyList:
    def __init__(self, signer: DenySigner, now_ms: Callable[[], int]) -> None:
        self._signer = signer
        self._now_ms = now_ms
        self.version = 0
        self.cards: dict[str, int] = {}
        self._log: deque[tuple[int, DenyOp, str]] = deque(maxlen=DENY_LOG_KEEP)
        self._frames: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()

    def __contains__(self, card: str) -> bool:
        return card in self.cards

    def load(
        self, version: int, cards: dict[str, int], log: Iterable[tuple[int, DenyOp, str]]
    ) -> None:
        """Replace the whole copy (at start, or after a gap)."""
        self.version = version
        self.cards = dict(cards)
        self._log.clear()
        self._log.extend(c for c in log if c[0] <= version)
        self._frames.clear()

    def apply(self, version: int, op: DenyOp, card: str) -> bool:
        """Apply the change that made `version`; False (nothing applied) unless it is the very
        next one — the caller then reloads from Redis."""
        if version <= self.version:
            return True  # already have it (a reload overtook the message)
        if version != self.version + 1:
            return False
        if op == "add":
            self.cards[card] = version
        else:
            self.cards.pop(card, None)
        self.version = version
        self._log.append((version, op, card))
        return True

    def changes_since(self, base: int) -> tuple[list[str], list[str]] | None:
        """Net (added, removed) from `base` to now, or None when the log does not reach back
        that far (or `base` is ahead of this copy)."""
        if base > self.version:
            return None
        if base == self.version:
            return [], []
        if not self._log or self._log[0][0] > base + 1:
            return None
        net: dict[str, DenyOp] = {}
        for ver, op, card in self._log:
            if ver > base:
                # An add then a remove (or the reverse) since base cancels out only if the card
                # was (not) listed at base; the final op decides, checked against the list.
                net[card] = op
        added = sorted(c for c, op in net.items() if op == "add" and c in self.cards)
        removed = sorted(c for c, op in net.items() if op == "remove" and c not in self.cards)
        return added, removed

    async def frames_for(self, base: int) -> list[bytes]:
        """Signed frames taking a terminal that holds version `base` to the current version
        (empty when it is current)."""
        version = self.version
        if base == version:
            return []
        delta = self.changes_since(base) if base > 0 else None
        if (
            delta is not None
            and len(delta[0]) <= wire.DENY_PART_MAX_CARDS
            and len(delta[1]) <= wire.DENY_PART_MAX_CARDS
        ):
            key = (base, version)
            add, remove = delta
        else:
            key = (0, version)
            add, remove = sorted(self.cards), []
        cached = self._frames.get(key)
        if cached is not None:
            self._frames.move_to_end(key)
            return cached
        frames = await self._signer.deny_frames(version, key[0], add, remove, self._now_ms())
        if self.version == version:  # not overtaken while signing
            self._frames[key] = frames
            if len(self._frames) > FRAME_CACHE:
                self._frames.popitem(last=False)
        return frames
