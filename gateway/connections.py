"""The live terminal connections of one gateway process, by terminal id."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.session import Phase, TerminalSession
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

    def idle(self, older_than_ms: int, handshake_ms: int) -> list[WsConnection]:
        """Connections silent for `older_than_ms`, or still unauthenticated after
        `handshake_ms`."""
        now = now_ms()
        return [
            ws
            for s, ws in self._ws.items()
            if s.last_activity_ms < now - older_than_ms
            or (s.phase is not Phase.READY and s.connected_ms < now - handshake_ms)
        ]

    def __len__(self) -> int:
        return len(self._ws)
