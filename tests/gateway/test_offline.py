"""Offline terminals, over real connections against a real Redis: a terminal that asks for it
gets a signed offline policy after `welcome`; the taps it decided offline and signed with its
own key are uploaded as taps, decided for real at the time they happened, charged exactly once
(a repeated upload is answered with the original), and what it let through that the card could
not pay is journaled as uncollected and reported per operator. A forged or mis-signed offline
tap is refused and recorded nowhere."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from nacl.signing import SigningKey, VerifyKey
from websockets.asyncio.client import ClientConnection, connect

from gateway.config import GatewayConfig
from gateway.keys.signing import sign_proof, verify_offline_policy
from gateway.offline import OFFLINE_MAX_TAP_AMOUNT
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from gateway.wire import protocol as wire

pytestmark = pytest.mark.anyio

GATE, SHOP = "gate-off", "shop-off"
RICH, POOR, NOBODY = "card-rich", "card-poor", "card-nobody"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _key(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"offline terminal {name}".encode()).digest())


@pytest.fixture(params=["local", "keyholder"])
async def gw(
    redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Gateway]:
    # The key holder signs only the domains it knows: the offline policy is one of them.
    config = GatewayConfig(port=0, redis_url=redis_url, data_dir=tmp_path, signer=request.param)
    async with open_gateway(config) as gateway:
        await enroll_terminal(gateway.store, GATE, bytes(_key(GATE).verify_key).hex(),
                              kind="gate", operator="metro", network="METRO")
        await enroll_terminal(gateway.store, SHOP, bytes(_key(SHOP).verify_key).hex(),
                              kind="retail", operator="bakery")
        await issue_card(gateway.store, RICH, balance=10_000)
        await issue_card(gateway.store, POOR, balance=10)
        yield gateway


async def connect_offline(gw: Gateway, tid: str) -> tuple[ClientConnection, int, dict[str, Any]]:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(tid, offline=True).decode())
    ch = wire.decode_gateway_message(await ws.recv())
    await ws.send(wire.encode_proof(tid, ch["challenge"],
                                    sign_proof(_key(tid), tid, ch["challenge"], ch["key_id"])
                                    ).decode())
    welcome = wire.decode_gateway_message(await ws.recv())
    assert welcome["type"] == "welcome"
    policy = wire.decode_gateway_message(await ws.recv())
    assert policy["type"] == "offline_policy", policy
    return ws, welcome["last_seq"], policy


def offline_fields(tid: str, tap_id: str, card: str, op: str, when: int, result: str,
                   amount: int, key: SigningKey | None = None) -> dict[str, object]:
    signed = wire.offline_tap_bytes(tid, tap_id, card, op, when, result, amount)
    sig = (key or _key(tid)).sign(signed).signature.hex()
    return {"offline_result": result, "offline_amount": amount, "offline_sig": sig}


async def journal(gw: Gateway) -> list[dict[str, str]]:
    return [e for _, e in await gw.store.read_journal(count=1000) if e.get("op") == "commit"]


async def test_offline_policy_is_signed_and_taps_are_settled_once(gw: Gateway) -> None:
    ws, seq, policy = await connect_offline(gw, GATE)
    keys = {gw.authority.key_id: VerifyKey(bytes.fromhex(gw.authority.signer.public_key_hex))}
    fields = wire.offline_policy_from_message(policy)
    assert verify_offline_policy(keys, fields, policy["sig"])
    assert dict(fields.fares)["METRO"] > 0 and fields.max_tap_amount == OFFLINE_MAX_TAP_AMOUNT
    assert not verify_offline_policy(keys, type(fields)(
        fields.key_id, fields.version, fields.gateway_time, fields.max_tap_amount + 1,
        fields.max_queue_taps, fields.max_queue_total, fields.max_age_ms, fields.fares),
        policy["sig"])
    fare = dict(fields.fares)["METRO"]

    now = time.time_ns() // 1_000_000
    when = now - 2 * 3600 * 1000  # two hours ago, while the gate was offline
    uploads = [
        ("o-1", RICH, "approved"),  # paid for real
        ("o-2", POOR, "approved"),  # let through, cannot pay: uncollected
        ("o-3", NOBODY, "approved"),  # an unknown card let through: uncollected
        ("o-4", RICH, "declined"),  # the gate refused it offline (deny list): no risk
    ]
    answers: dict[str, dict[str, Any]] = {}
    for i, (tap_id, card, result) in enumerate(uploads):
        seq += 1
        frame = wire.encode_tap(seq, tap_id, card, "fare", when + i * 60_000,
                                offline_fields(GATE, tap_id, card, "fare", when + i * 60_000,
                                               result, fare))
        await ws.send(frame.decode())
        answers[tap_id] = wire.decode_gateway_message(await ws.recv())
        # The upload repeated (the connection dropped before the answer): the original.
        await ws.send(frame.decode())
        assert wire.decode_gateway_message(await ws.recv()) == answers[tap_id]
    assert answers["o-1"]["result"] == "approved" and answers["o-1"]["amount"] == fare
    assert answers["o-2"]["reason"] == "insufficient_funds"
    assert answers["o-3"]["reason"] == "unknown_card"
    # Decided as of the time it happened, signed at the time the gateway decided it.
    assert answers["o-1"]["gateway_time"] >= now
    entries = {e["tap"]: e for e in await journal(gw)}
    assert set(entries) == {"o-1", "o-2", "o-3", "o-4"}
    assert "uncollected" not in entries["o-1"] and "uncollected" not in entries["o-4"]
    assert int(entries["o-2"]["uncollected"]) == int(entries["o-3"]["uncollected"]) == fare
    rec = await gw.store.load_card(RICH)
    assert rec is not None
    # o-4 was declined offline, but the gateway's own decision stands (and it had funds).
    charged = fare + answers["o-4"]["amount"]
    assert orjson.loads(rec.state)["balance"] == 10_000 - charged
    await ws.close()

    from ops.reports.offline import day_offline

    # Reported (like cleared) on the day the taps reached the gateway; tap_time says when.
    assert int(entries["o-1"]["tap_time"]) == when and int(entries["o-1"]["time"]) >= now
    day = datetime.fromtimestamp(int(entries["o-1"]["time"]) / 1000, UTC).date()
    report = await day_offline(gw.store, day, "UTC", OFFLINE_MAX_TAP_AMOUNT)
    line = report.by_operator["metro"]
    assert (line.taps, line.approved_offline, line.uncollected_taps) == (4, 3, 2)
    assert (line.uncollected, line.charged) == (2 * fare, fare)


async def test_forged_offline_taps_are_refused_and_not_recorded(gw: Gateway) -> None:
    ws, seq, _ = await connect_offline(gw, SHOP)
    now = time.time_ns() // 1_000_000
    bad = [
        # signed by another key (a forged queue)
        offline_fields(SHOP, "f-1", RICH, "purchase", now, "approved", 100,
                       key=SigningKey(b"\x02" * 32)),
        # signed for another amount than it claims
        {**offline_fields(SHOP, "f-1", RICH, "purchase", now, "approved", 100),
         "offline_amount": 1},
        # signed as another terminal's tap
        offline_fields(GATE, "f-1", RICH, "purchase", now, "approved", 100),
    ]
    for fields in bad:
        seq += 1
        await ws.send(wire.encode_tap(seq, "f-1", RICH, "purchase", now,
                                      {"amount": 100, **fields}).decode())
        err = wire.decode_gateway_message(await ws.recv())
        assert (err["type"], err["code"]) == ("error", "bad_offline_tap"), err
    assert await journal(gw) == []
    # The genuine one, same tap id: accepted (the refusals recorded nothing).
    seq += 1
    await ws.send(wire.encode_tap(seq, "f-1", RICH, "purchase", now, {
        "amount": 100, **offline_fields(SHOP, "f-1", RICH, "purchase", now, "approved", 100)
    }).decode())
    ok = wire.decode_gateway_message(await ws.recv())
    assert ok["result"] == "approved" and ok["amount"] == 100
    # Too old for the policy's window: refused as implausible.
    seq += 1
    old = now - 8 * 24 * 3600 * 1000
    await ws.send(wire.encode_tap(seq, "f-2", RICH, "purchase", old, {
        "amount": 100, **offline_fields(SHOP, "f-2", RICH, "purchase", old, "approved", 100)
    }).decode())
    assert wire.decode_gateway_message(await ws.recv())["code"] == "implausible_time"
    await ws.close()


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"offline_result": "approved"}, "missing_field"),
     ({"offline_result": "maybe", "offline_amount": 1, "offline_sig": "00" * 64}, "bad_field"),
     ({"offline_result": "approved", "offline_amount": -1, "offline_sig": "00" * 64},
      "bad_field"),
     ({"offline_amount": 1, "offline_sig": "00" * 64}, "missing_field")],
)
def test_offline_fields_are_checked_by_the_decoder(fields: dict[str, object], code: str) -> None:
    with pytest.raises(wire.ProtocolError) as err:
        wire.decode_terminal_message(wire.encode_tap(1, "t", "c", "fare", 1, fields))
    assert err.value.code == code


def test_terminals_that_do_not_ask_get_no_policy_frame() -> None:
    assert b"offline" not in wire.encode_hello("gate-1")
    assert wire.decode_terminal_message(wire.encode_hello("gate-1", offline=True)) == wire.Hello(
        "gate-1", 0, True)
