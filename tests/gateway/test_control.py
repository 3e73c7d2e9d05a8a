"""The operator-facing side of a gateway, against a real Redis over real websockets: deny list
changes pushed at once to every connected terminal as signed frames (and caught up after a
reconnect, from the version the terminal says it holds), a revoked terminal's connection closed
at once, a tariff loaded when the control channel says so, and /metrics, /healthz, /readyz."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from nacl.signing import SigningKey, VerifyKey
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.config import GatewayConfig
from gateway.control import GATEWAY_KEY_PREFIX
from gateway.keys.signing import sign_proof
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from gateway.store.deny_store import change_deny, load_deny, publish_control
from gateway.wire import protocol as wire
from terminal_sim.deny_holder import DenyHolder

#: A plausible terminal_time (the gateway refuses one far from its clock).
NOW_MS = time.time_ns() // 1_000_000

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"test terminal {name}".encode()).digest())


GATES = [f"gate-{i}" for i in range(12)]


@pytest.fixture
async def gw(redis_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = GatewayConfig(
        port=0, redis_url=redis_url, data_dir=tmp_path, heartbeat_s=5, signer="local",
        metrics_port=0,
    )
    async with open_gateway(config) as gateway:
        for tid in GATES:
            await enroll_terminal(
                gateway.store, tid, bytes(_key(tid).verify_key).hex(), kind="gate",
                operator="metro", network="METRO",
            )
        for card in ("card-1", "card-2", "card-3"):
            await issue_card(gateway.store, card, balance=5_000)
        yield gateway


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def keys(gw: Gateway) -> dict[str, VerifyKey]:
    return {gw.authority.key_id: VerifyKey(bytes.fromhex(gw.authority.signer.public_key_hex))}


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return wire.decode_gateway_message(await ws.recv())


async def connect_terminal(gw: Gateway, tid: str, deny_version: int = 0) -> ClientConnection:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(tid, deny_version).decode())
    challenge = await recv(ws)
    sig = sign_proof(_key(tid), tid, challenge["challenge"], challenge["key_id"])
    await ws.send(wire.encode_proof(tid, challenge["challenge"], sig).decode())
    assert (await recv(ws))["type"] == "welcome"
    return ws


async def deny_frames(ws: ClientConnection, holder: DenyHolder, gw: Gateway, until: int) -> int:
    """Apply deny frames until the holder reaches version `until`; returns frames seen."""
    seen = 0
    with anyio.fail_after(5):
        while holder.version < until:
            msg = await recv(ws)
            assert msg["type"] == wire.DENY_LIST, msg
            seen += 1
            holder.receive(msg, keys(gw))
            assert holder.bad_signatures == 0
    return seen


async def test_a_block_reaches_every_connected_terminal_signed(gw: Gateway, redis: Redis) -> None:
    conns = [await connect_terminal(gw, tid) for tid in GATES]
    holders = [DenyHolder() for _ in conns]
    version, changed = await change_deny(redis, "card-1", "add")
    assert changed and version == 1
    for ws, holder in zip(conns, holders, strict=True):
        assert await deny_frames(ws, holder, gw, 1) == 1  # one delta frame each
        assert holder.cards == {"card-1"}
    # A second block and an unblock arrive as deltas, in order.
    await change_deny(redis, "card-2", "add")
    await change_deny(redis, "card-1", "remove")
    for ws, holder in zip(conns, holders, strict=True):
        await deny_frames(ws, holder, gw, 3)
        assert holder.cards == {"card-2"} and holder.version == 3
    # Adding a listed card changes nothing and announces nothing.
    assert await change_deny(redis, "card-2", "add") == (3, False)
    for ws in conns:
        await ws.close()


async def test_a_reconnecting_terminal_gets_what_it_missed(gw: Gateway, redis: Redis) -> None:
    for card in ("card-1", "card-2", "card-3"):
        await change_deny(redis, card, "add")
    await change_deny(redis, "card-3", "remove")
    with anyio.fail_after(5):
        while gw.deny.version < 4:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    # A new terminal (version 0) gets the whole list.
    holder = DenyHolder()
    ws = await connect_terminal(gw, GATES[0])
    await deny_frames(ws, holder, gw, 4)
    assert holder.cards == {"card-1", "card-2"}
    await ws.close()
    # One that held version 1 gets one delta from 1 to 4.
    old = DenyHolder()
    old.version, old.cards = 1, {"card-1"}
    ws = await connect_terminal(gw, GATES[1], deny_version=1)
    msg = await recv(ws)
    assert (msg["base_version"], msg["list_version"]) == (1, 4)
    assert old.receive(msg, keys(gw)) and old.cards == {"card-1", "card-2"}
    await ws.close()
    # One that is current gets nothing before its first answer.
    ws = await connect_terminal(gw, GATES[2], deny_version=4)
    await ws.send(wire.encode_heartbeat(1).decode())
    assert (await recv(ws))["type"] == wire.HEARTBEAT_ACK
    await ws.close()


async def test_a_big_list_comes_in_parts(gw: Gateway, redis: Redis) -> None:
    n = wire.DENY_PART_MAX_CARDS * 2 + 5
    for i in range(n):
        await change_deny(redis, f"lost-{i:04d}", "add")
    with anyio.fail_after(5):
        while gw.deny.version < n:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    holder = DenyHolder()
    ws = await connect_terminal(gw, GATES[3])
    assert await deny_frames(ws, holder, gw, n) == 3
    assert len(holder.cards) == n
    await ws.close()


async def test_a_missed_announcement_is_caught_up(gw: Gateway, redis: Redis) -> None:
    """A change whose announcement never came (written without publishing) reaches terminals
    through the periodic version check."""
    ws = await connect_terminal(gw, GATES[4])
    holder = DenyHolder()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr("{cc:deny}:ver")
        pipe.hset("{cc:deny}:cards", "card-3", 1)
        pipe.xadd("{cc:deny}:log", {"op": "add", "card": "card-3"}, id="1-1")
        await pipe.execute()
    with anyio.fail_after(10):
        while holder.version < 1:
            holder.receive(await recv(ws), keys(gw))
    assert holder.cards == {"card-3"}
    assert (await load_deny(redis))[0] == 1
    await ws.close()


async def test_revoking_closes_the_terminals_connection_at_once(
    gw: Gateway, redis: Redis
) -> None:
    victim = await connect_terminal(gw, GATES[5])
    witness = await connect_terminal(gw, GATES[6])
    rec = await gw.store.get_terminal(GATES[5])
    assert rec is not None
    from dataclasses import replace

    await gw.store.put_terminal(replace(rec, status="revoked"))
    assert await publish_control(redis, {"type": "revoke", "terminal": GATES[5]}) >= 1
    with anyio.fail_after(5):
        msg = await recv(victim)
        assert (msg["type"], msg["code"], msg["fatal"]) == ("error", "terminal_revoked", True)
        with pytest.raises(ConnectionClosed):
            await victim.recv()
    # The others carry on, and the revoked terminal cannot come back.
    await witness.send(wire.encode_tap(1, "w-1", "card-1", "fare", NOW_MS, {}).decode())
    assert (await recv(witness))["result"] == "approved"
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(GATES[5]).decode())
    assert (await recv(ws))["code"] == "terminal_revoked"
    await witness.close()


async def test_a_tariff_is_loaded_when_the_channel_says_so(
    gw: Gateway, redis: Redis, tmp_path: Path
) -> None:
    city = REPO / "tariffs" / "city-2026.json"
    await publish_control(redis, {"type": "tariff", "path": str(city)})
    key = f"{GATEWAY_KEY_PREFIX}{gw.config.gateway_id}:tariff"
    with anyio.fail_after(20):
        while (raw := await redis.get(key)) is None:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    report = orjson.loads(raw)
    assert report == {"ok": True, "version": "city-2026.2", "path": str(city)}
    assert gw.tariff.current.version == "city-2026.2"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    await redis.delete(key)
    await publish_control(redis, {"type": "tariff", "path": str(bad)})
    with anyio.fail_after(10):
        while (raw := await redis.get(key)) is None:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    assert orjson.loads(raw)["ok"] is False
    assert gw.tariff.current.version == "city-2026.2"  # the valid one stays


def grafana_metrics() -> set[str]:
    """Series names the shipped Grafana dashboard queries."""
    board = (REPO / "ops" / "grafana" / "citycard-dashboard.json").read_text()
    exprs = [t["expr"] for p in orjson.loads(board)["panels"] for t in p["targets"]]
    return {m for e in exprs for m in re.findall(r"citycard_[a-z_]+", e)}


async def test_metrics_move_with_taps_and_probes_answer(gw: Gateway) -> None:
    ws = await connect_terminal(gw, GATES[7])
    for i, card in enumerate(("card-1", "card-1", "unknown-card"), start=1):
        await ws.send(wire.encode_tap(i, f"m-{i}", card, "fare", NOW_MS, {}).decode())
        await recv(ws)
    base = f"http://127.0.0.1:{gw.metrics_port}"
    async with httpx.AsyncClient(base_url=base) as http:
        text = (await http.get("/metrics")).text
        assert 'citycard_taps_total{kind="gate",reason="ok",result="approved"} 1.0' in text
        assert 'citycard_taps_total{kind="gate",reason="repeat_tap",result="approved"} 1.0' in text
        assert 'citycard_declines_total{reason="unknown_card"} 1.0' in text
        assert "citycard_tap_latency_seconds_count 3.0" in text
        assert "citycard_terminals_connected 1.0" in text
        assert "citycard_redis_write_seconds_count" in text
        # Every gateway series the shipped Grafana dashboard queries is exported.
        exported = set(re.findall(r"^(citycard_[a-z_]+)", text, re.M))
        gateway_series = {m for m in grafana_metrics() if not m.startswith("citycard_control_")}
        assert gateway_series <= exported
        assert (await http.get("/healthz")).json() == {"status": "alive"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"redis": True, "signer": True}
    await ws.close()


async def test_keys_revoke_on_the_command_line_closes_the_live_connection(
    gw: Gateway, redis: Redis, redis_url: str
) -> None:
    """`citycard keys revoke T` (not only the control room) closes T's open connection on
    every gateway at once, and is audited."""
    import subprocess
    import sys

    victim = await connect_terminal(gw, GATES[7])
    run = await anyio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "ops.cli", "keys", "revoke", GATES[7], "--redis-url", redis_url,
         "--reason", "handheld reported stolen"],
        capture_output=True, text=True, timeout=60))
    assert run.returncode == 0, run.stderr
    assert "closed by 1 gateway(s)" in run.stdout
    with anyio.fail_after(5):
        msg = await recv(victim)
        assert (msg["type"], msg["code"]) == ("error", "terminal_revoked")
        with pytest.raises(ConnectionClosed):
            await victim.recv()
    from ops.control import audit

    log = await audit.export(redis, "jsonl", since_ms=0)
    last = orjson.loads(log.strip().splitlines()[-1])
    assert (last["operator"], last["action"], last["target"], last["result"]) == (
        "keys-cli", "revoke_terminal", GATES[7], "done")
    assert last["reason"] == "handheld reported stolen"
