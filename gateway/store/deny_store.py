"""The deny list in Redis, and the control channel that tells every gateway process about it.

The deny list is the set of blocked cards that terminals hold (to refuse a card at once, and
offline). It is versioned: every change adds one to `{cc:deny}:ver`, is recorded in a capped log
stream (so a terminal that reconnects gets only what changed since its version), and is
published on the control channel in the same script, so a change and its announcement can
never part. All three keys share the `{cc:deny}` hash tag (one slot).

The control channel (`{cc}:control`, Redis pub/sub) carries the operators' instructions to
the gateways as small JSON objects:

- `{"type": "deny", "ver": N, "op": "add"|"remove", "card": C}` — the list changed;
- `{"type": "revoke", "terminal": T}` — close T's connection now;
- `{"type": "tariff", "path": P}` — load the tariff file P.

Pub/sub delivers at most once; gateways also compare the list's version every few seconds, so
a missed message costs a short delay, never a missed block.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import orjson
from redis.asyncio import Redis

DENY_CARDS_KEY: Final = "{cc:deny}:cards"
DENY_VERSION_KEY: Final = "{cc:deny}:ver"
DENY_LOG_KEY: Final = "{cc:deny}:log"
CONTROL_CHANNEL: Final = "{cc}:control"
#: Blocked cards the list holds at most; a block beyond it still blocks the card's account (every
#: online tap is declined) but is not listed for terminals (the change reports `listed=False`).
MAX_DENY_CARDS: Final = 200_000
#: Changes kept in the log (Redis and each gateway's memory) for deltas to reconnecting
#: terminals; a terminal further behind gets the whole list.
DENY_LOG_KEEP: Final = 10_000

DenyOp = Literal["add", "remove"]

# KEYS: cards hash, version, log. ARGV: op, card, max cards, log cap, channel.
# Returns {version, changed (0/1)}; changed = 0 for an add of a listed card or a remove of an
# unlisted one, or an add past the cap (version unchanged).
CHANGE_DENY_LUA: Final = """
local listed = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
local ver = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[1] == 'add' then
  if listed then return {ver, 0} end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {ver, 0} end
elseif not listed then
  return {ver, 0}
end
ver = redis.call('INCR', KEYS[2])
if ARGV[1] == 'add' then
  redis.call('HSET', KEYS[1], ARGV[2], ver)
else
  redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], ver .. '-1', 'op', ARGV[1], 'card', ARGV[2])
redis.call('PUBLISH', ARGV[5], cjson.encode({type='deny', ver=ver, op=ARGV[1], card=ARGV[2]}))
return {ver, 1}
"""


async def change_deny(client: Redis, card: str, op: DenyOp) -> tuple[int, bool]:
    """Add `card` to the deny list or remove it; (version now, whether the list changed)."""
    reply: Any = await client.eval(
        CHANGE_DENY_LUA,
        3,
        DENY_CARDS_KEY,
        DENY_VERSION_KEY,
        DENY_LOG_KEY,
        op,
        card,
        MAX_DENY_CARDS,
        DENY_LOG_KEEP,
        CONTROL_CHANNEL,
    )
    return int(reply[0]), bool(int(reply[1]))


async def load_deny(client: Redis) -> tuple[int, dict[str, int], list[tuple[int, DenyOp, str]]]:
    """(version, card -> version it was listed at, the logged changes oldest first), read in
    one transaction so the three agree."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.get(DENY_VERSION_KEY)
        pipe.hgetall(DENY_CARDS_KEY)
        pipe.xrange(DENY_LOG_KEY)
        raw_ver, raw_cards, raw_log = await pipe.execute()
    cards = {k.decode(): int(v) for k, v in raw_cards.items()}
    return int(raw_ver or 0), cards, [_change(e) for e in raw_log]


async def deny_changes_since(client: Redis, version: int) -> list[tuple[int, DenyOp, str]]:
    """Logged changes after `version`, oldest first (the log may no longer reach back)."""
    raw: Any = await client.xrange(DENY_LOG_KEY, min=f"({version}-1", max="+")
    return [_change(e) for e in raw]


def _change(entry: tuple[bytes, dict[bytes, bytes]]) -> tuple[int, DenyOp, str]:
    sid, fields = entry
    op: DenyOp = "add" if fields[b"op"] == b"add" else "remove"
    return int(sid.split(b"-", 1)[0]), op, fields[b"card"].decode()


async def publish_control(client: Redis, message: dict[str, object]) -> int:
    """Publish an instruction to every gateway; returns how many processes were listening."""
    return int(await client.publish(CONTROL_CHANNEL, orjson.dumps(message)))
