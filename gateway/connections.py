"""The live terminal connections of one gateway process, by terminal id: claiming a terminal
id, finding idle ones, pushing deny list changes to all, closing a revoked terminal's."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.deny_list import DenyList
from gateway.session import Phase, TerminalSession
from gateway.wire import protocol as wire
from gateway.wire.ws_server import WsConnection


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class _Conn:
    session: TerminalSession
    ws: WsConnection


class Connections:
    """Live authenticated terminals of this process, by terminal id.

    A second connection for a terminal id is refused while the first is alive; a first
    connection silent for longer than the idle limit is taken as dead and replaced, so a bus
    validator that lost its mobile link can come back before TCP notices.
    """

    def __init__(self, stale_after_ms: int) -> None:
        self._by_id: dict[str, _Conn] = {}
        self._ws: dict[TerminalSession, WsConnection] = {}
        self._stale_after_ms = stale_after_ms
        #: frames refused by the per-connection frame budget, over all connections
        self.frames_refused = 0

    def attach(self, session: TerminalSession, ws: WsConnection) -> None:
        self._ws[session] = ws

    def detach(self, session: TerminalSession) -> None:
        self._ws.pop(session, None)

    def claim(self, terminal_id: str, session: TerminalSession) -> bool:
        held = self._by_id.get(terminal_id)
        if held is not None and held.session is not session:
            if now_ms() - held.session.last_activity_ms < self._stale_after_ms:
                return False
            held.session.close()
            self._close_soon(held.ws)
        ws = self._ws.get(session)
        if ws is None:
            return False
        self._by_id[terminal_id] = _Conn(session, ws)
        return True

    def release(self, terminal_id: str, session: TerminalSession) -> None:
        held = self._by_id.get(terminal_id)
        if held is not None and held.session is session:
            del self._by_id[terminal_id]

    def _close_soon(self, ws: WsConnection) -> None:
        ws.abort()

    def idle(self, older_than_ms: int) -> list[tuple[WsConnection, str]]:
        """(connection, why) of authenticated connections silent for `older_than_ms`."""
        cutoff = now_ms() - older_than_ms
        return [
            (ws, f"no frame for {older_than_ms / 1000:g} s")
            for s, ws in self._ws.items()
            if s.phase is Phase.READY and s.last_activity_ms < cutoff
        ]

    def __len__(self) -> int:
        return len(self._ws)

    @property
    def ready(self) -> int:
        """Authenticated terminals."""
        return len(self._by_id)

    def terminals(self) -> list[TerminalSession]:
        """The authenticated sessions now."""
        return [c.session for c in self._by_id.values()]

    async def push_deny(self, deny: DenyList) -> None:
        """Bring every authenticated terminal's deny list to `deny.version`, at once, without
        waiting on any one terminal: a terminal whose connection is not writable now is left
        behind and caught up by its own session later (after its next heartbeat)."""
        version = deny.version
        by_base: dict[int, list[bytes]] = {}
        for conn in list(self._by_id.values()):
            session = conn.session
            base = session.deny_version
            if base == version or session.phase is not Phase.READY:
                continue
            frames = by_base.get(base)
            if frames is None:
                frames = by_base[base] = await deny.frames_for(base)
            if deny.version != version:
                return  # overtaken by the next change: its own push continues from here
            if all(conn.ws.send_nowait(f) for f in frames):
                session.deny_version = version

    def revoke(self, terminal_id: str) -> bool:
        """Close the terminal's connection now, telling it why; False if it is not here."""
        held = self._by_id.get(terminal_id)
        if held is None:
            return False
        held.ws.send_nowait(
            wire.encode_error(
                wire.TERMINAL_REVOKED, f"terminal {terminal_id} is revoked", fatal=True
            )
        )
        held.session.close()
        held.ws.start_close(1008, "terminal revoked")
        return True
