"""What a gateway process does when operators act: it follows the control channel (Redis
pub/sub) and the deny list's version, pushes deny list changes to its connected terminals,
closes the connection of a revoked terminal at once, and loads a new tariff file when told.

The channel's messages are described in `gateway.store.deny_store`. A message lost while the
subscription was down is made up for by the periodic version check (`DENY_CHECK_S`); the
subscription itself is re-established with a growing delay, bounded by `RESUBSCRIBE_MAX_S`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import anyio
import orjson
import redis.exceptions as rexc
from redis.asyncio import Redis

from gateway.deny_list import DenyList
from gateway.store.deny_store import (
    CONTROL_CHANNEL,
    DENY_VERSION_KEY,
    deny_changes_since,
    load_deny,
)
from gateway.tariffs.holder import TariffHolder
from gateway.tariffs.tariff_io import TariffError

log = logging.getLogger(__name__)

#: Seconds between two checks of the deny list's version in Redis.
DENY_CHECK_S: Final = 5.0
#: Longest wait before subscribing again after the subscription broke.
RESUBSCRIBE_MAX_S: Final = 5.0
#: Bytes of one control message at most (larger ones are ignored and logged).
MAX_CONTROL_MESSAGE: Final = 4096
#: Key prefix of each gateway's reports (tariff reloads), with its id appended.
GATEWAY_KEY_PREFIX: Final = "{cc}:gw:"
#: Seconds a gateway's report keys live without being refreshed.
REPORT_TTL_S: Final = 3600


class TerminalPusher(Protocol):
    """The live connections (gateway.connections.Connections)."""

    async def push_deny(self, deny: DenyList) -> None: ...

    def revoke(self, terminal_id: str) -> bool: ...


@dataclass
class ControlPlane:
    """The operator-facing side of one gateway process."""

    client: Redis
    deny: DenyList
    connections: TerminalPusher
    tariff: TariffHolder
    gateway_id: str

    async def start(self) -> None:
        """Load the deny list (before terminals connect)."""
        await self._reload_deny()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._follow_channel)
            tg.start_soon(self._check_deny_version)

    # ------------------------------------------------------------------ the channel

    async def _follow_channel(self) -> None:
        delay = 0.1
        while True:
            try:
                async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CONTROL_CHANNEL)
                    delay = 0.1
                    # Anything published while unsubscribed is picked up here.
                    await self._catch_up_deny()
                    async for message in pubsub.listen():
                        await self._on_message(message.get("data"))
            except (rexc.RedisError, OSError) as exc:
                log.warning("control channel lost (%s); again in %.1f s", exc, delay)
            await anyio.sleep(delay)
            delay = min(RESUBSCRIBE_MAX_S, delay * 2)

    async def _on_message(self, data: object) -> None:
        if not isinstance(data, bytes) or len(data) > MAX_CONTROL_MESSAGE:
            log.error("control message ignored: not bytes or too large")
            return
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.error("control message ignored: not JSON")
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "deny":
            ver, op, card = msg.get("ver"), msg.get("op"), msg.get("card")
            if not (isinstance(ver, int) and op in ("add", "remove") and isinstance(card, str)):
                log.error("deny message ignored: %r", msg)
                return
            if not self.deny.apply(ver, op, card):
                await self._catch_up_deny()
            await self.connections.push_deny(self.deny)
        elif kind == "revoke":
            terminal = msg.get("terminal")
            if isinstance(terminal, str) and self.connections.revoke(terminal):
                log.warning("terminal %s revoked: connection closed", terminal)
        elif kind == "tariff":
            path = msg.get("path")
            if isinstance(path, str):
                await self._load_tariff(Path(path))
        else:
            log.error("control message of unknown type ignored: %r", kind)

    # ------------------------------------------------------------------ the deny list

    async def _check_deny_version(self) -> None:
        while True:
            await anyio.sleep(DENY_CHECK_S)
            try:
                raw = await self.client.get(DENY_VERSION_KEY)
            except (rexc.RedisError, OSError):
                continue  # the store's own errors are reported on the tap path
            if int(raw or 0) != self.deny.version:
                await self._catch_up_deny()
                await self.connections.push_deny(self.deny)

    async def _catch_up_deny(self) -> None:
        try:
            changes = await deny_changes_since(self.client, self.deny.version)
            if changes and changes[0][0] != self.deny.version + 1:
                await self._reload_deny()
                return
            for ver, op, card in changes:
                if not self.deny.apply(ver, op, card):
                    await self._reload_deny()
                    return
        except (rexc.RedisError, OSError) as exc:
            log.warning("deny list catch-up failed: %s", exc)

    async def _reload_deny(self) -> None:
        version, cards, changes = await load_deny(self.client)
        self.deny.load(version, cards, changes)

    # ------------------------------------------------------------------ tariffs

    async def _load_tariff(self, path: Path) -> None:
        report: dict[str, object]
        old_path = self.tariff.path
        self.tariff.path = path
        try:
            new = await anyio.to_thread.run_sync(self.tariff.reload)
            report = {"ok": True, "version": new.version, "path": str(path)}
        except TariffError as exc:
            self.tariff.path = old_path
            report = {"ok": False, "error": str(exc)[:500], "path": str(path)}
        try:
            key = f"{GATEWAY_KEY_PREFIX}{self.gateway_id}:tariff"
            await self.client.set(key, orjson.dumps(report), ex=REPORT_TTL_S)
        except (rexc.RedisError, OSError) as exc:
            log.warning("tariff reload report not written: %s", exc)
