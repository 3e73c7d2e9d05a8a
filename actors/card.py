"""The card actor: one per active card. It owns the card's in-memory state and does, per tap,
exactly this: check the tap id, decide (pure core), sign, make durable, reply, publish.

Redis holds the truth. The actor keeps the state and version it last wrote; a version conflict
(another gateway process wrote the card) reloads and decides again, a bounded number of times.
The signed authorisation frame is built before the write and stored with the tap record, so a
retried tap id is answered byte for byte with the original, even after a key rotation; it is sent
to the terminal only once the write is acknowledged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import orjson

from actors.card_auth import verify_tap_cryptogram
from actors.card_store import CardStore, CardWrite
from policies import CardState, Command, Decision, Outcome, Tariff, decide
from policies._slots import slot_setters
from policies.card_auth import CardProof, decide_authenticated

#: How often a compare-and-set conflict is retried before the tap is refused as `busy`.
MAX_CAS_RETRIES = 3
#: Tap records the actor keeps in memory for fast answers to retries (older ones are in Redis).
MAX_CACHED_TAPS = 64


@dataclass(frozen=True, slots=True, init=False)
class TapRequest:
    """A validated tap, already turned into a pure-core command by the terminal session."""

    terminal_id: str
    operator: str
    seq: int
    tap_id: str
    card: str
    tap_hash: str
    command: Command
    now_ms: int
    #: the terminal's registered kind (gate, bus, retail, ...), for the journal
    kind: str
    #: the tap's card cryptogram (counter, signature hex), if it carried one
    card_proof: tuple[int, str] | None
    #: for a tap decided offline by the terminal: (what it decided, the amount it assumed,
    #: when the gateway received it); `now_ms` is then the tap's own time
    offline: tuple[str, int, int] | None

    # Built once per tap: stores through the slots (policies._slots) rather than the frozen
    # dataclass __init__'s per-field object.__setattr__.
    def __init__(
        self,
        terminal_id: str,
        operator: str,
        seq: int,
        tap_id: str,
        card: str,
        tap_hash: str,
        command: Command,
        now_ms: int,
        kind: str = "",
        card_proof: tuple[int, str] | None = None,
        offline: tuple[str, int, int] | None = None,
    ) -> None:
        s = _TAP_REQUEST
        s[0](self, terminal_id)
        s[1](self, operator)
        s[2](self, seq)
        s[3](self, tap_id)
        s[4](self, card)
        s[5](self, tap_hash)
        s[6](self, command)
        s[7](self, now_ms)
        s[8](self, kind)
        s[9](self, card_proof)
        s[10](self, offline)


_TAP_REQUEST: Final = slot_setters(TapRequest)


@dataclass(frozen=True, slots=True, init=False)
class TapReply:
    """What goes back to the terminal. `frame` is the signed auth message, ready to send."""

    frame: bytes
    duplicate: bool
    decision: Decision | None
    #: set when the tap id was seen before with different content: the terminal gets an error
    reused: bool = False

    def __init__(
        self, frame: bytes, duplicate: bool, decision: Decision | None, reused: bool = False
    ) -> None:
        s = _TAP_REPLY
        s[0](self, frame)
        s[1](self, duplicate)
        s[2](self, decision)
        s[3](self, reused)


_TAP_REPLY: Final = slot_setters(TapReply)


class SignAuth(Protocol):
    """Builds the complete signed auth frame for a decision (gateway.keys.authority)."""

    async def __call__(self, req: TapRequest, decision: Decision, gateway_time: int) -> bytes: ...


class SigningUnavailable(Exception):
    """The signing key could not sign now (its key holder is restarting); nothing was written,
    and the terminal retries the same tap id."""


class EventSink(Protocol):
    """Where decided events go for live subscribers; must never block the tap path. The entry
    is the journal fields plus card, terminal and tap id (merged only if someone listens)."""

    def publish(
        self, journal: dict[str, str | int], card: str, terminal: str, tap: str
    ) -> None: ...


class ConflictError(Exception):
    """The card kept changing under us (another writer); the terminal retries later."""


@dataclass(slots=True)
class CardDeps:
    store: CardStore
    tariff: Callable[[], Tariff]
    sign: SignAuth
    events: EventSink | None = None


def encode_tap_record(tap_hash: str, frame: bytes) -> bytes:
    return tap_hash.encode("ascii") + b" " + frame


def decode_tap_record(record: bytes) -> tuple[str, bytes]:
    tap_hash, _, frame = record.partition(b" ")
    return tap_hash.decode("ascii"), frame


def journal_entry(req: TapRequest, outcome: Outcome) -> dict[str, str | int]:
    """The journal fields of a decided tap (the store adds card, terminal, tap id, version):
    when, who is owed, the decision, the terminal's kind, and the stop and route of a transit
    tap."""
    d = outcome.decision
    entry: dict[str, str | int] = {
        "time": req.now_ms,
        "operator": req.operator,
        "seq": req.seq,
        "result": "approved" if d.approved else "declined",
        "reason": d.reason,
        "amount": d.amount,
        "balance": d.balance,
        "product": d.product,
        "tariff": d.tariff_version,
    }
    if req.kind:
        entry["kind"] = req.kind
    # Where a transit tap happened, for ridership per line and stop and the fare exports.
    stop = getattr(req.command, "stop", None)
    if stop:
        entry["stop"] = stop
    route = getattr(req.command, "route", None)
    if route:
        entry["route"] = route
    if req.offline is not None:
        # Decided offline by the terminal first: what it let through that the card could not
        # pay is the first-ride risk (`citycard report offline`).
        offline_result, offline_amount, received_ms = req.offline
        # Journaled (and cleared) when it reached the gateway; decided as of when it happened.
        entry["time"] = received_ms
        entry["tap_time"] = req.now_ms
        entry["offline"] = offline_result
        entry["offline_amount"] = offline_amount
        if offline_result == "approved" and not d.approved and offline_amount > 0:
            entry["uncollected"] = offline_amount
    if outcome.events:
        entry["events"] = orjson.dumps([e.to_dict() for e in outcome.events]).decode()
    return entry


class CardActor:
    """State of one card between activation and passivation."""

    __slots__ = ("_cache", "_deps", "card", "state", "version")

    def __init__(self, card: str, deps: CardDeps) -> None:
        self.card = card
        self._deps = deps
        self.state: CardState | None = None
        self.version = 0
        # Created on the first tap: most resident cards sit idle, and every object per idle card
        # is one more for the garbage collector to walk.
        self._cache: OrderedDict[tuple[str, str], bytes] | None = None

    async def on_activate(self) -> None:
        await self._load()

    async def on_passivate(self) -> None:
        # Every change was made durable before it was acknowledged: nothing to flush.
        return None

    async def _load(self) -> None:
        rec = await self._deps.store.load_card(self.card)
        if rec is None:
            self.state, self.version = None, 0
        else:
            self.state = CardState.from_dict(orjson.loads(rec.state))
            self.version = rec.version

    def _remember(self, key: tuple[str, str], record: bytes) -> None:
        if self._cache is None:
            self._cache = OrderedDict()
        self._cache[key] = record
        if len(self._cache) > MAX_CACHED_TAPS:
            self._cache.popitem(last=False)

    def _replay(self, req: TapRequest, record: bytes) -> TapReply:
        stored_hash, frame = decode_tap_record(record)
        if stored_hash != req.tap_hash:
            return TapReply(frame=b"", duplicate=True, decision=None, reused=True)
        return TapReply(frame=frame, duplicate=True, decision=None)

    def _decide(self, req: TapRequest) -> Outcome:
        state = self.state
        if state is None or (state.card_key is None and req.card_proof is None):
            return decide(state, req.command, req.now_ms, self._deps.tariff())
        proof = None
        if req.card_proof is not None:
            counter, sig = req.card_proof
            verified = state.card_key is not None and verify_tap_cryptogram(
                state.card_key, self.card, req.terminal_id, req.tap_id, counter, sig
            )
            proof = CardProof(counter, verified)
        return decide_authenticated(state, req.command, req.now_ms, self._deps.tariff(), proof)

    async def handle(self, req: TapRequest) -> TapReply:
        key = (req.terminal_id, req.tap_id)
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is not None:
            return self._replay(req, cached)
        for _ in range(MAX_CAS_RETRIES):
            outcome = self._decide(req)
            # An offline tap is decided as of its own time, but signed with the time the
            # gateway decided it (answers stay in the order they were given).
            signed_at = req.now_ms if req.offline is None else req.offline[2]
            frame = await self._deps.sign(req, outcome.decision, signed_at)
            if self.state is None and req.offline is None:
                # Unknown card: nothing to write, and writing would let random tokens fill Redis.
                # (An offline tap is journaled even so: a terminal let a rider through on it,
                # and its queue is bounded by the offline policy.)
                return TapReply(frame=frame, duplicate=False, decision=outcome.decision)
            record = encode_tap_record(req.tap_hash, frame)
            changed = outcome.state is not self.state
            entry = journal_entry(req, outcome)
            result = await self._deps.store.commit(
                CardWrite(
                    card=self.card,
                    expected_version=self.version,
                    new_state=(
                        orjson.dumps(outcome.state.to_dict())
                        if changed and outcome.state is not None
                        else None
                    ),
                    terminal_id=req.terminal_id,
                    tap_id=req.tap_id,
                    tap_record=record,
                    journal=entry,
                    seq=req.seq,
                    tap_hash=req.tap_hash,
                )
            )
            if result.status == "ok":
                self.state = outcome.state
                self.version = result.version
                self._remember(key, record)
                if self._deps.events is not None:
                    self._deps.events.publish(entry, self.card, req.terminal_id, req.tap_id)
                return TapReply(frame=frame, duplicate=False, decision=outcome.decision)
            if result.status == "duplicate":
                assert result.tap_record is not None
                self._remember(key, result.tap_record)
                return self._replay(req, result.tap_record)
            # conflict: another writer moved the card on; take its state and decide again.
            await self._load()
        raise ConflictError(f"card {self.card}: {MAX_CAS_RETRIES} version conflicts in a row")
