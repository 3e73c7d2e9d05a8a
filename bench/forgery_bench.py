"""Replay and forgery attempts at volume against a real gateway (its own Redis, real websocket
connections on 127.0.0.1), each kind N times, counting how many were accepted (must be 0) and
checking that no balance moved but the genuine taps':

- a `proof` recorded on one connection replayed on another; a proof with a flipped bit; a
  non-canonical proof signature (S + L); a revoked terminal's correct proof;
- a keyed card's tap replayed on another terminal's connection (same tap id, same cryptogram);
  its cryptogram under another tap id; a stale counter; a flipped bit; S + L;
- a forged offline tap (another key); a tap with a `terminal_time` a year ahead.

    python bench/forgery_bench.py --each 200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from nacl.signing import SigningKey
from websockets.asyncio.client import ClientConnection, connect

from actors.card_auth import tap_cryptogram_bytes
from gateway.config import GatewayConfig
from gateway.keys.signing import sign_proof
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from gateway.store.redis_server import RedisServer
from gateway.wire import protocol as wire

L = 2**252 + 27742317777372353535851937790883648493
T1, T2, REVOKED, CARD = "bench-t1", "bench-t2", "bench-revoked", "bench-card"
CARD_KEY = SigningKey(hashlib.sha256(b"bench card key").digest())


def tkey(t: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"bench terminal {t}".encode()).digest())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def flip(hex_sig: str) -> str:
    b = bytearray(bytes.fromhex(hex_sig))
    b[7] ^= 0x10
    return b.hex()


def s_plus_l(hex_sig: str) -> str:
    b = bytes.fromhex(hex_sig)
    return (b[:32] + (int.from_bytes(b[32:], "little") + L).to_bytes(32, "little")).hex()


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return wire.decode_gateway_message(await ws.recv())


async def hello(gw: Gateway, tid: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(gw.url, compression=None)
    await ws.send(wire.encode_hello(tid).decode())
    return ws, await recv(ws)


async def session(gw: Gateway, tid: str) -> tuple[ClientConnection, int]:
    ws, ch = await hello(gw, tid)
    await ws.send(wire.encode_proof(tid, ch["challenge"], sign_proof(
        tkey(tid), tid, ch["challenge"], ch["key_id"])).decode())
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, int(welcome["last_seq"])


async def proof_attempt(gw: Gateway, kind: str) -> str:
    """One forged handshake; the answer's type or code."""
    tid = REVOKED if kind == "revoked_key" else T1
    ws, ch = await hello(gw, tid)
    try:
        if ch["type"] != "challenge":
            return str(ch.get("code"))
        sig = sign_proof(tkey(tid), tid, ch["challenge"], ch["key_id"])
        challenge = ch["challenge"]
        if kind == "replayed_proof":  # recorded on another connection
            other, ch2 = await hello(gw, T2)
            await other.close()
            challenge = ch2["challenge"]
            sig = sign_proof(tkey(T1), T1, challenge, ch["key_id"])
        elif kind == "flipped_proof":
            sig = flip(sig)
        elif kind == "s_plus_l_proof":
            sig = s_plus_l(sig)
        await ws.send(wire.encode_proof(tid, challenge, sig).decode())
        msg = await recv(ws)
        return str(msg["type"] if msg["type"] == "welcome" else msg["code"])
    finally:
        await ws.close()


def cryptogram(tid: str, tap_id: str, counter: int) -> dict[str, object]:
    sig = CARD_KEY.sign(tap_cryptogram_bytes(CARD, tid, tap_id, counter)).signature.hex()
    return {"card_counter": counter, "card_sig": sig}


