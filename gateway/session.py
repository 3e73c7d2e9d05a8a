"""The terminal session: one per connection. It owns the connection's protocol state — who the
terminal proved to be, its last sequence number, the tap ids it used recently — and handles the
terminal's messages one at a time, in the order they arrived.

It checks order and limits, turns a tap into a pure-core command using the terminal's registered
kind, operator and network, and asks the card actor for the decision. It never touches a balance.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from actors.card import SigningUnavailable, TapReply, TapRequest
from actors.card_store import StoreUnavailable
from actors.runtime import ActorRegistry, ActorUnavailable, MailboxFull, Overloaded
from gateway.deny_list import DenyList
from gateway.metrics import TapMetrics
from gateway.offline import OfflinePolicy
from gateway.store.interface import TerminalProgress, TerminalRecord
from gateway.tap_commands import command_for
from gateway.wire import protocol as wire

log = logging.getLogger(__name__)

#: Tap ids remembered per terminal to refuse one reused for different content (matches the store's
#: persisted list, so the window survives a reconnect).
RECENT_TAP_IDS = 4096
#: How long one tap may take end to end before the terminal is told `busy` and should retry.
TAP_TIMEOUT_S = 5.0


class Phase(enum.Enum):
    AWAIT_HELLO = "await_hello"
    AWAIT_PROOF = "await_proof"
    READY = "ready"
    CLOSED = "closed"


class SessionStore(Protocol):
    async def get_terminal(self, terminal_id: str) -> TerminalRecord | None: ...
    async def terminal_progress(self, terminal_id: str) -> TerminalProgress: ...


class ConnectionTable(Protocol):
    """Which terminal ids hold a live connection in this process."""

    #: frames refused by the per-connection frame budget (for /metrics)
    frames_refused: int

    def claim(self, terminal_id: str, session: TerminalSession) -> bool: ...
    def release(self, terminal_id: str, session: TerminalSession) -> None: ...


class Authorizer(Protocol):
    """The gateway's key: proves identity to terminals and signs decisions."""

    @property
    def key_id(self) -> str: ...

    def verify_proof(
        self, public_key_hex: str, terminal_id: str, challenge_hex: str, sig_hex: str
    ) -> bool: ...

    def verify_offline_tap(self, public_key_hex: str, message: bytes, sig_hex: str) -> bool: ...


@dataclass(slots=True)
class SessionDeps:
    store: SessionStore
    cards: ActorRegistry[str, TapRequest, TapReply]
    auth: Authorizer
    connections: ConnectionTable
    now_ms: Callable[[], int]
    new_challenge: Callable[[], bytes]
    heartbeat_s: int = 15
    #: the deny list sent to terminals after `welcome` (None: no deny list frames)
    deny: DenyList | None = None
    offline: OfflinePolicy | None = None
    metrics: TapMetrics | None = None
    #: Frames one connection may send per second on average, and in a burst; more are
    #: answered `busy` unread (one terminal cannot take the gateway from the others).
    max_frames_per_s: float = 200.0
    frame_burst: float = 400.0


