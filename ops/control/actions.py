"""Operator actions: block and unblock a card, refund or adjust a balance, revoke a terminal,
load a tariff. The dashboard and `citycard admin` both come here.

Every action, in this order: the operator is authenticated and has the action's role; the
request names a reason (1-200 characters) and a request id (a fresh identifier per request);
the request id has not been used before (a replay is refused); the target exists; then the
action is carried out. Each attempt, done or refused at any step, is one record in the audit
log (`ops.control.audit`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
from redis.asyncio import Redis

from gateway.control import GATEWAY_KEY_PREFIX
from gateway.presence import GATEWAYS_KEY, gateway_key
from gateway.store.deny_store import change_deny, publish_control
from gateway.store.interface import Store
from gateway.tariffs.tariff_io import TariffError, load_tariff_file
from gateway.wire.protocol import is_identifier
from ops.control.audit import AuditRecord, record
from ops.control.card_commands import CardCommandResult, apply_card_command
from ops.control.operators import Operator
from policies import BalanceAdjustment, CardStatusChange, Tariff

#: Request ids remembered (against replays) for this long.
REQUEST_TTL_S: Final = 30 * 24 * 3600
REQUEST_PREFIX: Final = "{cc}:opreq:"
MAX_REASON_CHARS: Final = 200
#: Largest refund or adjustment one action may make, minor units.
MAX_CREDIT: Final = 100_000
#: Seconds `load_tariff` waits for the gateways' reports.
TARIFF_WAIT_S: Final = 15.0
#: Who funds a refund unless the request names someone.
DEFAULT_FUNDER: Final = "citycard"

#: Each action and the least role that may perform it.
ACTIONS: Final = {
    "block_card": "supervisor",
    "unblock_card": "supervisor",
    "adjust_card": "supervisor",
    "revoke_terminal": "admin",
    "load_tariff": "admin",
}


class ActionRefused(Exception):
    """The action was not carried out; `code` is machine-readable, the message for people."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class ControlContext:
    redis: Redis
    store: Store
    tariff: Callable[[], Tariff]


Handler = Callable[[ControlContext, Operator, Mapping[str, Any], str], Awaitable[dict[str, Any]]]


