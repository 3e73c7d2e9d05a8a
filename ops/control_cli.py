"""`citycard control` (run the control room), `citycard operators ...` (who may use it),
`citycard admin ...` (operator actions from the command line, with the same role checks, reasons
and audit log as the dashboard) and `citycard watch` (the live streams in a terminal)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
from redis.asyncio import Redis

from gateway.launch import run_async
from gateway.store.redis_store import RedisStore
from ops.control.operators import (
    ROLES,
    OperatorError,
    add_operator,
    authenticate,
    disable_operator,
    list_operators,
)


def _redis_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        required=os.environ.get("REDIS_URL") is None,
        help="the gateways' Redis (default $REDIS_URL)",
    )


def add_control_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "control", help="run the control room (dashboard, streams, actions) on its own port"
    )
    _redis_arg(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8780)
    p.add_argument("--tariff", type=Path, default=None,
                   help="tariff file operator commands are decided under (default: built-in)")
    p.add_argument("--stops", type=Path, default=None,
                   help="GTFS stops.txt: stop names and positions (far-apart alert)")
    p.add_argument("--timezone", default="UTC", help="the local day of 'today' (default UTC)")
    p.add_argument("--silent-after", type=float, default=600.0,
                   help="seconds without a tap after which a connected terminal is silent")
    p.add_argument("--apps-gateway-url", default=None,
                   help="the gateway websocket URL the handheld apps (/apps/taxi) are given, "
                   "as their phones reach it, e.g. wss://gateway.example/ (default: a live "
                   "gateway's own address)")
    p.set_defaults(func=cmd_control)

    p = sub.add_parser("operators", help="control-room operators and their tokens")
    osub = p.add_subparsers(dest="operators_command", required=True)
    o = osub.add_parser("add", help="create an operator; prints its token once")
    o.add_argument("name")
    o.add_argument("--role", choices=ROLES, required=True)
    o.add_argument("--replace", action="store_true", help="issue a new token to an existing one")
    o = osub.add_parser("list", help="list operators (never their tokens)")
    o = osub.add_parser("disable", help="disable an operator and end its sessions")
    o.add_argument("name")
    for o in osub.choices.values():
        _redis_arg(o)
    p.set_defaults(func=cmd_operators)

    p = sub.add_parser(
        "admin",
        help="operator actions (block, unblock, adjust, revoke, tariff) and the audit log",
        description="Each action needs an operator token ($CITYCARD_OPERATOR_TOKEN or --token) "
        "with the action's role and a --reason; it is recorded in the audit log.",
    )
    asub = p.add_subparsers(dest="admin_command", required=True)
    a = asub.add_parser("block", help="block a card (pushed to every terminal's deny list)")
    a.add_argument("card")
    a = asub.add_parser("unblock", help="unblock a card")
    a.add_argument("card")
    a = asub.add_parser("adjust", help="refund (positive) or correct (negative) a balance")
    a.add_argument("card")
    a.add_argument("--credit", type=int, required=True, help="minor units to the card")
    a.add_argument("--funder", default=None, help="who funds the credit (default citycard)")
    a = asub.add_parser("revoke", help="revoke a terminal (its connection closes at once)")
    a.add_argument("terminal")
    a = asub.add_parser("tariff", help="load a tariff file on every gateway")
    a.add_argument("path")
    a = asub.add_parser("audit", help="export the audit log")
    a.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    a.add_argument("--since-ms", type=int, default=0)
    for name, a in asub.choices.items():
        _redis_arg(a)
        a.add_argument("--token", default=os.environ.get("CITYCARD_OPERATOR_TOKEN"),
                       help="operator token (default $CITYCARD_OPERATOR_TOKEN)")
        if name != "audit":
            # Not required by the parser: a missing reason is refused by the action itself, so
            # that the refusal is in the audit log like every other.
            a.add_argument("--reason", default="", help="why (required; recorded in the audit log)")
            a.add_argument("--request-id", default=None,
                           help="idempotency key (default: a fresh one)")
    p.set_defaults(func=cmd_admin)

    p = sub.add_parser("watch", help="follow the control room's live streams in a terminal")
    p.add_argument("--url", default="http://127.0.0.1:8780/", help="the control room")
    p.add_argument("--token", default=os.environ.get("CITYCARD_OPERATOR_TOKEN"),
                   help="operator token (default $CITYCARD_OPERATOR_TOKEN)")
    p.add_argument("--stream", choices=("taps", "health", "alerts"), default="taps")
    for name in ("kind", "operator", "terminal", "route", "stop", "card"):
        p.add_argument(f"--{name}", default=None)
    p.add_argument("--declines", action="store_true", help="declined taps only")
    p.add_argument("--max-messages", type=int, default=0,
                   help="stop after this many messages (0: until Ctrl-C)")
    p.add_argument("--plain", action="store_true", help="one JSON line per message, no table")
    p.set_defaults(func=cmd_watch)


def cmd_control(args: argparse.Namespace) -> int:
    from gateway.server import until_signalled
    from ops.control.room import ControlConfig, open_control_room

    config = ControlConfig(
        redis_url=args.redis_url, host=args.host, port=args.port, tariff_path=args.tariff,
        stops_path=args.stops, timezone=args.timezone, silent_after_s=args.silent_after,
        apps_gateway_url=args.apps_gateway_url,
    )

    async def serve() -> None:
        async with open_control_room(config) as room:
            print(f"citycard control room on {room.url}", flush=True)
            await anyio.sleep_forever()

    run_async(until_signalled, serve)
    return 0


async def _with_redis(url: str, fn: Callable[[Redis], Awaitable[int]]) -> int:
    client = Redis.from_url(url)
    try:
        return await fn(client)
    finally:
        await client.aclose()


def cmd_operators(args: argparse.Namespace) -> int:
    async def run(client: Redis) -> int:
        cmd = args.operators_command
        if cmd == "add":
            try:
                token = await add_operator(client, args.name, args.role, replace=args.replace)
            except OperatorError as exc:
                print(f"citycard operators: {exc}", file=sys.stderr)
                return 2
            print(f"operator {args.name} ({args.role}) token: {token}")
            print("keep it secret: it is not stored and cannot be shown again", file=sys.stderr)
            return 0
        if cmd == "list":
            for op in await list_operators(client):
                state = "disabled" if op["disabled"] else "active"
                print(f"{op['name']}\t{op['role']}\t{state}")
            return 0
        if not await disable_operator(client, args.name):
            print(f"citycard operators: no operator {args.name}", file=sys.stderr)
            return 2
        print(f"operator {args.name} disabled")
        return 0

    result: int = anyio.run(_with_redis, args.redis_url, run)
    return result


def cmd_admin(args: argparse.Namespace) -> int:
    from ops.control import audit
    from ops.control.actions import ActionRefused, ControlContext, perform

    # The gateways read the file on their hosts: name it absolutely.
    tariff_path = str(Path(args.path).resolve()) if args.admin_command == "tariff" else None

    async def run(client: Redis) -> int:
        op = await authenticate(client, args.token or "")
        cmd = args.admin_command
        if cmd == "audit":
            if op is None or not op.may("admin"):
                print("citycard admin: the audit log needs an admin token", file=sys.stderr)
                return 2
            sys.stdout.write(await audit.export(client, args.format, since_ms=args.since_ms))
            await audit.record(client, audit.AuditRecord(
                op.name, op.role, "export_audit", args.format, "", "done"))
            return 0
        action, params = {
            "block": ("block_card", {"card": getattr(args, "card", None)}),
            "unblock": ("unblock_card", {"card": getattr(args, "card", None)}),
            "adjust": ("adjust_card", {"card": getattr(args, "card", None),
                                       "credit": getattr(args, "credit", None),
                                       "funder": getattr(args, "funder", None)}),
            "revoke": ("revoke_terminal", {"terminal": getattr(args, "terminal", None)}),
            "tariff": ("load_tariff", {"path": tariff_path}),
        }[cmd]
        params = {k: v for k, v in params.items() if v is not None}
        params["reason"] = args.reason
        params["request_id"] = args.request_id or f"cli-{secrets.token_hex(8)}"
        async with RedisStore.connect(args.redis_url) as store:
            from gateway.tariffs.holder import load_tariff

            tariff = load_tariff(None)
            try:
                result = await perform(ControlContext(client, store, lambda: tariff), op,
                                       action, params)
            except ActionRefused as refused:
                print(f"citycard admin: refused ({refused.code}): {refused.message}",
                      file=sys.stderr)
                return 1
        print(orjson.dumps({"action": action, "result": result}).decode())
        return 0

    result: int = anyio.run(_with_redis, args.redis_url, run)
    return result


def cmd_watch(args: argparse.Namespace) -> int:
    from ops.watch import watch

    spec: dict[str, Any] = {"stream": args.stream}
    for name in ("kind", "operator", "terminal", "route", "stop", "card"):
        if getattr(args, name):
            spec[name] = getattr(args, name)
    if args.declines:
        spec["declines"] = True
    if not args.token:
        print("citycard watch: give an operator token (--token or $CITYCARD_OPERATOR_TOKEN)",
              file=sys.stderr)
        return 2
    return anyio.run(watch, args.url, args.token, spec, args.max_messages, args.plain)
