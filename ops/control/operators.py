"""Operators of the control room: who they are, their role, their token, and their web
sessions.

An operator is created with `citycard operators add NAME --role viewer|supervisor|admin`, which
prints a token once: `cco.<name>.<secret>`, the secret 32 random bytes (URL-safe base64). Redis
keeps only the SHA-256 of the token (`{cc}:operators`): a 256-bit random secret cannot be
guessed from its hash, so a slow password hash would add nothing. Tokens are checked in
constant time. A web login turns a token into a session: a random id in an HttpOnly cookie,
kept in Redis by its hash with a time to live.

Roles are ordered: a viewer watches (dashboard, streams, reports); a supervisor also acts on
cards (block, unblock, refund, adjust) and may follow one card's stream for a support call; an
admin also loads tariffs, revokes terminals and exports the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio import Redis

OPERATORS_KEY: Final = "{cc}:operators"
SESSION_PREFIX: Final = "{cc}:opsession:"
#: Seconds a web session lasts after login.
SESSION_TTL_S: Final = 12 * 3600
ROLES: Final = ("viewer", "supervisor", "admin")
ROLE_RANK: Final = {role: i for i, role in enumerate(ROLES)}
#: Operator names: short, lower case, safe in tokens, logs and the audit log.
NAME_PATTERN: Final = r"[a-z0-9][a-z0-9_-]{0,31}"
_NAME_RE: Final = re.compile(NAME_PATTERN)
TOKEN_PREFIX: Final = "cco"
#: Longest token accepted for checking (a real one is about 80 characters).
MAX_TOKEN_CHARS: Final = 200


class OperatorError(ValueError):
    """An operator cannot be created or changed as asked."""


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this operator has at least `role`."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise OperatorError(f"operator name must match {NAME_PATTERN}")
    return name


async def add_operator(client: Redis, name: str, role: str, *, replace: bool = False) -> str:
    """Create operator `name` (or give it a new token with `replace`); returns its token, which
    is shown once and never stored."""
    check_name(name)
    if role not in ROLES:
        raise OperatorError(f"role must be one of {', '.join(ROLES)}")
    token = f"{TOKEN_PREFIX}.{name}.{secrets.token_urlsafe(32)}"
    record = orjson.dumps(
        {"role": role, "token_sha256": _hash(token), "created_ms": time.time_ns() // 1_000_000,
         "disabled": False}
    )
    if replace:
        await client.hset(OPERATORS_KEY, name, record)
    elif not await client.hsetnx(OPERATORS_KEY, name, record):
        raise OperatorError(f"operator {name} exists (use --replace to issue a new token)")
    return token


async def disable_operator(client: Redis, name: str) -> bool:
    raw = await client.hget(OPERATORS_KEY, name)
    if raw is None:
        return False
    record = orjson.loads(raw)
    record["disabled"] = True
    await client.hset(OPERATORS_KEY, name, orjson.dumps(record))
    await _end_sessions_of(client, name)
    return True


async def list_operators(client: Redis) -> list[dict[str, Any]]:
    raw: dict[bytes, bytes] = await client.hgetall(OPERATORS_KEY)
    out = []
    for name, rec in sorted(raw.items()):
        record = orjson.loads(rec)
        out.append(
            {"name": name.decode(), "role": record["role"], "disabled": record["disabled"],
             "created_ms": record["created_ms"]}
        )
    return out


async def authenticate(client: Redis, token: str) -> Operator | None:
    """The operator a token belongs to, or None (malformed, unknown, wrong or disabled)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    parts = token.split(".", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not _NAME_RE.fullmatch(parts[1]):
        return None
    raw = await client.hget(OPERATORS_KEY, parts[1])
    # The hash is compared even for an unknown name, so timing tells nothing about names.
    record = orjson.loads(raw) if raw is not None else {"token_sha256": "0" * 64}
    if not hmac.compare_digest(_hash(token), record["token_sha256"]) or raw is None:
        return None
    if record.get("disabled") or record.get("role") not in ROLES:
        return None
    return Operator(parts[1], record["role"])


async def open_session(client: Redis, op: Operator) -> str:
    """A new web session for `op`; returns the session id for the cookie."""
    sid = secrets.token_urlsafe(32)
    await client.set(SESSION_PREFIX + _hash(sid), op.name, ex=SESSION_TTL_S)
    return sid


async def session_operator(client: Redis, sid: str) -> Operator | None:
    if not sid or len(sid) > MAX_TOKEN_CHARS:
        return None
    name = await client.get(SESSION_PREFIX + _hash(sid))
    if name is None:
        return None
    raw = await client.hget(OPERATORS_KEY, name)
    if raw is None:
        return None
    record = orjson.loads(raw)
    if record.get("disabled") or record.get("role") not in ROLES:
        return None
    return Operator(name.decode(), record["role"])


async def close_session(client: Redis, sid: str) -> None:
    await client.delete(SESSION_PREFIX + _hash(sid))


async def _end_sessions_of(client: Redis, name: str) -> None:
    async for key in client.scan_iter(match=SESSION_PREFIX + "*", count=1000):
        if await client.get(key) == name.encode():
            await client.delete(key)
