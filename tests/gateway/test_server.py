"""The gateway over real websocket connections on 127.0.0.1 against a real Redis: the tap path,
idempotent retries, and every kind of bad input the protocol names. Each bad input gets its
documented error code, nothing is charged, and the gateway and other terminals carry on."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from nacl.signing import SigningKey, VerifyKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.config import GatewayConfig
from gateway.keys.signing import sign_proof, verify_auth
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from gateway.wire import protocol as wire

#: A plausible terminal_time (the gateway refuses one far from its clock).
NOW_MS = time.time_ns() // 1_000_000

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio and websockets' server are asyncio-only


def _key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"test terminal {name}".encode()).digest())


GATE, SHOP, OTHER_GATE, REVOKED = "gate-1", "shop-1", "gate-2", "gate-revoked"
CARD, POOR_CARD, WITNESS_CARD = "card-1", "card-poor", "card-witness"


@pytest.fixture(params=["keyholder", "local"])
async def gw(
    redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Gateway]:
    config = GatewayConfig(
        port=0, redis_url=redis_url, data_dir=tmp_path, heartbeat_s=5, signer=request.param
    )
    async with open_gateway(config) as gateway:
        store = gateway.store
        for tid, kind, operator, network in (
            (GATE, "gate", "metro", "METRO"),
            (SHOP, "retail", "bakery", ""),
            (OTHER_GATE, "gate", "metro", "METRO"),
            (REVOKED, "gate", "metro", "METRO"),
        ):
            await enroll_terminal(
                store,
                tid,
                bytes(_key(tid).verify_key).hex(),
                kind=kind,
                operator=operator,
                network=network,
            )
        rec = await store.get_terminal(REVOKED)
        assert rec is not None
        from dataclasses import replace

        await store.put_terminal(replace(rec, status="revoked"))
        await issue_card(store, CARD, balance=1_000)
        await issue_card(store, POOR_CARD, balance=100)
        await issue_card(store, WITNESS_CARD, balance=10_000)
        yield gateway


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return wire.decode_gateway_message(await ws.recv())


@dataclass
class Term:
    ws: ClientConnection
    terminal_id: str
    seq: int = 0

    async def send(self, frame: bytes | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else frame.decode())

    async def tap(
        self, tap_id: str, card: str, op: str = "fare", seq: int | None = None, **fields: object
    ) -> dict[str, Any]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        await self.send(wire.encode_tap(seq, tap_id, card, op, NOW_MS, fields))
        return await recv(self.ws)


async def authenticate(gw: Gateway, terminal_id: str) -> Term:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(terminal_id).decode())
    challenge = await recv(ws)
    assert challenge["type"] == "challenge", challenge
    sig = sign_proof(_key(terminal_id), terminal_id, challenge["challenge"], challenge["key_id"])
    await ws.send(wire.encode_proof(terminal_id, challenge["challenge"], sig).decode())
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    return Term(ws, terminal_id, seq=welcome["last_seq"])


async def balance(gw: Gateway, card: str) -> int:
    rec = await gw.store.load_card(card)
    assert rec is not None
    return int(orjson.loads(rec.state)["balance"])


def verified(gw: Gateway, msg: dict[str, Any]) -> bool:
    keys = {gw.authority.key_id: VerifyKey(bytes.fromhex(gw.authority._signer.public_key_hex))}
    return verify_auth(keys, wire.auth_fields_from_message(msg), msg["sig"])


async def witness_taps_fine(gw: Gateway, tag: str) -> None:
    """Another terminal, on its own connection, is served normally."""
    other = await authenticate(gw, SHOP)
    try:
        auth = await other.tap(f"witness-{tag}", WITNESS_CARD, "purchase", amount=10)
        assert auth["result"] == "approved" and verified(gw, auth)
    finally:
        await other.ws.close()


async def closed(ws: ClientConnection) -> bool:
    try:
        await ws.recv()
    except ConnectionClosed:
        return True
    return False


async def test_fare_tap_approved_signed_and_durable(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    auth = await t.tap("t1", CARD)
    assert auth["type"] == "auth" and auth["result"] == "approved" and auth["reason"] == "ok"
    assert auth["amount"] == 250 and auth["balance"] == 750 and auth["currency"] == "EUR"
    assert (auth["terminal_id"], auth["tap_id"], auth["seq"]) == (GATE, "t1", t.seq)
    assert verified(gw, auth)
    assert await balance(gw, CARD) == 750


async def test_retried_tap_answered_identically_and_charged_once(gw: Gateway) -> None:
    t = await authenticate(gw, SHOP)
    await t.send(wire.encode_tap(1, "p1", CARD, "purchase", NOW_MS, {"amount": 300}))
    first = await t.ws.recv()
    # Same tap id and content, new seq, on the same connection ...
    await t.send(wire.encode_tap(2, "p1", CARD, "purchase", NOW_MS, {"amount": 300}))
    assert await t.ws.recv() == first
    await t.ws.close()
    # ... and on a new connection to a second gateway process with nothing in memory, as after
    # a restart: the original comes back from Redis.
    async with open_gateway(gw.config) as restarted:
        t2 = await authenticate(restarted, SHOP)
        assert t2.seq == 1  # welcome.last_seq: the highest committed seq (the retry wrote nothing)
        tap = wire.encode_tap(3, "p1", CARD, "purchase", NOW_MS, {"amount": 300})
        await t2.send(tap)
        assert await t2.ws.recv() == first
        await t2.ws.close()
    assert await balance(gw, CARD) == 700


async def test_retried_tap_id_with_changed_content_is_refused(gw: Gateway) -> None:
    t = await authenticate(gw, SHOP)
    assert (await t.tap("p2", CARD, "purchase", amount=100))["result"] == "approved"
    err = await t.tap("p2", CARD, "purchase", amount=999)
    assert err["type"] == "error" and err["code"] == "tap_id_reused" and not err["fatal"]
    err = await t.tap("p2", WITNESS_CARD, "purchase", amount=100)
    assert err["code"] == "tap_id_reused"
    assert await balance(gw, CARD) == 900 and await balance(gw, WITNESS_CARD) == 10_000
    # the connection goes on
    assert (await t.tap("p3", CARD, "purchase", amount=100))["result"] == "approved"


async def test_declines_are_signed_with_reasons(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    unknown = await t.tap("d1", "no-such-card")
    assert (unknown["result"], unknown["reason"]) == ("declined", "unknown_card")
    poor = await t.tap("d2", POOR_CARD)
    assert (poor["result"], poor["reason"], poor["amount"]) == ("declined", "insufficient_funds", 0)
    wrong_kind = await t.tap("d3", CARD, "purchase", amount=100)  # a gate is not a till
    assert (wrong_kind["result"], wrong_kind["reason"]) == ("declined", "unsupported_operation")
    assert all(verified(gw, m) for m in (unknown, poor, wrong_kind))
    assert await balance(gw, POOR_CARD) == 100 and await balance(gw, CARD) == 1_000


async def test_repeat_tap_at_same_gate_not_charged_twice(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    assert (await t.tap("r1", CARD))["amount"] == 250
    again = await t.tap("r2", CARD)
    assert (again["result"], again["reason"], again["amount"]) == ("approved", "repeat_tap", 0)
    assert await balance(gw, CARD) == 750


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("x" * (wire.MAX_FRAME_BYTES + 1), "frame_too_large"),
        ("{not json", "malformed"),
        ('{"v":1,"type":"launch_rockets"}', "unknown_type"),
        (
            '{"v":1,"type":"tap","tap_id":"m1","card":"card-1","op":"fare","terminal_time":1}',
            "missing_field",
        ),
        (
            '{"v":1,"type":"tap","seq":"7","tap_id":"m1","card":"card-1","op":"fare",'
            '"terminal_time":1}',
            "bad_field",
        ),
        (
            '{"v":1,"type":"tap","seq":true,"tap_id":"m1","card":"card-1","op":"fare",'
            '"terminal_time":1}',
            "bad_field",
        ),
        (
            '{"v":1,"type":"tap","seq":99,"tap_id":"m1","card":"card-1","op":"fly",'
            '"terminal_time":1}',
            "unknown_op",
        ),
        ('{"v":2,"type":"heartbeat","t":1}', "unsupported_version"),
    ],
)
async def test_bad_frames_after_authentication(gw: Gateway, frame: str, code: str) -> None:
    t = await authenticate(gw, GATE)
    await t.send(frame)
    err = await recv(t.ws)
    assert err["type"] == "error" and err["code"] == code, err
    if err["fatal"]:
        assert code in wire.ALWAYS_FATAL and await closed(t.ws)
    else:
        await t.send(wire.encode_heartbeat(5))
        assert (await recv(t.ws))["type"] == "heartbeat_ack"
    assert await balance(gw, CARD) == 1_000
    await witness_taps_fine(gw, code)


async def test_binary_frame_is_malformed(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    await t.ws.send(wire.encode_tap(1, "bin", CARD, "fare", 1))  # bytes: a binary frame
    err = await recv(t.ws)
    assert (err["code"], err["fatal"]) == ("malformed", False)
    assert await balance(gw, CARD) == 1_000


async def test_frame_beyond_transport_limit_closes_only_that_connection(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    await t.send("y" * (gw.config.max_ws_message + 1))
    assert await closed(t.ws)
    assert t.ws.close_code == 1009
    await witness_taps_fine(gw, "huge")


async def test_tap_before_authentication(gw: Gateway) -> None:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_tap(1, "early", CARD, "fare", 1).decode())
    err = await recv(ws)
    assert (err["code"], err["fatal"]) == ("not_authenticated", True)
    assert await closed(ws)
    assert await balance(gw, CARD) == 1_000
    await witness_taps_fine(gw, "early")


async def test_unknown_and_revoked_terminals(gw: Gateway) -> None:
    for tid, code in (("ghost-9", "unknown_terminal"), (REVOKED, "terminal_revoked")):
        ws = await connect(gw.url, compression=None)
        await ws.send(wire.encode_hello(tid).decode())
        err = await recv(ws)
        assert (err["code"], err["fatal"]) == (code, True)
        assert await closed(ws)


async def _hello(gw: Gateway, tid: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(tid).decode())
    return ws, await recv(ws)


async def test_bad_and_missing_proof_signature(gw: Gateway) -> None:
    ws, ch = await _hello(gw, GATE)
    wrong = sign_proof(_key("somebody else"), GATE, ch["challenge"], ch["key_id"])
    await ws.send(wire.encode_proof(GATE, ch["challenge"], wrong).decode())
    assert (await recv(ws))["code"] == "bad_proof"
    assert await closed(ws)

    ws, ch = await _hello(gw, GATE)
    await ws.send(
        orjson.dumps(
            {"v": 1, "type": "proof", "terminal_id": GATE, "challenge": ch["challenge"]}
        ).decode()
    )
    assert (await recv(ws))["code"] == "missing_field"
    assert await closed(ws)
    await witness_taps_fine(gw, "proof")


async def test_replayed_proof_from_another_connection_is_refused(gw: Gateway) -> None:
    ws1, ch1 = await _hello(gw, GATE)
    proof = wire.encode_proof(
        GATE, ch1["challenge"], sign_proof(_key(GATE), GATE, ch1["challenge"], ch1["key_id"])
    ).decode()
    await ws1.send(proof)
    assert (await recv(ws1))["type"] == "welcome"
    await ws1.close()
    # An eavesdropper replays the captured proof on a connection of its own.
    ws2, ch2 = await _hello(gw, GATE)
    assert ch2["challenge"] != ch1["challenge"]
    await ws2.send(proof)
    assert (await recv(ws2))["code"] == "bad_proof"
    assert await closed(ws2)
    # ... and a proof sent twice on the same connection is unexpected.
    t = await authenticate(gw, GATE)
    await t.send(proof)
    assert (await recv(t.ws))["code"] == "unexpected_message"


async def test_sequence_going_backwards_is_refused(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    assert (await t.tap("s1", CARD, seq=10))["result"] == "approved"
    err = await t.tap("s2", WITNESS_CARD, seq=9)
    assert (err["code"], err["fatal"], err["seq"], err["tap_id"]) == (
        "seq_out_of_order",
        False,
        9,
        "s2",
    )
    err = await t.tap("s3", WITNESS_CARD, seq=10)
    assert err["code"] == "seq_out_of_order"
    assert await balance(gw, WITNESS_CARD) == 10_000
    assert (await t.tap("s4", WITNESS_CARD, seq=11))["result"] == "approved"


async def test_second_connection_for_same_terminal_is_refused(gw: Gateway) -> None:
    first = await authenticate(gw, GATE)
    ws, ch = await _hello(gw, GATE)
    sig = sign_proof(_key(GATE), GATE, ch["challenge"], ch["key_id"])
    await ws.send(wire.encode_proof(GATE, ch["challenge"], sig).decode())
    err = await recv(ws)
    assert (err["code"], err["fatal"]) == ("already_connected", True)
    assert await closed(ws)
    assert (await first.tap("after-dup", CARD))["result"] == "approved"


async def test_heartbeat(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    await t.send(wire.encode_heartbeat(42))
    ack = await recv(t.ws)
    assert ack["type"] == "heartbeat_ack" and ack["t"] == 42


async def test_silent_and_unauthenticated_connections_are_closed(
    redis_url: str, tmp_path: Path
) -> None:
    config = GatewayConfig(
        port=0,
        redis_url=redis_url,
        data_dir=tmp_path,
        heartbeat_s=1,
        idle_heartbeats=1,
        handshake_timeout_s=0.2,
    )
    async with open_gateway(config) as gateway:
        await enroll_terminal(
            gateway.store,
            GATE,
            bytes(_key(GATE).verify_key).hex(),
            kind="gate",
            operator="metro",
            network="METRO",
        )
        mute = await connect(gateway.url, compression=None)  # never says hello
        t = await authenticate(gateway, GATE)  # authenticates, then falls silent
        # Each is told why (a fatal `timeout` error), then closed with 1008.
        for ws, why in ((mute, "no hello and proof within 0.2 s"), (t.ws, "no frame for 1 s")):
            err = await recv(ws)
            assert (err["type"], err["code"], err["fatal"]) == ("error", "timeout", True), err
            assert err["message"] == why
            assert await closed(ws)
            assert ws.close_code == 1008
        for _ in range(100):  # the server side ends its close handshake a moment later
            if len(gateway.connections) == 0:
                break
            await anyio.sleep(0.02)
        assert len(gateway.connections) == 0


async def test_storage_down_during_hello_is_a_clear_error(redis_url: str, tmp_path: Path) -> None:
    from gateway.store.redis_server import RedisServer

    server = RedisServer(data_dir=tmp_path / "private").start()
    config = GatewayConfig(port=0, redis_url=server.url, data_dir=tmp_path)
    try:
        async with open_gateway(config) as gateway:
            server.kill()
            ws = await connect(gateway.url, compression=None)
            await ws.send(wire.encode_hello(GATE).decode())
            err = await recv(ws)
            assert (err["code"], err["fatal"]) == ("unavailable", True)
            assert await closed(ws)
    finally:
        server.stop()


@pytest.mark.parametrize("gw", ["keyholder"], indirect=True)
async def test_key_holder_death_costs_one_retry_at_most(gw: Gateway) -> None:
    """Kill the key holder: a tap meanwhile is refused `unavailable` (nothing charged) or, once
    a new key holder is up, approved; the retry of a refused tap id is approved once."""
    from gateway.keys.keyholder import KeyholderSigner

    signer = gw.authority.signer
    assert isinstance(signer, KeyholderSigner) and signer._proc is not None
    signer._proc.kill()
    signer._proc.wait()
    t = await authenticate(gw, GATE)
    first = await t.tap("k1", CARD)
    if first["type"] == "error":
        assert first["code"] == "unavailable"
        assert await balance(gw, CARD) == 1_000
        first = await t.tap("k1", CARD, seq=t.seq)
    assert first["type"] == "auth" and first["result"] == "approved" and verified(gw, first)
    assert await balance(gw, CARD) == 750
    assert signer.stats()["restarts"] == 1
    await witness_taps_fine(gw, "keyholder")


def test_config_refuses_an_unknown_signer() -> None:
    with pytest.raises(ValueError, match="signer"):
        GatewayConfig(signer="hsm")


async def test_unsupported_operation_is_a_recorded_decline(gw: Gateway) -> None:
    """A gate sending `purchase` is declined `unsupported_operation` against the card (its
    balance, the tariff version) and the retry is the original answer, byte for byte."""
    t = await authenticate(gw, GATE)
    frame = wire.encode_tap(
        t.seq + 1, "unsup-1", CARD, "purchase", NOW_MS, {"amount": 10}
    ).decode()
    await t.send(frame)
    first = await t.ws.recv()
    await t.send(frame)  # the same tap, same seq: a retry
    again = await t.ws.recv()
    assert again == first
    msg = wire.decode_gateway_message(first)
    assert (msg["result"], msg["reason"]) == ("declined", "unsupported_operation")
    assert msg["balance"] == 1_000 and msg["amount"] == 0 and verified(gw, msg)
    assert msg["detail"]["tariff_version"] == gw.tariff.current.version != ""
    assert await balance(gw, CARD) == 1_000


async def test_a_retry_does_not_move_the_sequence_floor(gw: Gateway) -> None:
    """A retry is accepted whatever its seq and answered from its record; only new taps raise
    the floor, so the floor a connection enforces is the one the next welcome reports."""
    t = await authenticate(gw, GATE)
    base = t.seq
    first = await t.tap("floor-1", CARD, seq=base + 5)
    assert first["result"] == "approved"
    again = await t.tap("floor-1", CARD, seq=base + 100)  # retry with a high seq
    assert again == first
    nxt = await t.tap("floor-2", CARD, seq=base + 6)  # above the real floor: accepted
    assert nxt["type"] == "auth", nxt
    stale = await t.tap("floor-3", CARD, seq=base + 6)
    assert stale["code"] == "seq_out_of_order"
    await t.ws.close()
    t2 = await authenticate(gw, GATE)
    assert t2.seq == base + 6


async def test_retry_content_is_compared_as_sent(gw: Gateway) -> None:
    """Adding an optional field on a retry, even the terminal's own default network, makes it
    different content (docs/protocol.md section 7)."""
    t = await authenticate(gw, GATE)
    first = await t.tap("as-sent-1", CARD)
    assert first["result"] == "approved"
    changed = await t.tap("as-sent-1", CARD, network="METRO")
    assert changed["code"] == "tap_id_reused"
    assert await balance(gw, CARD) == 1_000 - first["amount"]


@pytest.mark.parametrize(
    "when",
    [0, NOW_MS - 8 * 24 * 3600 * 1000, NOW_MS + 2 * 3600 * 1000, NOW_MS + 365 * 24 * 3600 * 1000,
     2**63 - 1],
)
async def test_implausible_terminal_time_is_refused_and_not_recorded(
    gw: Gateway, when: int
) -> None:
    t = await authenticate(gw, GATE)
    t.seq += 1
    await t.send(wire.encode_tap(t.seq, "clock-1", CARD, "fare", when, {}))
    err = await recv(t.ws)
    assert (err["type"], err["code"], err["fatal"]) == ("error", "implausible_time", False)
    assert await balance(gw, CARD) == 1_000
    # Not recorded: the same tap id with a corrected clock is a new tap, charged once.
    t.seq += 1
    await t.send(wire.encode_tap(t.seq, "clock-1", CARD, "fare", NOW_MS, {}))
    ok = await recv(t.ws)
    assert ok["result"] == "approved" and verified(gw, ok)


async def test_plausible_edges_of_the_window_are_accepted(gw: Gateway) -> None:
    t = await authenticate(gw, GATE)
    now = time.time_ns() // 1_000_000
    for i, when in enumerate((now - 6 * 24 * 3600 * 1000, now + 30 * 60 * 1000)):
        t.seq += 1
        await t.send(wire.encode_tap(t.seq, f"edge-{i}", CARD, "fare", when, {}))
        assert (await recv(t.ws))["type"] == "auth"


async def test_a_flooding_terminal_is_slowed_and_others_are_served(
    redis_url: str, tmp_path: Path
) -> None:
    """Past its frame budget a connection's frames are answered `busy` unread; it stays
    connected, and another terminal is served meanwhile."""
    config = GatewayConfig(port=0, redis_url=redis_url, data_dir=tmp_path, signer="local",
                           max_frames_per_s=50, frame_burst=20, metrics_port=0)
    async with open_gateway(config) as gateway:
        for tid, kind in ((GATE, "gate"), (SHOP, "retail")):
            await enroll_terminal(gateway.store, tid, bytes(_key(tid).verify_key).hex(),
                                  kind=kind, operator="metro", network="METRO")
        await issue_card(gateway.store, WITNESS_CARD, balance=10_000)
        flood = await authenticate(gateway, GATE)
        for _ in range(200):
            await flood.send(wire.encode_heartbeat(1))
        answers = [await recv(flood.ws) for _ in range(200)]
        busy = [a for a in answers if a["type"] == "error"]
        assert busy and all((a["code"], a["fatal"]) == ("busy", False) for a in busy)
        assert 15 <= len(answers) - len(busy) < 120  # the burst (hello and proof took 2)
        await witness_taps_fine(gateway, "flood")
        await flood.send(wire.encode_heartbeat(2))  # still connected
        assert (await recv(flood.ws))["type"] in ("heartbeat_ack", "error")
        import httpx

        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics")).text
        refused = next(line for line in text.splitlines()
                       if line.startswith("citycard_frames_refused_total"))
        assert float(refused.split()[-1]) >= len(busy)
        assert "citycard_connections_unauthenticated 0.0" in text
