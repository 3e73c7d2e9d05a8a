"""A terminal's own copy of the gateway's deny list, kept from signed `deny_list` frames
(protocol section "Deny list"): the whole list in parts after connecting, then deltas as
operators block and unblock cards. Every frame's signature is checked before it is used; a
delta that does not start from the version held is ignored (the next connection brings the
whole list again)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from nacl.signing import VerifyKey

from gateway.keys.signing import verify_deny
from gateway.wire import protocol as wire

#: Parts of one snapshot a terminal collects at most (a bigger list is refused).
MAX_SNAPSHOT_PARTS: Final = 10_000


class DenyHolder:
    def __init__(self) -> None:
        self.version = 0
        self.cards: set[str] = set()
        self.bad_signatures = 0
        self.stale = 0
        # list_version -> {part: cards} of a snapshot being collected
        self._parts: dict[int, dict[int, tuple[str, ...]]] = {}

    def __contains__(self, card: str) -> bool:
        return card in self.cards

    def receive(self, msg: Mapping[str, Any], keys: Mapping[str, VerifyKey]) -> bool:
        """Apply one decoded `deny_list` message; True if the list moved to a new version."""
        fields = wire.deny_fields_from_message(msg)
        if not verify_deny(keys, fields, msg["sig"]):
            self.bad_signatures += 1
            return False
        if fields.base_version == 0:
            return self._snapshot_part(fields)
        if fields.base_version != self.version or fields.parts != 1:
            self.stale += 1
            return False
        self.cards.update(fields.add)
        self.cards.difference_update(fields.remove)
        self.version = fields.list_version
        return True

    def _snapshot_part(self, f: wire.DenyFields) -> bool:
        if not 1 <= f.part <= f.parts <= MAX_SNAPSHOT_PARTS:
            self.stale += 1
            return False
        parts = self._parts.setdefault(f.list_version, {})
        parts[f.part] = f.add
        if len(parts) < f.parts:
            return False
        self.cards = {c for part in parts.values() for c in part}
        self.version = f.list_version
        self._parts = {v: p for v, p in self._parts.items() if v > f.list_version}
        return True
