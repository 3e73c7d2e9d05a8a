"""A gateway and a control room on one real Redis, over real sockets on 127.0.0.1, with
operators of each role and a few terminals and cards: what the control-room tests share."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from nacl.signing import SigningKey
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from gateway.config import GatewayConfig
from gateway.keys.signing import sign_proof
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from gateway.wire import protocol as wire
from ops.control.operators import add_operator
from ops.control.room import ControlConfig, ControlRoom, open_control_room

#: A plausible terminal_time (the gateway refuses one far from its clock).
NOW_MS = time.time_ns() // 1_000_000

GATES = [f"gate-{i}" for i in range(4)]
BUSES = [f"bus-{i}" for i in range(2)]
SHOP = "shop-1"
CARDS = {"card-1": 5_000, "card-2": 5_000, "card-poor": 10}


def terminal_key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"control test terminal {name}".encode()).digest())


@dataclass
class World:
    gw: Gateway
    room: ControlRoom
    redis: Redis
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.room.port}"

    def http(self, role: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.AsyncClient(base_url=self.base, headers=headers, **kw)

    async def stream(self, role: str, request: dict[str, Any]) -> ClientConnection:
        ws = await connect(
            f"ws://127.0.0.1:{self.room.port}/ws", compression=None,
            additional_headers={"Authorization": f"Bearer {self.tokens[role]}"},
        )
        await ws.send(orjson.dumps(request).decode())
        return ws

    async def terminal(self, tid: str) -> Term:
        ws = await connect(self.gw.url, compression=None)
        await ws.send(wire.encode_hello(tid).decode())
        challenge = wire.decode_gateway_message(await ws.recv())
        sig = sign_proof(terminal_key(tid), tid, challenge["challenge"], challenge["key_id"])
        await ws.send(wire.encode_proof(tid, challenge["challenge"], sig).decode())
        welcome = wire.decode_gateway_message(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        return Term(ws, tid, welcome["last_seq"])


@dataclass
class Term:
    ws: ClientConnection
    terminal_id: str
    seq: int = 0
    n: int = 0

    async def tap(self, card: str, op: str = "fare", **fields: object) -> dict[str, Any]:
        """Send a tap; returns its answer (skipping deny list frames)."""
        self.seq += 1
        self.n += 1
        tap_id = f"{self.terminal_id}-t{self.n}-{self.seq}"
        await self.ws.send(
            wire.encode_tap(self.seq, tap_id, card, op, NOW_MS, fields).decode()
        )
        while True:
            msg = wire.decode_gateway_message(await self.ws.recv())
            if msg["type"] != wire.DENY_LIST:
                return msg


@asynccontextmanager
async def world(redis_url: str, tmp_path: Path, **room_options: Any) -> AsyncIterator[World]:
    """`room_options` go to the control room's config; a `tariff_path` among them is the
    gateway's tariff too."""
    gw_config = GatewayConfig(port=0, redis_url=redis_url, data_dir=tmp_path, heartbeat_s=5,
                              signer="local", gateway_id="gw-test",
                              tariff_path=room_options.get("tariff_path"))
    async with open_gateway(gw_config) as gw:
        for tid in GATES:
            await enroll_terminal(gw.store, tid, bytes(terminal_key(tid).verify_key).hex(),
                                  kind="gate", operator="metro", network="METRO",
                                  location=f"stop-{tid[-1]}")
        for tid in BUSES:
            await enroll_terminal(gw.store, tid, bytes(terminal_key(tid).verify_key).hex(),
                                  kind="bus", operator="buses", network="BUS")
        await enroll_terminal(gw.store, SHOP, bytes(terminal_key(SHOP).verify_key).hex(),
                              kind="retail", operator="bakery")
        for card, balance in CARDS.items():
            await issue_card(gw.store, card, balance=balance)
        config = ControlConfig(redis_url=redis_url, port=0, **room_options)
        async with open_control_room(config) as room:
            redis = Redis.from_url(redis_url)
            try:
                w = World(gw, room, redis)
                for role in ("viewer", "supervisor", "admin"):
                    w.tokens[role] = await add_operator(redis, f"{role}-op", role)
                yield w
            finally:
                await redis.aclose()


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    return dict(orjson.loads(await ws.recv()))
