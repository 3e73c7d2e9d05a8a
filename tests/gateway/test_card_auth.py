"""Card authentication over real connections: a card issued with a card key must sign every
tap (counter + signature over card, terminal and tap id). A captured tap replayed on another
terminal's connection, a cryptogram moved to another tap id, a stale counter, a flipped bit, a
non-canonical signature and a missing cryptogram are all declined and charge nothing; the
genuine card's next tap is approved; a retry of a tap is still answered with its original."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from actors.card_auth import tap_cryptogram_bytes
from gateway.config import GatewayConfig
from gateway.keys.signing import sign_proof
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from gateway.wire import protocol as wire

pytestmark = pytest.mark.anyio

T1, T2, CARD, PLAIN, POOR = "gate-a", "gate-b", "card-secure", "card-plain", "card-poor"
CARD_KEY = SigningKey(hashlib.sha256(b"card key of card-secure").digest())
#: The order of the group of Ed25519 (S must be below it).
L = 2**252 + 27742317777372353535851937790883648493


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _tkey(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"terminal {name}".encode()).digest())


@pytest.fixture
async def gw(redis_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = GatewayConfig(port=0, redis_url=redis_url, data_dir=tmp_path, signer="local")
    async with open_gateway(config) as gateway:
        for tid in (T1, T2):
            await enroll_terminal(gateway.store, tid, bytes(_tkey(tid).verify_key).hex(),
                                  kind="gate", operator="metro", network="METRO")
        await issue_card(gateway.store, CARD, balance=1_000,
                         card_key=bytes(CARD_KEY.verify_key).hex())
        await issue_card(gateway.store, PLAIN, balance=1_000)
        await issue_card(gateway.store, POOR, balance=10,
                         card_key=bytes(CARD_KEY.verify_key).hex())
        yield gateway


class Term:
    def __init__(self, ws: ClientConnection, tid: str, seq: int) -> None:
        self.ws, self.tid, self.seq = ws, tid, seq

    async def send(self, frame: bytes) -> dict[str, Any]:
        await self.ws.send(frame.decode())
        return wire.decode_gateway_message(await self.ws.recv())

    def frame(self, tap_id: str, card: str, **fields: object) -> bytes:
        self.seq += 1
        return wire.encode_tap(self.seq, tap_id, card, "fare", time.time_ns() // 1_000_000,
                               fields)


async def term(gw: Gateway, tid: str) -> Term:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(tid).decode())
    ch = wire.decode_gateway_message(await ws.recv())
    sig = sign_proof(_tkey(tid), tid, ch["challenge"], ch["key_id"])
    await ws.send(wire.encode_proof(tid, ch["challenge"], sig).decode())
    welcome = wire.decode_gateway_message(await ws.recv())
    assert welcome["type"] == "welcome"
    return Term(ws, tid, welcome["last_seq"])


def cryptogram(terminal: str, tap_id: str, counter: int, card: str = CARD) -> dict[str, object]:
    sig = CARD_KEY.sign(tap_cryptogram_bytes(card, terminal, tap_id, counter)).signature
    return {"card_counter": counter, "card_sig": sig.hex()}


async def balance(gw: Gateway, card: str) -> int:
    rec = await gw.store.load_card(card)
    assert rec is not None
    return int(orjson.loads(rec.state)["balance"])


async def test_a_card_with_a_key_authenticates_every_tap(gw: Gateway) -> None:
    t1, t2 = await term(gw, T1), await term(gw, T2)
    refused = await t1.send(t1.frame("x-0", CARD))
    assert (refused["result"], refused["reason"]) == ("declined", "card_auth_required")

    good = t1.frame("x-1", CARD, **cryptogram(T1, "x-1", 1))
    first = await t1.send(good)
    assert first["result"] == "approved" and first["amount"] > 0
    fare = first["amount"]
    # The same frame again on T1: a retry, the original answer.
    await t1.ws.send(good.decode())
    assert wire.decode_gateway_message(await t1.ws.recv()) == first

    # Replay and forgery, every one declined, nothing charged.
    attempts = {
        # captured on T1, sent on T2's connection (same tap id, same cryptogram)
        "cross_terminal": t2.frame("x-1", CARD, **cryptogram(T1, "x-1", 1)),
        # a fresh cryptogram moved to another tap id
        "other_tap_id": t1.frame("x-2", CARD, **cryptogram(T1, "x-1", 2)),
        # an old counter, correctly signed (a clone behind the genuine card)
        "stale_counter": t1.frame("x-3", CARD, **cryptogram(T1, "x-3", 1)),
        # a flipped bit in the signature
        "flipped_bit": t1.frame("x-4", CARD, **{**cryptogram(T1, "x-4", 5),
                                                 "card_sig": _flip(cryptogram(T1, "x-4", 5))}),
        # S + L: the same signature made non-canonical
        "non_canonical": t1.frame(
            "x-5", CARD, **{**cryptogram(T1, "x-5", 6), "card_sig": _s_plus_l(cryptogram(
                T1, "x-5", 6))}),
        # the card's id with another key's signature
        "wrong_key": t1.frame("x-6", CARD, card_counter=7, card_sig=SigningKey(
            b"\x01" * 32).sign(tap_cryptogram_bytes(CARD, T1, "x-6", 7)).signature.hex()),
    }
    expected = {"cross_terminal": "card_auth_failed", "other_tap_id": "card_auth_failed",
                "stale_counter": "stale_card_counter", "flipped_bit": "card_auth_failed",
                "non_canonical": "card_auth_failed", "wrong_key": "card_auth_failed"}
    accepted = 0
    for name, frame in attempts.items():
        sender = t2 if name == "cross_terminal" else t1
        msg = await sender.send(frame)
        assert msg["type"] == "auth", (name, msg)
        accepted += msg["result"] == "approved"
        assert msg["reason"] == expected[name], (name, msg)
        assert msg["amount"] == 0
    assert accepted == 0
    assert await balance(gw, CARD) == 1_000 - fare

    # The genuine card goes on, with its next counter; a gap is fine.
    nxt = await t2.send(t2.frame("y-1", CARD, **cryptogram(T2, "y-1", 10)))
    assert nxt["result"] == "approved"
    assert await balance(gw, CARD) == 1_000 - 2 * fare


async def test_a_declined_tap_consumes_its_counter(gw: Gateway) -> None:
    t1 = await term(gw, T1)
    msg = await t1.send(t1.frame("d-1", POOR, **cryptogram(T1, "d-1", 3, POOR)))
    assert (msg["result"], msg["reason"]) == ("declined", "insufficient_funds")
    # Its cryptogram's counter is spent: the same counter under a new tap id is stale.
    again = await t1.send(t1.frame("d-2", POOR, **cryptogram(T1, "d-2", 3, POOR)))
    assert again["reason"] == "stale_card_counter"


async def test_cards_without_a_key_are_unchanged(gw: Gateway) -> None:
    t1 = await term(gw, T1)
    assert (await t1.send(t1.frame("p-1", PLAIN)))["result"] == "approved"
    # A cryptogram sent for a card without a key is ignored (nothing to check it with).
    msg = await t1.send(t1.frame("p-2", PLAIN, card_counter=1, card_sig="00" * 64))
    assert msg["type"] == "auth"


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"card_counter": 1}, "missing_field"), ({"card_sig": "00" * 64}, "missing_field"),
     ({"card_counter": 0, "card_sig": "00" * 64}, "bad_field"),
     ({"card_counter": 1, "card_sig": "AB" * 64}, "bad_field"),
     ({"card_counter": True, "card_sig": "00" * 64}, "bad_field")],
)
async def test_malformed_cryptograms_are_protocol_errors(
    gw: Gateway, fields: dict[str, object], code: str
) -> None:
    t1 = await term(gw, T1)
    msg = await t1.send(t1.frame("m-1", CARD, **fields))
    assert (msg["type"], msg["code"]) == ("error", code)


def _flip(c: dict[str, object]) -> str:
    sig = bytearray(bytes.fromhex(str(c["card_sig"])))
    sig[10] ^= 0x01
    return sig.hex()


def _s_plus_l(c: dict[str, object]) -> str:
    sig = bytes.fromhex(str(c["card_sig"]))
    s = int.from_bytes(sig[32:], "little") + L
    return (sig[:32] + s.to_bytes(32, "little")).hex()
