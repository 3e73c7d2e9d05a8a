"""The gateway's identity on the tap path: checks terminals' proofs and builds signed `auth`
frames from decisions. Joins gateway.keys.signing (keys, Ed25519) with gateway.wire.protocol
(bytes)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from nacl.signing import VerifyKey

from actors.card import TapRequest
from gateway.keys.signing import GatewaySigner, verify_proof, verify_terminal_signature
from gateway.wire import protocol as wire
from policies import Decision

#: Terminal public keys kept parsed in memory (parsing costs more than verifying a cached one).
MAX_CACHED_TERMINAL_KEYS = 50_000


class LocalSigner:
    """Signs in this process (tests, tools; the gateway normally uses gateway.keys.keyholder)."""

    def __init__(self, signer: GatewaySigner) -> None:
        self.key_id = signer.key_id
        self.public_key_hex = signer.public_key_hex
        self._signer = signer

    async def sign(self, message: bytes) -> bytes:
        return self._signer.sign_bytes(message)

    def stats(self) -> dict[str, int]:
        return {}


class AuthSigner(Protocol):
    """Where authorisation bytes get signed: `LocalSigner` or `keyholder.KeyholderSigner`."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key_hex(self) -> str: ...

    def sign(self, message: bytes) -> Awaitable[bytes]: ...

    def stats(self) -> dict[str, int]: ...


class GatewayAuthority:
    def __init__(self, signer: AuthSigner, currency: Callable[[], str]) -> None:
        self._signer = signer
        self._currency = currency
        self._keys: OrderedDict[str, VerifyKey] = OrderedDict()

    @property
    def key_id(self) -> str:
        return self._signer.key_id

    @property
    def signer(self) -> AuthSigner:
        return self._signer

    def _terminal_key(self, public_key_hex: str) -> VerifyKey | None:
        key = self._keys.get(public_key_hex)
        if key is None:
            try:
                key = VerifyKey(bytes.fromhex(public_key_hex))
            except ValueError:
                return None
            self._keys[public_key_hex] = key
            if len(self._keys) > MAX_CACHED_TERMINAL_KEYS:
                self._keys.popitem(last=False)
        return key

    def verify_proof(
        self, public_key_hex: str, terminal_id: str, challenge_hex: str, sig_hex: str
    ) -> bool:
        key = self._terminal_key(public_key_hex)
        if key is None:
            return False
        return verify_proof(key, terminal_id, challenge_hex, self.key_id, sig_hex)

    def verify_offline_tap(self, public_key_hex: str, message: bytes, sig_hex: str) -> bool:
        """Whether `sig_hex` is the terminal's signature over an offline tap's bytes."""
        key = self._terminal_key(public_key_hex)
        return key is not None and verify_terminal_signature(key, message, sig_hex)

    async def offline_policy_frame(
        self,
        version: int,
        gateway_time: int,
        limits: tuple[int, int, int, int],
        fares: tuple[tuple[str, int], ...],
    ) -> bytes:
        """A signed `offline_policy`; `limits` are (max_tap_amount, max_queue_taps,
        max_queue_total, max_age_ms)."""
        f = wire.OfflinePolicyFields(self._signer.key_id, version, gateway_time, *limits, fares)
        sig = await self._signer.sign(wire.offline_policy_bytes(f))
        return wire.encode_offline_policy(f, sig.hex())

    async def auth_frame(self, req: TapRequest, decision: Decision, gateway_time: int) -> bytes:
        fields = wire.AuthFields(
            key_id=self._signer.key_id,
            terminal_id=req.terminal_id,
            seq=req.seq,
            tap_id=req.tap_id,
            card=req.card,
            result=wire.RESULT_APPROVED if decision.approved else wire.RESULT_DECLINED,
            reason=decision.reason,
            amount=decision.amount,
            balance=decision.balance,
            currency=self._currency(),
            gateway_time=gateway_time,
        )
        detail: dict[str, object] = {
            "product": decision.product,
            "tariff_version": decision.tariff_version,
            "explain": decision.explain,
        }
        if decision.caps:
            # How far the card is toward each cap, for the terminal's display and the auditors.
            detail["caps"] = [cap.to_dict() for cap in decision.caps]
        sig = await self._signer.sign(wire.auth_bytes(fields))
        return wire.encode_auth(fields, sig.hex(), detail)

    async def deny_frames(
        self,
        list_version: int,
        base_version: int,
        add: list[str],
        remove: list[str],
        gateway_time: int,
    ) -> list[bytes]:
        """Signed `deny_list` frames: a delta (`base_version` > 0; `add` and `remove` fit one
        frame) or, with `base_version` 0, the whole list in as many parts as it needs."""
        if base_version:
            if len(add) > wire.DENY_PART_MAX_CARDS or len(remove) > wire.DENY_PART_MAX_CARDS:
                raise ValueError("a delta frame holds at most DENY_PART_MAX_CARDS cards each way")
            pieces = [(tuple(add), tuple(remove))]
        else:
            pieces = [(part, ()) for part in wire.deny_parts(add)]
        fields = [
            wire.DenyFields(
                key_id=self._signer.key_id,
                list_version=list_version,
                base_version=base_version,
                part=i,
                parts=len(pieces),
                gateway_time=gateway_time,
                add=a,
                remove=r,
            )
            for i, (a, r) in enumerate(pieces, start=1)
        ]
        sigs = [await self._signer.sign(wire.deny_bytes(f)) for f in fields]
        return [wire.encode_deny_list(f, sig.hex()) for f, sig in zip(fields, sigs, strict=True)]