class TerminalSession:
    """Protocol state of one connection. `on_frame` returns False when the connection must close."""

    def __init__(self, deps: SessionDeps, send: Callable[[bytes], Awaitable[None]]) -> None:
        self._deps = deps
        self._send = send
        self.phase = Phase.AWAIT_HELLO
        self.terminal: TerminalRecord | None = None
        self._claimed_id: str | None = None
        self._challenge_hex = ""
        self.last_seq = 0
        self.connected_ms = self.last_activity_ms = deps.now_ms()
        self._recent: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._wants_offline = False
        self._tokens = deps.frame_burst
        self._tokens_at = time.monotonic()
        self.stats = {"taps": 0, "errors": 0, "rate_limited": 0}
        #: deny list version the terminal holds (said in `hello`, then what it was sent)
        self.deny_version = 0
        # (result, reason) of the tap being answered, for the metrics
        self._outcome = ("error", "")

    async def _error(
        self,
        code: str,
        message: str,
        *,
        fatal: bool = False,
        seq: int | None = None,
        tap_id: str | None = None,
    ) -> bool:
        self.stats["errors"] += 1
        self._outcome = ("error", code)
        fatal = fatal or wire.is_fatal(code, authenticated=self.phase is Phase.READY)
        await self._send(wire.encode_error(code, message, fatal=fatal, seq=seq, tap_id=tap_id))
        if fatal:
            self.phase = Phase.CLOSED
        return not fatal

    async def on_frame(self, data: str | bytes) -> bool:
        """Handle one text frame (`str`); `bytes` means a binary frame, which the protocol has
        no use for."""
        self.last_activity_ms = self._deps.now_ms()
        deps = self._deps
        now = time.monotonic()
        refill = (now - self._tokens_at) * deps.max_frames_per_s
        tokens = min(deps.frame_burst, self._tokens + refill)
        self._tokens_at = now
        if tokens < 1.0:
            self._tokens = tokens
            self.stats["rate_limited"] += 1
            deps.connections.frames_refused += 1
            return await self._error(
                "busy", f"more than {deps.max_frames_per_s:g} frames/s: slow down (nothing read)"
            )
        self._tokens = tokens - 1.0
        if isinstance(data, bytes):
            return await self._error("malformed", "binary frames are not part of the protocol")
        try:
            msg = wire.decode_terminal_message(data)
        except wire.ProtocolError as exc:
            return await self._error(exc.code, exc.message, seq=exc.seq, tap_id=exc.tap_id)
        if isinstance(msg, wire.Tap):
            return await self._on_tap(msg)
        if isinstance(msg, wire.Heartbeat):
            if self.phase is not Phase.READY:
                return await self._error("not_authenticated", "heartbeat before authentication")
            await self._send(wire.encode_heartbeat_ack(msg.t, self._deps.now_ms()))
            deny = self._deps.deny
            if deny is not None and self.deny_version != deny.version:
                # A push found this connection not writable: catch up now.
                await self._send_deny(deny)
            return True
        try:
            if isinstance(msg, wire.Hello):
                return await self._on_hello(msg)
            return await self._on_proof(msg)
        except StoreUnavailable:
            # Before authentication every error closes the connection; the terminal reconnects.
            return await self._error("unavailable", "storage unavailable; reconnect and retry")

    async def _on_hello(self, msg: wire.Hello) -> bool:
        if self.phase is not Phase.AWAIT_HELLO:
            return await self._error(
                "unexpected_message", f"hello not expected in {self.phase.value}"
            )
        rec = await self._deps.store.get_terminal(msg.terminal_id)
        if rec is None:
            return await self._error(
                "unknown_terminal", f"terminal {msg.terminal_id} is not registered", fatal=True
            )
        if rec.status != "active":
            return await self._error(
                "terminal_revoked", f"terminal {msg.terminal_id} is revoked", fatal=True
            )
        self.terminal = rec
        self.deny_version = msg.deny_version
        self._wants_offline = msg.offline
        self._challenge_hex = self._deps.new_challenge().hex()
        self.phase = Phase.AWAIT_PROOF
        await self._send(
            wire.encode_challenge(self._challenge_hex, self._deps.auth.key_id, self._deps.now_ms())
        )
        return True

    async def _on_proof(self, msg: wire.Proof) -> bool:
        if self.phase is not Phase.AWAIT_PROOF or self.terminal is None:
            return await self._error(
                "unexpected_message", f"proof not expected in {self.phase.value}"
            )
        term = self.terminal
        if msg.terminal_id != term.terminal_id or msg.challenge != self._challenge_hex:
            return await self._error(
                "bad_proof", "proof is not for the challenge of this connection", fatal=True
            )
        if not self._deps.auth.verify_proof(
            term.public_key_hex, term.terminal_id, self._challenge_hex, msg.sig
        ):
            return await self._error("bad_proof", "signature does not verify", fatal=True)
        # A challenge answers once: a second proof on this connection is unexpected.
        self._challenge_hex = ""
        if not self._deps.connections.claim(term.terminal_id, self):
            return await self._error(
                "already_connected",
                f"terminal {term.terminal_id} is connected elsewhere",
                fatal=True,
            )
        self._claimed_id = term.terminal_id
        progress = await self._deps.store.terminal_progress(term.terminal_id)
        self.last_seq = progress.last_seq
        for tap_id, card, tap_hash in reversed(progress.recent):
            self._note_tap(tap_id, card, tap_hash)
        self.phase = Phase.READY
        await self._send(
            wire.encode_welcome(
                term.terminal_id, self.last_seq, self._deps.auth.key_id, self._deps.heartbeat_s
            )
        )
        if self._deps.deny is not None:
            await self._send_deny(self._deps.deny)
        if self._wants_offline and self._deps.offline is not None:
            # Signing unavailable: the terminal keeps the policy it holds; the next connection
            # sends a fresh one.
            with contextlib.suppress(SigningUnavailable):
                await self._send(await self._deps.offline.frame())
        return True

    async def _send_deny(self, deny: DenyList) -> None:
        """Send what brings the terminal's deny list to the current version."""
        version = deny.version
        for frame in await deny.frames_for(self.deny_version):
            await self._send(frame)
        self.deny_version = version

    def _note_tap(self, tap_id: str, card: str, tap_hash: str) -> None:
        self._recent[tap_id] = (card, tap_hash)
        self._recent.move_to_end(tap_id)
        if len(self._recent) > RECENT_TAP_IDS:
            self._recent.popitem(last=False)

    async def _on_tap(self, tap: wire.Tap) -> bool:
        metrics = self._deps.metrics
        if metrics is None:
            return await self._tap(tap)
        started = time.perf_counter()
        go_on = await self._tap(tap)
        result, reason = self._outcome
        kind = self.terminal.kind if self.terminal is not None else ""
        metrics.observe(kind, result, reason, time.perf_counter() - started)
        return go_on

    async def _tap(self, tap: wire.Tap) -> bool:
        if self.phase is not Phase.READY or self.terminal is None:
            return await self._error(
                "not_authenticated", "tap before authentication", seq=tap.seq, tap_id=tap.tap_id
            )
        tap_hash = wire.tap_content_hash(tap)
        seen = self._recent.get(tap.tap_id)
        if seen is not None and seen != (tap.card, tap_hash):
            return await self._error(
                "tap_id_reused",
                "tap id already used for a different tap",
                seq=tap.seq,
                tap_id=tap.tap_id,
            )
        received = self.last_activity_ms  # read as the frame arrived: one clock read per tap
        if seen is None and not wire.terminal_time_plausible(tap.terminal_time, received):
            # Before the tap id is noted: the corrected tap may reuse it.
            return await self._error(
                wire.IMPLAUSIBLE_TIME,
                f"terminal_time {tap.terminal_time} is outside the plausibility window",
                seq=tap.seq,
                tap_id=tap.tap_id,
            )
        offline = wire.offline_of(tap) if tap.fields else None
        if offline is not None and seen is None:
            result, amount, sig = offline
            signed = wire.offline_tap_bytes(
                self.terminal.terminal_id, tap.tap_id, tap.card, tap.op, tap.terminal_time,
                result, amount,
            )
            if not self._deps.auth.verify_offline_tap(
                self.terminal.public_key_hex, signed, sig
            ):
                return await self._error(
                    wire.BAD_OFFLINE_TAP,
                    "offline_sig does not verify with this terminal's key",
                    seq=tap.seq,
                    tap_id=tap.tap_id,
                )
        if tap.seq <= self.last_seq and seen is None:
            return await self._error(
                "seq_out_of_order",
                f"seq {tap.seq} is not after {self.last_seq}",
                seq=tap.seq,
                tap_id=tap.tap_id,
            )
        if seen is None:
            # Only a new tap moves the floor: a retry is answered from its record, so its seq
            # is never stored and must not make this connection stricter than the next one.
            self.last_seq = max(self.last_seq, tap.seq)
        self._note_tap(tap.tap_id, tap.card, tap_hash)
        self.stats["taps"] += 1
        term = self.terminal
        command = command_for(term, tap)
        # An offline tap is decided at the time it happened (within the plausibility window):
        # the transfer windows, caps and peaks of that moment apply.
        now = tap.terminal_time if offline is not None else received
        req = TapRequest(
            terminal_id=term.terminal_id,
            operator=term.operator,
            seq=tap.seq,
            tap_id=tap.tap_id,
            card=tap.card,
            tap_hash=tap_hash,
            command=command,
            now_ms=now,
            kind=term.kind,
            card_proof=wire.card_proof_of(tap) if tap.fields else None,
            offline=None if offline is None else (offline[0], offline[1], received),
        )
        try:
            reply = await self._deps.cards.ask(tap.card, req, timeout=TAP_TIMEOUT_S)
        except (MailboxFull, Overloaded, TimeoutError):
            return await self._error(
                "busy", "card is busy; retry with the same tap id", seq=tap.seq, tap_id=tap.tap_id
            )
        except (StoreUnavailable, ActorUnavailable, SigningUnavailable) as exc:
            what = "signing" if isinstance(exc, SigningUnavailable) else "storage"
            return await self._error(
                "unavailable",
                f"{what} unavailable; retry with the same tap id (never charged twice)",
                seq=tap.seq,
                tap_id=tap.tap_id,
            )
        except Exception:
            # A bug or a refused write for this one tap: the terminal retries, others go on.
            log.exception("tap %s from %s failed", tap.tap_id, term.terminal_id)
            return await self._error(
                "internal",
                "tap could not be decided; retry the same tap id",
                seq=tap.seq,
                tap_id=tap.tap_id,
            )
        if reply.reused:
            return await self._error(
                "tap_id_reused",
                "tap id already used for a different tap",
                seq=tap.seq,
                tap_id=tap.tap_id,
            )
        d = reply.decision
        if d is None:
            self._outcome = ("duplicate", "")
        else:
            self._outcome = ("approved" if d.approved else "declined", d.reason)
        await self._send(reply.frame)
        return True

    def close(self) -> None:
        self.phase = Phase.CLOSED
        if self._claimed_id is not None:
            self._deps.connections.release(self._claimed_id, self)
            self._claimed_id = None
