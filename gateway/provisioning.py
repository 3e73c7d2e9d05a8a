"""Administration outside the tap path: enrolling terminals, issuing and blocking cards, and the
list of gateway public keys that terminals trust. Used by the CLI, the demo and the simulator."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import anyio
import orjson
import redis
import redis.asyncio as aredis
from nacl.signing import SigningKey
from redis.exceptions import WatchError

from gateway.redis_store import PUT_CARD_LUA, RedisStore, card_key, journal_key
from gateway.signing import key_id_for, load_or_create_signing_key
from gateway.store import JOURNAL_MAXLEN_PER_SHARD, Store, TerminalRecord, shard_of
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


async def issue_card(store: Store, card: str, *, balance: int, category: str = "adult") -> None:
    state = CardState(
        card_id=card, balance=balance, status="active", category=category, recent_taps=()
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


def keys_command(args: argparse.Namespace) -> int:
    cmd = args.keys_command
    if cmd in ("generate", "show"):
        key = load_or_create_signing_key(Path(args.data_dir) / "keys" / "gateway.key")
        pub = bytes(key.verify_key).hex()
        print(f"key_id={key_id_for(bytes(key.verify_key))} public_key={pub}")
        return 0

    async def run() -> None:
        async with RedisStore.connect(args.redis_url) as store:
            if cmd == "revoke":
                rec = await store.get_terminal(args.terminal_id)
                if rec is None:
                    raise SystemExit(f"unknown terminal {args.terminal_id}")
                await store.put_terminal(dataclasses.replace(rec, status="revoked"))
                print(f"revoked {args.terminal_id}")
                return
            if cmd == "new-terminal":
                key = SigningKey.generate()
                pub = bytes(key.verify_key).hex()
                print(f"terminal_id={args.terminal_id} seed={bytes(key).hex()} public_key={pub}")
            else:
                if not args.public_key:
                    raise SystemExit("register needs --public-key HEX")
                pub = args.public_key
            await enroll_terminal(
                store,
                args.terminal_id,
                pub,
                kind=args.kind,
                operator=args.operator,
                network=args.network,
                location=args.location,
            )
            print(f"registered {args.terminal_id} ({args.kind}, {args.operator})")

    anyio.run(run)
    return 0


def cards_command(args: argparse.Namespace) -> int:
    async def run() -> None:
        async with RedisStore.connect(args.redis_url) as store:
            if args.cards_command == "issue":
                await issue_card(store, args.card, balance=args.balance, category=args.category)
                print(f"issued {args.card} balance={args.balance}")
                return
            if args.cards_command == "block":
                client = aredis.Redis.from_url(args.redis_url)
                try:
                    if not await block_card(client, args.card):
                        raise SystemExit(f"unknown card {args.card}")
                finally:
                    await client.aclose()
            rec = await store.load_card(args.card)
            if rec is None:
                raise SystemExit(f"unknown card {args.card}")
            print(orjson.dumps({"version": rec.version, **orjson.loads(rec.state)}).decode())

    anyio.run(run)
    return 0
