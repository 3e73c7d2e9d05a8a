"""Handheld and kiosk apps: one-time enrolment codes, and what an enrolled app is told.

An operator makes a code for one handheld (`citycard keys enroll-handheld --kind taxi
--operator O`): a random secret, kept in Redis only as its SHA-256, for `ENROL_TTL_S`, with the
terminal id, kind, operator and network it will enroll. The app (a web page served beside the
control room, `ops/control/static/apps/`) makes its own Ed25519 key in the browser
(WebCrypto, private key not extractable) and redeems the code with its public key: the terminal
is enrolled with that key, the code is spent (an atomic GETDEL: a reused code finds nothing),
and the app is told the gateway's websocket URL and keys. Every step is audited. From then on
the app is an ordinary terminal of docs/protocol.md: `citycard keys revoke` revokes it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from gateway.provisioning import enroll_terminal, is_public_key_hex
from gateway.store.interface import Store
from gateway.wire.protocol import is_identifier
from ops.control import audit

#: How long an enrolment code stays valid.
ENROL_TTL_S: Final = 15 * 60
#: Kinds an app can be enrolled as (the apps that exist).
HANDHELD_KINDS: Final = ("taxi", "kiosk", "inspector")
_KEY_PREFIX: Final = "cc:enrol:"


class EnrolRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class EnrolCode:
    code: str
    terminal_id: str
    expires_ms: int


def _key(code: str) -> str:
    return _KEY_PREFIX + hashlib.sha256(code.encode()).hexdigest()


async def create_code(
    redis: Redis,
    *,
    kind: str,
    operator: str,
    network: str = "",
    terminal_id: str | None = None,
    ttl_s: int = ENROL_TTL_S,
    by: str = "keys-cli",
) -> EnrolCode:
    """A fresh one-time code that enrolls one handheld of `kind` for `operator`."""
    if kind not in HANDHELD_KINDS:
        raise EnrolRefused("bad_kind", f"kind must be one of {', '.join(HANDHELD_KINDS)}")
    if not is_identifier(operator) or (network and not is_identifier(network)):
        raise EnrolRefused("bad_operator", "operator and network must be identifiers")
    tid = terminal_id or f"{kind}-{operator}-{secrets.token_hex(3)}"
    if not is_identifier(tid):
        raise EnrolRefused("bad_terminal", "terminal id must be an identifier")
    # Groups of four from an alphabet without look-alikes: easy to read out and to type.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    expires_ms = time.time_ns() // 1_000_000 + ttl_s * 1000
    record = {"terminal_id": tid, "kind": kind, "operator": operator, "network": network,
              "expires_ms": expires_ms}
    await redis.set(_key(code), orjson.dumps(record), ex=ttl_s)
    await audit.record(redis, audit.AuditRecord(
        by, "admin", "enrol_code", tid, f"{kind} handheld for {operator}", "done"))
    return EnrolCode(code, tid, expires_ms)


async def redeem(redis: Redis, store: Store, code: str, public_key_hex: str) -> dict[str, Any]:
    """Enroll the handheld holding `code` with its public key; the code is spent. Raises
    EnrolRefused (audited) for an unknown, expired or spent code or a bad key."""
    if not is_public_key_hex(public_key_hex):
        raise await _refused(redis, "bad_key", "public_key must be 64 lowercase hex characters")
    if not isinstance(code, str) or len(code) > 64:
        raise await _refused(redis, "bad_code", "unknown, expired or already used code")
    raw = await redis.getdel(_key(code.strip().upper()))
    if raw is None:
        raise await _refused(redis, "bad_code", "unknown, expired or already used code")
    rec = orjson.loads(raw)
    if rec["expires_ms"] < time.time_ns() // 1_000_000:
        raise await _refused(redis, "bad_code", "unknown, expired or already used code")
    tid = rec["terminal_id"]
    await enroll_terminal(store, tid, public_key_hex, kind=rec["kind"],
                          operator=rec["operator"], network=rec["network"])
    await audit.record(redis, audit.AuditRecord(
        f"handheld:{tid}", "terminal", "enrol_handheld", tid, rec["kind"], "done"))
    return {"terminal_id": tid, "kind": rec["kind"], "operator": rec["operator"]}


async def _refused(redis: Redis, code: str, message: str) -> EnrolRefused:
    await audit.record(redis, audit.AuditRecord(
        "(handheld)", "", "enrol_handheld", "", "", f"refused: {code}"))
    return EnrolRefused(code, message)
