"""Operator commands on a card (block, unblock, refund, adjust), decided by the pure core and
made durable exactly as a tap is: through a card actor, with a compare-and-set on the card's
version, the request id as the idempotency key (a repeated request finds its original answer,
a changed one is refused) and a journal entry that settlement reads like any other.

The journal entry's terminal is `control-room`, its operator the operator who acted, its kind
`control`; the event names who funds a credit. A gateway holding the card in memory sees the
version move at its next write, reloads and decides again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Final

import orjson

from actors.card import CardActor, CardDeps, TapRequest
from actors.card_store import CardStore
from policies import Command, Decision, Tariff

#: The terminal id operator commands are journaled under.
CONTROL_TERMINAL: Final = "control-room"
#: The terminal kind they are journaled with.
CONTROL_KIND: Final = "control"


@dataclass(frozen=True, slots=True)
class CardCommandResult:
    approved: bool
    reason: str
    amount: int
    balance: int
    #: True when the request id had been applied before: this is that first answer.
    duplicate: bool
    #: True when the request id was used before for a different command (nothing done).
    reused: bool = False


async def _record(req: TapRequest, decision: Decision, gateway_time: int) -> bytes:
    """What is stored with the request id (operators' commands are not signed: they never
    reach a terminal)."""
    return orjson.dumps(
        {
            "result": "approved" if decision.approved else "declined",
            "reason": decision.reason,
            "amount": decision.amount,
            "balance": decision.balance,
            "by": req.operator,
            "at": gateway_time,
        }
    )


async def apply_card_command(
    store: CardStore,
    tariff: Tariff,
    card: str,
    command: Command,
    *,
    request_id: str,
    operator: str,
    content: str,
    now_ms: int | None = None,
) -> CardCommandResult:
    """Decide `command` for `card` and make it durable under `request_id`. `content` is the
    request's canonical text: the same request id with other content is refused."""
    actor = CardActor(card, CardDeps(store=store, tariff=lambda: tariff, sign=_record))
    await actor.on_activate()
    req = TapRequest(
        terminal_id=CONTROL_TERMINAL,
        operator=operator,
        seq=0,
        tap_id=request_id,
        card=card,
        tap_hash=hashlib.sha256(content.encode()).hexdigest(),
        command=command,
        now_ms=time.time_ns() // 1_000_000 if now_ms is None else now_ms,
        kind=CONTROL_KIND,
    )
    reply = await actor.handle(req)
    if reply.reused:
        return CardCommandResult(False, "request_id_reused", 0, 0, duplicate=True, reused=True)
    rec = orjson.loads(reply.frame)
    return CardCommandResult(
        approved=rec["result"] == "approved",
        reason=rec["reason"],
        amount=rec["amount"],
        balance=rec["balance"],
        duplicate=reply.duplicate,
    )
