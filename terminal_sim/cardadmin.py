"""Blocking a card mid-run the way the admin path does it -- the gateway's own `put_card` script,
so the journal gets the same `op=put_card` entry -- but as a compare-and-set.

`gateway.admin`'s `cards block` reads the state, flips the status and writes it back; a tap
committed in between would be overwritten (its charge lost). Under load that window is real, so
the simulator WATCHes the card's hash and retries when a tap got in first. The block changes the
card's version, so the card actor's next write conflicts, reloads and sees the block.
"""

from __future__ import annotations

import orjson
import redis.asyncio as aredis
from redis.exceptions import WatchError

from gateway.redis_store import PUT_CARD_LUA, card_key, journal_key
from gateway.store import JOURNAL_MAXLEN_PER_SHARD, shard_of

#: Attempts before giving up (each one lost a race against a tap on the same card).
MAX_ATTEMPTS = 50


async def block_card(client: aredis.Redis, card: str) -> bool:
    """Set the card's status to blocked; False if the card does not exist."""
    key = card_key(card)
    jkey = journal_key(shard_of(card))
    for _ in range(MAX_ATTEMPTS):
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
    raise RuntimeError(f"could not block {card}: {MAX_ATTEMPTS} races lost")
