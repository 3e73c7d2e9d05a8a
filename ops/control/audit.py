"""The audit log: one append-only record per operator action, done or refused — who, when,
what, on what, why, with what result.

Records go to the Redis stream `{cc}:audit`, whose ids order them; nothing here edits or
deletes one (the stream is capped only at AUDIT_MAXLEN, far beyond a city's years of actions;
retention is a deliberate operator step, see docs/control-room.md). Exports are JSON lines or
CSV, both with every field.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final

import orjson
from redis.asyncio import Redis

AUDIT_KEY: Final = "{cc}:audit"
#: Stream cap (approximate): a safety bound, not a retention policy.
AUDIT_MAXLEN: Final = 10_000_000
#: Records one read returns at most.
AUDIT_PAGE: Final = 1_000
#: Longest free text kept in a record's reason or detail.
MAX_TEXT: Final = 500
FIELDS: Final = ("id", "at_ms", "operator", "role", "action", "target", "reason", "result",
                 "request_id", "detail")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    operator: str
    role: str
    action: str
    target: str
    reason: str
    #: "done" or "refused: <why>"
    result: str
    request_id: str = ""
    detail: Mapping[str, object] | None = None


async def record(client: Redis, rec: AuditRecord) -> str:
    """Append `rec`; returns its id."""
    fields = {
        "at_ms": time.time_ns() // 1_000_000,
        "operator": rec.operator,
        "role": rec.role,
        "action": rec.action,
        "target": rec.target[:MAX_TEXT],
        "reason": rec.reason[:MAX_TEXT],
        "result": rec.result[:MAX_TEXT],
        "request_id": rec.request_id[:MAX_TEXT],
        "detail": orjson.dumps(rec.detail or {}).decode()[: MAX_TEXT * 4],
    }
    rid = await client.xadd(AUDIT_KEY, fields, maxlen=AUDIT_MAXLEN, approximate=True)  # type: ignore[arg-type]
    return rid.decode() if isinstance(rid, bytes) else str(rid)


async def read(client: Redis, *, after: str = "-", count: int = AUDIT_PAGE) -> list[dict[str, str]]:
    """Up to `count` records after the id `after` ("-": from the start), oldest first."""
    start = "-" if after == "-" else f"({after}"
    raw = await client.xrange(AUDIT_KEY, min=start, max="+", count=min(count, AUDIT_PAGE))
    return [
        {"id": sid.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
        for sid, fields in raw
    ]


async def read_all(client: Redis, *, since_ms: int = 0) -> AsyncIterator[dict[str, str]]:
    """Every record from `since_ms` on, oldest first, a page at a time."""
    after = "-" if since_ms <= 0 else f"{since_ms - 1}-18446744073709551615"
    while True:
        page = await read(client, after=after)
        for rec in page:
            yield rec
        if len(page) < AUDIT_PAGE:
            return
        after = page[-1]["id"]


async def export(client: Redis, fmt: str, *, since_ms: int = 0) -> str:
    """The audit log as JSON lines (`jsonl`) or CSV (`csv`)."""
    if fmt == "jsonl":
        lines = [orjson.dumps(rec).decode() async for rec in read_all(client, since_ms=since_ms)]
        return "".join(line + "\n" for line in lines)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        async for rec in read_all(client, since_ms=since_ms):
            writer.writerow(rec)
        return out.getvalue()
    raise ValueError(f"unknown audit export format {fmt!r} (jsonl or csv)")
