"""Provisioning outside the tap path: enrolling terminals, issuing and blocking cards, and the
list of gateway public keys that terminals trust. Used by the operators' commands (`ops`), the
gateway at start-up (its own key) and the simulator."""

from __future__ import annotations

import orjson
import redis
import redis.asyncio as aredis
from redis.exceptions import WatchError

from gateway.store.interface import JOURNAL_MAXLEN_PER_SHARD, Store, TerminalRecord, shard_of
from gateway.store.redis_store import PUT_CARD_LUA, card_key, journal_key
from policies import CardState

#: Redis hash: gateway key id -> hex public key. Terminals and simulators read it to verify.
GATEWAY_KEYS_KEY = "{cc}:gateway_keys"


def publish_gateway_key(redis_url: str, key_id: str, public_key_hex: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(GATEWAY_KEYS_KEY, key_id, public_key_hex)
    finally:
        client.close()


def gateway_keys(redis_url: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_url)
    try:
        raw: dict[bytes, bytes] = client.hgetall(GATEWAY_KEYS_KEY)  # type: ignore[assignment]
    finally:
        client.close()
    return {k.decode(): v.decode() for k, v in raw.items()}


async def enroll_terminal(
    store: Store,
    terminal_id: str,
    public_key_hex: str,
    *,
    kind: str,
    operator: str,
    network: str = "",
    location: str = "",
) -> None:
    await store.put_terminal(
        TerminalRecord(
            terminal_id=terminal_id,
            public_key_hex=public_key_hex,
            kind=kind,
            operator=operator,
            network=network,
            location=location,
            status="active",
        )
    )


def is_public_key_hex(value: object) -> bool:
    """Whether `value` is an Ed25519 public key as 64 lowercase hex characters."""
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value)
    )


async def issue_card(
    store: Store,
    card: str,
    *,
    balance: int,
    category: str = "adult",
    card_key: str | None = None,
) -> None:
    """Issue (or re-issue) a card. `card_key`: the card's Ed25519 public key (64 hex), for a
    card that authenticates every tap with a cryptogram (docs/protocol.md section 8)."""
    if card_key is not None and not is_public_key_hex(card_key):
        raise ValueError("card_key must be 64 lowercase hex characters (an Ed25519 public key)")
    state = CardState(
        card_id=card,
        balance=balance,
        status="active",
        category=category,
        recent_taps=(),
        card_key=card_key,
    )
    await store.put_card(card, orjson.dumps(state.to_dict()))


#: Attempts to block a card before giving up (each one lost a race against a tap on it).
MAX_BLOCK_ATTEMPTS = 50


async def block_card(client: aredis.Redis, card: str) -> bool:
    """Set a card's status to blocked, as a compare-and-set; False if the card does not exist.

    A plain read-modify-write would overwrite a tap committed in between (its charge lost), so
    the card's hash is WATCHed and the block retried when a tap got in first. The write goes
    through the `put_card` script (journal entry `op=put_card`) and bumps the card's version, so
    the card actor's next write conflicts, reloads and sees the block."""
    key = card_key(card)
    jkey = journal_key(shard_of(card))
    for _ in range(MAX_BLOCK_ATTEMPTS):
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.hget(key, "state")
                if raw is None:
                    return False
                state = orjson.loads(raw)
                state["status"] = "blocked"
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.eval(
                    PUT_CARD_LUA, 2, key, jkey, orjson.dumps(state), JOURNAL_MAXLEN_PER_SHARD, card
                )
                await pipe.execute()
                return True
            except WatchError:
                continue
    raise RuntimeError(f"could not block {card}: {MAX_BLOCK_ATTEMPTS} races lost")
