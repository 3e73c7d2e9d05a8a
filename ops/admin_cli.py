"""`citycard keys ...` and `citycard cards ...`: the gateway's signing key, terminal enrolment
and revocation, card issue, inspection and blocking, from the command line."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import anyio
import orjson
import redis.asyncio as aredis
from nacl.signing import SigningKey

from gateway.keys.signing import key_id_for, load_or_create_signing_key
from gateway.provisioning import block_card, enroll_terminal, issue_card
from gateway.store.redis_store import RedisStore


def keys_command(args: argparse.Namespace) -> int:
    cmd = args.keys_command
    if cmd in ("generate", "show"):
        key = load_or_create_signing_key(Path(args.data_dir) / "keys" / "gateway.key")
        pub = bytes(key.verify_key).hex()
        print(f"key_id={key_id_for(bytes(key.verify_key))} public_key={pub}")
        return 0

    if cmd == "enroll-handheld":
        return anyio.run(_enroll_handheld, args)

    async def run() -> None:
        async with RedisStore.connect(args.redis_url) as store:
            if cmd == "revoke":
                await _revoke(store, args.redis_url, args.terminal_id, args.reason)
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


async def _enroll_handheld(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from ops.control.handhelds import EnrolRefused, create_code

    client = Redis.from_url(args.redis_url)
    try:
        made = await create_code(
            client, kind=args.kind, operator=args.operator, network=args.network,
            terminal_id=args.terminal_id, ttl_s=args.ttl_s,
        )
    except EnrolRefused as refused:
        print(f"citycard keys enroll-handheld: {refused.message}")
        return 2
    finally:
        await client.aclose()
    print(f"code={made.code} terminal_id={made.terminal_id} expires_ms={made.expires_ms}")
    print(f"open the control room's /apps/{args.kind} page on the handheld and enter the code")
    return 0


async def _revoke(store: RedisStore, redis_url: str, terminal_id: str, reason: str) -> None:
    """Revoke, close the terminal's live connection on every gateway (the control channel),
    and audit it like the control room's `revoke_terminal` (operator `keys-cli`: whoever holds
    the Redis URL)."""
    from redis.asyncio import Redis

    from gateway.store.deny_store import publish_control
    from ops.control import audit

    client = Redis.from_url(redis_url)
    try:
        rec = await store.get_terminal(terminal_id)
        if rec is None:
            await audit.record(client, audit.AuditRecord(
                "keys-cli", "admin", "revoke_terminal", terminal_id, reason,
                "refused: unknown_terminal"))
            raise SystemExit(f"unknown terminal {terminal_id}")
        await store.put_terminal(dataclasses.replace(rec, status="revoked"))
        told = await publish_control(client, {"type": "revoke", "terminal": terminal_id})
        await audit.record(client, audit.AuditRecord(
            "keys-cli", "admin", "revoke_terminal", terminal_id, reason, "done",
            detail={"was": rec.status, "gateways_told": told}))
        print(f"revoked {terminal_id} (live connection closed by {told} gateway(s))")
    finally:
        await client.aclose()


def cards_command(args: argparse.Namespace) -> int:
    async def run() -> None:
        async with RedisStore.connect(args.redis_url) as store:
            if args.cards_command == "issue":
                await issue_card(
                    store,
                    args.card,
                    balance=args.balance,
                    category=args.category,
                    card_key=args.card_key,
                )
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
