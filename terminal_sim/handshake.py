"""The terminal side of the protocol's opening (hello → challenge → proof → welcome) on the lean
websocket client, shared by the fleet driver, the city driver and the benchmark."""

from __future__ import annotations

import asyncio
from typing import Any

from nacl.signing import SigningKey

from gateway.keys.signing import sign_proof
from gateway.wire import protocol as wire
from terminal_sim.wsclient import WsConnection

#: Seconds to wait for each of the gateway's two handshake answers.
HANDSHAKE_STEP_TIMEOUT_S = 10.0


async def authenticate(
    conn: WsConnection,
    terminal_id: str,
    key: SigningKey,
    deny_version: int = 0,
    offline: bool = False,
) -> dict[str, Any]:
    """Prove `terminal_id` holds `key`; returns the gateway's `welcome` (with `last_seq` and
    `heartbeat_s`). Raises ConnectionError when the gateway answers anything else.
    `deny_version` is the deny list version the terminal holds (see `deny_holder`); `offline`:
    ask for the offline policy (it follows `welcome`)."""
    conn.send_text(wire.encode_hello(terminal_id, deny_version, offline))
    challenge = wire.decode_gateway_message(
        await asyncio.wait_for(conn.recv(), HANDSHAKE_STEP_TIMEOUT_S)
    )
    if challenge["type"] != wire.CHALLENGE:
        raise ConnectionError(f"{terminal_id}: expected challenge, got {challenge}")
    sig = sign_proof(key, terminal_id, challenge["challenge"], challenge["key_id"])
    conn.send_text(wire.encode_proof(terminal_id, challenge["challenge"], sig))
    welcome = wire.decode_gateway_message(
        await asyncio.wait_for(conn.recv(), HANDSHAKE_STEP_TIMEOUT_S)
    )
    if welcome["type"] != wire.WELCOME:
        raise ConnectionError(f"{terminal_id}: expected welcome, got {welcome}")
    return welcome
