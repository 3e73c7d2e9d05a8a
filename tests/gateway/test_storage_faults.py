"""Transient storage states are answered, not crashed on: while a restarted Redis loads its AOF
(it answers `-LOADING` to everything) terminals get `unavailable`, never `internal`; the
gateway logs one line when the incident starts and one when it ends, not a traceback per tap;
the retried tap is charged once when Redis is back."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
import redis
from nacl.signing import SigningKey
from websockets.asyncio.client import connect

from gateway.config import GatewayConfig
from gateway.keys.signing import sign_proof
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import open_gateway
from gateway.store.redis_server import RedisServer
from gateway.wire import protocol as wire

#: A plausible terminal_time (the gateway refuses one far from its clock).
NOW_MS = time.time_ns() // 1_000_000

pytestmark = pytest.mark.anyio

GATE, CARD = "gate-loading", "card-loading"
#: Filler keys that make loading take seconds under `--key-load-delay`.
FILLER = 20_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _key() -> SigningKey:
    return SigningKey(hashlib.sha256(b"loading test terminal").digest())


def _fill_and_rewrite(url: str) -> None:
    """Filler keys, then an AOF rewrite: the base becomes an RDB file, whose loading
    `--key-load-delay` slows down."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for i in range(FILLER):
        pipe.set(f"filler:{i}", "x")
    pipe.execute()
    client.bgrewriteaof()
    deadline = time.monotonic() + 30
    while client.info("persistence")["aof_rewrite_in_progress"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.close()


async def _session(url: str) -> tuple[object, dict[str, object]]:
    ws = await connect(url, compression=None)
    await ws.send(wire.encode_hello(GATE).decode())
    first = wire.decode_gateway_message(await ws.recv())
    if first["type"] != "challenge":
        return ws, first
    sig = sign_proof(_key(), GATE, first["challenge"], first["key_id"])
    await ws.send(wire.encode_proof(GATE, first["challenge"], sig).decode())
    return ws, wire.decode_gateway_message(await ws.recv())


async def _tap_or_reconnect(url: str, ws: Any, seq: int) -> tuple[Any, int, dict[str, Any]]:
    """Send the tap "t-during" (same content every time); the answer, or, when the connection
    was closed, a new connection and what its handshake answered."""
    try:
        seq += 1
        await ws.send(wire.encode_tap(seq, "t-during", CARD, "fare", NOW_MS, {}).decode())
        return ws, seq, wire.decode_gateway_message(await ws.recv())
    except Exception:
        ws, welcome = await _session(url)
        if welcome["type"] == "welcome":
            seq = int(welcome["last_seq"])
        return ws, seq, welcome


async def test_loading_redis_is_unavailable_then_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "redis"
    server = RedisServer(data_dir=data).start()
    config = GatewayConfig(port=0, redis_url=server.url, data_dir=tmp_path, signer="local")
    try:
        async with open_gateway(config) as gw:
            await enroll_terminal(
                gw.store,
                GATE,
                bytes(_key().verify_key).hex(),
                kind="gate",
                operator="metro",
                network="METRO",
            )
            await issue_card(gw.store, CARD, balance=1_000)
            await anyio.to_thread.run_sync(_fill_and_rewrite, server.url)
            ws, welcome = await _session(gw.url)
            assert welcome["type"] == "welcome", welcome
            seq = int(welcome["last_seq"])

            server.kill()
            slow = RedisServer(
                data_dir=data,
                port=server.port,
                extra_args=(
                    "--key-load-delay",
                    "200",
                    "--loading-process-events-interval-bytes",
                    "1024",
                ),
            )
            server = slow.start(until_loaded=False)
            caplog.clear()
            caplog.set_level(logging.WARNING)
            answers: list[dict[str, object]] = []
            loading_seen = False
            for _ in range(40):  # taps and handshakes while Redis loads
                probe = redis.Redis.from_url(server.url)
                try:
                    probe.ping()
                except redis.BusyLoadingError:
                    loading_seen = True
                except redis.ConnectionError:
                    pass
                else:
                    break
                finally:
                    probe.close()
                ws, seq, answer = await _tap_or_reconnect(gw.url, ws, seq)
                answers.append(answer)
                await anyio.sleep(0.05)
            assert loading_seen, "Redis was never seen loading: the test proved nothing"
            codes = {str(a.get("code", a.get("result", a["type"]))) for a in answers}
            assert "internal" not in codes, answers
            assert codes <= {"unavailable", "approved", "welcome"}, codes
            assert "unavailable" in codes

            # Back: the same tap id is charged exactly once.
            await anyio.to_thread.run_sync(server.wait_until_loaded)
            for _ in range(50):
                ws, seq, auth = await _tap_or_reconnect(gw.url, ws, seq)
                if auth["type"] == "auth":
                    break
                await anyio.sleep(0.1)
            assert auth["type"] == "auth" and auth["result"] == "approved", auth
            rec = await gw.store.load_card(CARD)
            assert rec is not None and orjson.loads(rec.state)["balance"] == 750
            await ws.close()
    finally:
        server.stop()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks]  # storage trouble: no traceback
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) <= 8, warnings
    assert not any(CARD in w for w in warnings), warnings


def test_gateway_started_while_redis_loads_waits_for_it(tmp_path: Path) -> None:
    """A gateway (re)started while Redis still loads its AOF waits for it and then serves;
    it does not exit (measured before: `citycard chaos` stopped at a gateway that could not
    start right after a Redis restart)."""
    from gateway.store.redis_server import free_port
    from terminal_sim.run import start_gateway_process, stop_process

    data = tmp_path / "redis"
    server = RedisServer(data_dir=data).start()
    _fill_and_rewrite(server.url)
    server.kill()
    server = RedisServer(
        data_dir=data,
        port=server.port,
        extra_args=("--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024"),
    ).start(until_loaded=False)
    try:
        probe = redis.Redis.from_url(server.url)
        with pytest.raises(redis.BusyLoadingError):
            probe.ping()
        probe.close()
        proc = start_gateway_process(free_port(), server.url, tmp_path)
        try:
            assert proc.poll() is None
        finally:
            stop_process(proc)
    finally:
        server.stop()