async def run(each: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(data_dir=Path(tmp) / "redis").start()
        try:
            config = GatewayConfig(port=0, redis_url=redis.url, data_dir=Path(tmp),
                                   signer="local", max_frames_per_s=10_000, frame_burst=10_000)
            async with open_gateway(config) as gw:
                return await _attack(gw, each)
        finally:
            redis.stop()


async def _attack(gw: Gateway, each: int) -> dict[str, Any]:
    for t in (T1, T2, REVOKED):
        await enroll_terminal(gw.store, t, bytes(tkey(t).verify_key).hex(), kind="retail",
                              operator="bakery")
    rec = await gw.store.get_terminal(REVOKED)
    assert rec is not None
    await gw.store.put_terminal(replace(rec, status="revoked"))
    await issue_card(gw.store, CARD, balance=10**9, card_key=bytes(CARD_KEY.verify_key).hex())
    outcomes: Counter[str] = Counter()
    accepted = 0
    started = time.perf_counter()
    for kind in ("replayed_proof", "flipped_proof", "s_plus_l_proof", "revoked_key"):
        for _ in range(each):
            answer = await proof_attempt(gw, kind)
            outcomes[f"{kind}:{answer}"] += 1
            accepted += answer == "welcome"
    t1, s1 = await session(gw, T1)
    t2, s2 = await session(gw, T2)
    genuine_charged = 0
    for i in range(each):
        counter = i + 1  # the genuine card's counter (refused attempts consume none)
        tap_id = f"g-{i}"
        fields = {"amount": 1, **cryptogram(T1, tap_id, counter)}
        s1 += 1
        frame = wire.encode_tap(s1, tap_id, CARD, "purchase", now_ms(), fields)
        await t1.send(frame.decode())
        ok = await recv(t1)
        assert ok.get("result") == "approved", ok
        genuine_charged += ok["amount"]
        attempts: list[tuple[str, ClientConnection, bytes]] = []
        s2 += 1
        attempts.append(("cross_terminal_replay", t2, wire.encode_tap(
            s2, tap_id, CARD, "purchase", now_ms(), fields)))
        s1 += 1
        attempts.append(("moved_cryptogram", t1, wire.encode_tap(
            s1, f"m-{i}", CARD, "purchase", now_ms(), fields)))
        s1 += 1
        attempts.append(("stale_counter", t1, wire.encode_tap(
            s1, f"s-{i}", CARD, "purchase", now_ms(),
            {"amount": 1, **cryptogram(T1, f"s-{i}", counter)})))
        c = cryptogram(T1, f"f-{i}", counter + 1)
        s1 += 1
        attempts.append(("flipped_cryptogram", t1, wire.encode_tap(
            s1, f"f-{i}", CARD, "purchase", now_ms(),
            {"amount": 1, **c, "card_sig": flip(str(c["card_sig"]))})))
        s1 += 1
        attempts.append(("s_plus_l_cryptogram", t1, wire.encode_tap(
            s1, f"l-{i}", CARD, "purchase", now_ms(),
            {"amount": 1, **c, "card_sig": s_plus_l(str(c["card_sig"]))})))
        when = now_ms()
        forged = SigningKey(hashlib.sha256(b"not the terminal").digest()).sign(
            wire.offline_tap_bytes(T1, f"o-{i}", CARD, "purchase", when, "approved", 1)
        ).signature.hex()
        s1 += 1
        attempts.append(("forged_offline_tap", t1, wire.encode_tap(
            s1, f"o-{i}", CARD, "purchase", when,
            {"amount": 1, "offline_result": "approved", "offline_amount": 1,
             "offline_sig": forged})))
        s1 += 1
        attempts.append(("year_ahead_clock", t1, wire.encode_tap(
            s1, f"y-{i}", CARD, "purchase", now_ms() + 365 * 86_400_000, {"amount": 1})))
        for kind, ws, frame in attempts:
            await ws.send(frame.decode())
            msg = await recv(ws)
            outcome = msg.get("reason") or msg.get("code")
            outcomes[f"{kind}:{outcome}"] += 1
            accepted += msg.get("result") == "approved"
    await t1.close()
    await t2.close()
    rec2 = await gw.store.load_card(CARD)
    assert rec2 is not None
    balance = orjson.loads(rec2.state)["balance"]
    attempts_n = sum(outcomes.values())
    return {
        "attempts": attempts_n,
        "accepted": accepted,
        "genuine_taps": each,
        "balance_moved_only_by_genuine": balance == 10**9 - genuine_charged,
        "wall_s": round(time.perf_counter() - started, 1),
        "outcomes": dict(sorted(outcomes.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--each", type=int, default=200)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(run(args.each)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