async def perform(
    ctx: ControlContext, op: Operator | None, action: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Carry out `action`; returns what was done, or raises `ActionRefused` (audited either
    way)."""
    reason = params.get("reason")
    request_id = params.get("request_id")
    target = str(params.get("card") or params.get("terminal") or params.get("path") or "")
    who, role = (op.name, op.role) if op is not None else ("(unauthenticated)", "")

    async def audit(result: str, detail: Mapping[str, object] | None = None) -> None:
        await record(
            ctx.redis,
            AuditRecord(
                operator=who,
                role=role,
                action=action[:64],
                target=target,
                reason=reason if isinstance(reason, str) else "",
                result=result,
                request_id=request_id if isinstance(request_id, str) else "",
                detail=detail,
            ),
        )

    try:
        if op is None:
            raise ActionRefused("not_authenticated", "sign in first", 401)
        needed = ACTIONS.get(action)
        if needed is None:
            raise ActionRefused("unknown_action", f"no action {action[:64]!r}", 404)
        if not op.may(needed):
            raise ActionRefused("forbidden", f"{action} needs the {needed} role", 403)
        if not isinstance(reason, str) or not reason.strip():
            raise ActionRefused("reason_required", "every action needs a reason")
        if len(reason) > MAX_REASON_CHARS:
            raise ActionRefused("bad_reason", f"a reason has at most {MAX_REASON_CHARS} characters")
        if not isinstance(request_id, str) or not is_identifier(request_id):
            raise ActionRefused(
                "bad_request_id", "request_id must be a fresh identifier (1-64 of A-Za-z0-9._:-)"
            )
        content = _content(action, params)
        fresh = await ctx.redis.set(
            REQUEST_PREFIX + request_id, content, nx=True, ex=REQUEST_TTL_S
        )
        if not fresh:
            raise ActionRefused("replayed", f"request id {request_id} was used before", 409)
        result = await _HANDLERS[action](ctx, op, params, content)
    except ActionRefused as refused:
        await audit(f"refused: {refused.code}", {"message": refused.message})
        raise
    await audit("done", result)
    return result


def _content(action: str, params: Mapping[str, Any]) -> str:
    """The request's canonical text (what a request id is bound to)."""
    kept = {k: params[k] for k in sorted(params) if k != "request_id"}
    return hashlib.sha256(orjson.dumps({"action": action, **kept})).hexdigest()


def _card(params: Mapping[str, Any]) -> str:
    card = params.get("card")
    if not isinstance(card, str) or not is_identifier(card):
        raise ActionRefused("bad_card", "card must be a card identifier")
    return card


async def _existing_card(ctx: ControlContext, params: Mapping[str, Any]) -> str:
    card = _card(params)
    if await ctx.store.load_card(card) is None:
        raise ActionRefused("unknown_card", f"no card {card}", 404)
    return card


def _card_outcome(res: CardCommandResult) -> dict[str, Any]:
    if res.reused:
        raise ActionRefused("replayed", "request id used before for another command", 409)
    if not res.approved:
        raise ActionRefused(res.reason, f"declined by the rules: {res.reason}", 409)
    return {"balance": res.balance, "amount": res.amount, "duplicate": res.duplicate}


async def _set_status(
    ctx: ControlContext, op: Operator, params: Mapping[str, Any], content: str, status: str
) -> dict[str, Any]:
    card = await _existing_card(ctx, params)
    command = CardStatusChange(
        terminal_id="control-room", operator=op.name, status=status, note=params["reason"]
    )
    res = await apply_card_command(
        ctx.store, ctx.tariff(), card, command, request_id=params["request_id"],
        operator=op.name, content=content,
    )
    out = _card_outcome(res)
    version, listed = await change_deny(
        ctx.redis, card, "add" if status == "blocked" else "remove"
    )
    out.update(status=status, deny_version=version, deny_changed=listed)
    return out


async def _block(
    ctx: ControlContext, op: Operator, params: Mapping[str, Any], content: str
) -> dict[str, Any]:
    return await _set_status(ctx, op, params, content, "blocked")


async def _unblock(
    ctx: ControlContext, op: Operator, params: Mapping[str, Any], content: str
) -> dict[str, Any]:
    return await _set_status(ctx, op, params, content, "active")


async def _adjust(
    ctx: ControlContext, op: Operator, params: Mapping[str, Any], content: str
) -> dict[str, Any]:
    credit = params.get("credit")
    if not isinstance(credit, int) or isinstance(credit, bool) or credit == 0:
        raise ActionRefused("bad_credit", "credit must be a non-zero integer (minor units)")
    if abs(credit) > MAX_CREDIT:
        raise ActionRefused("bad_credit", f"at most {MAX_CREDIT} minor units per action")
    funder = params.get("funder") or DEFAULT_FUNDER
    if not isinstance(funder, str) or not is_identifier(funder):
        raise ActionRefused("bad_funder", "funder must be an operator identifier")
    card = await _existing_card(ctx, params)
    command = BalanceAdjustment(
        terminal_id="control-room", operator=funder, credit=credit, note=params["reason"]
    )
    res = await apply_card_command(
        ctx.store, ctx.tariff(), card, command, request_id=params["request_id"],
        operator=op.name, content=content,
    )
    return {**_card_outcome(res), "credit": credit, "funder": funder}


async def _revoke(
    ctx: ControlContext, op: Operator, params: Mapping[str, Any], content: str
) -> dict[str, Any]:
    terminal = params.get("terminal")
    if not isinstance(terminal, str) or not is_identifier(terminal):
        raise ActionRefused("bad_terminal", "terminal must be a terminal identifier")
    rec = await ctx.store.get_terminal(terminal)
    if rec is None:
        raise ActionRefused("unknown_terminal", f"no terminal {terminal}", 404)
    await ctx.store.put_terminal(replace(rec, status="revoked"))
    listeners = await publish_control(ctx.redis, {"type": "revoke", "terminal": terminal})
    return {"terminal": terminal, "was": rec.status, "gateways_told": listeners}


async def _load_tariff(
    ctx: ControlContext, op: Operator, params: Mapping[str, Any], content: str
) -> dict[str, Any]:
    path = params.get("path")
    if not isinstance(path, str) or not path:
        raise ActionRefused("bad_path", "path must name a tariff file on the gateways' hosts")
    try:
        tariff = await anyio.to_thread.run_sync(load_tariff_file, Path(path))
    except TariffError as exc:
        raise ActionRefused("invalid_tariff", str(exc)[:400]) from None
    gateways = await live_gateways(ctx.redis)
    for gw in gateways:
        await ctx.redis.delete(f"{GATEWAY_KEY_PREFIX}{gw}:tariff")
    await publish_control(ctx.redis, {"type": "tariff", "path": path})
    reports: dict[str, Any] = {}
    with anyio.move_on_after(TARIFF_WAIT_S):
        while len(reports) < len(gateways):
            for gw in gateways:
                raw = await ctx.redis.get(f"{GATEWAY_KEY_PREFIX}{gw}:tariff")
                if raw is not None:
                    reports[gw] = orjson.loads(raw)
            await anyio.sleep(0.1)
    missing = sorted(set(gateways) - set(reports))
    return {"version": tariff.version, "gateways": reports, "no_report": missing}


async def live_gateways(client: Redis) -> list[str]:
    """Gateways whose presence key is still alive."""
    ids = sorted(m.decode() for m in await client.smembers(GATEWAYS_KEY))
    alive = []
    for gw in ids:
        if await client.exists(gateway_key(gw)):
            alive.append(gw)
    return alive


_HANDLERS: Final[dict[str, Handler]] = {
    "block_card": _block,
    "unblock_card": _unblock,
    "adjust_card": _adjust,
    "revoke_terminal": _revoke,
    "load_tariff": _load_tariff,
}

