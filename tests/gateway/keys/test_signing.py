"""Ed25519 signing: authorisations, proofs, key ids, rotation and key files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gateway.keys.signing import (
    GatewaySigner,
    key_id_for,
    load_or_create_signing_key,
    load_signing_key,
    save_signing_key,
    sign_proof,
    trusted_keys,
    verify_auth,
    verify_proof,
)
from gateway.wire.protocol import AuthFields

CHALLENGE = "5a" * 32


def signer_from(label: str) -> GatewaySigner:
    return GatewaySigner(SigningKey(hashlib.sha256(label.encode()).digest()))


@pytest.fixture
def signer() -> GatewaySigner:
    return signer_from("gateway key 1")


def fields_for(signer: GatewaySigner, **overrides: object) -> AuthFields:
    fields = AuthFields(
        key_id=signer.key_id,
        terminal_id="gate-0001",
        seq=42,
        tap_id="gate-0001:000042",
        card="card-0042",
        result="approved",
        reason="ok",
        amount=250,
        balance=1750,
        currency="EUR",
        gateway_time=1_767_225_600_512,
    )
    return dataclasses.replace(fields, **overrides)  # type: ignore[arg-type]


def test_key_id() -> None:
    pub = bytes(SigningKey(b"\x07" * 32).verify_key)
    kid = key_id_for(pub)
    assert kid == "k" + hashlib.sha256(pub).hexdigest()[:16]
    assert len(kid) == 17
    with pytest.raises(ValueError):
        key_id_for(b"short")


def test_signer_attributes(signer: GatewaySigner) -> None:
    assert signer.public_key_hex == bytes(signer.verify_key).hex()
    assert signer.key_id == key_id_for(bytes(signer.verify_key))


def test_sign_verify_roundtrip(signer: GatewaySigner) -> None:
    fields = fields_for(signer)
    sig = signer.sign_auth(fields)
    assert len(sig) == 128 and sig == sig.lower()
    assert verify_auth({signer.key_id: signer.verify_key}, fields, sig)
    # Deterministic, and identical to PyNaCl's high-level API.
    assert sig == signer.sign_auth(fields)
    from gateway.wire.protocol import auth_bytes

    assert sig == signer.signing_key.sign(auth_bytes(fields)).signature.hex()


TAMPERED: dict[str, object] = {
    "key_id": None,  # filled in below: another known key id
    "terminal_id": "gate-0002",
    "seq": 43,
    "tap_id": "gate-0001:000043",
    "card": "card-0043",
    "result": "declined",
    "reason": "repeat_tap",
    "amount": 25,
    "balance": 17500,
    "currency": "CHF",
    "gateway_time": 1_767_225_600_513,
}


def test_tampering_any_signed_field_breaks_verification(signer: GatewaySigner) -> None:
    other = signer_from("gateway key 2")
    keys = trusted_keys([signer.public_key_hex, other.public_key_hex])
    fields = fields_for(signer)
    sig = signer.sign_auth(fields)
    assert {f.name for f in dataclasses.fields(AuthFields)} == set(TAMPERED)
    for name, value in TAMPERED.items():
        changed = fields_for(signer, **{name: value or other.key_id})
        assert changed != fields
        assert not verify_auth(keys, changed, sig), name


def test_bad_signatures_are_rejected_not_raised(signer: GatewaySigner) -> None:
    keys = {signer.key_id: signer.verify_key}
    fields = fields_for(signer)
    sig = signer.sign_auth(fields)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in [flipped, "", "zz" * 64, sig[:-2], sig + "00", "00" * 64]:
        assert not verify_auth(keys, fields, bad)
    # Fields that cannot be encoded canonically are simply not valid.
    assert not verify_auth(keys, dataclasses.replace(fields, reason="o\nk"), sig)


def test_unknown_key_id_is_not_valid(signer: GatewaySigner) -> None:
    fields = fields_for(signer)
    sig = signer.sign_auth(fields)
    other = signer_from("gateway key 2")
    assert not verify_auth({}, fields, sig)
    assert not verify_auth({other.key_id: other.verify_key}, fields, sig)
    # A key filed under the wrong id does not help either: the id names the key.
    assert not verify_auth({signer.key_id: other.verify_key}, fields, sig)


def test_sign_auth_refuses_foreign_key_id(signer: GatewaySigner) -> None:
    with pytest.raises(ValueError):
        signer.sign_auth(fields_for(signer, key_id="k0000000000000000"))


def test_rotation_trusted_set() -> None:
    old, new = signer_from("gateway key 1"), signer_from("gateway key 2")
    keys = trusted_keys([old.public_key_hex, new.public_key_hex])
    assert set(keys) == {old.key_id, new.key_id}
    for s in (old, new):
        fields = fields_for(s)
        assert verify_auth(keys, fields, s.sign_auth(fields))
    # After the old key is dropped, its authorisations no longer verify.
    only_new = trusted_keys([new.public_key_hex])
    old_fields = fields_for(old)
    assert not verify_auth(only_new, old_fields, old.sign_auth(old_fields))


def test_proof_roundtrip() -> None:
    terminal = SigningKey(hashlib.sha256(b"terminal").digest())
    gw = signer_from("gateway key 1")
    sig = sign_proof(terminal, "gate-0001", CHALLENGE, gw.key_id)
    vk = terminal.verify_key
    assert verify_proof(vk, "gate-0001", CHALLENGE, gw.key_id, sig)
    assert not verify_proof(vk, "gate-0002", CHALLENGE, gw.key_id, sig)
    assert not verify_proof(vk, "gate-0001", "6b" * 32, gw.key_id, sig)
    assert not verify_proof(vk, "gate-0001", CHALLENGE, "k0000000000000000", sig)
    assert not verify_proof(
        SigningKey.generate().verify_key, "gate-0001", CHALLENGE, gw.key_id, sig
    )
    assert not verify_proof(vk, "gate-0001", CHALLENGE, gw.key_id, "00" * 64)
    assert not verify_proof(vk, "gate\n0001", CHALLENGE, gw.key_id, sig)


def test_proof_and_auth_domains_are_separate(signer: GatewaySigner) -> None:
    # A gateway signature over auth bytes is never a valid proof, whatever the fields.
    fields = fields_for(signer)
    sig = signer.sign_auth(fields)
    assert not verify_proof(signer.verify_key, fields.terminal_id, CHALLENGE, signer.key_id, sig)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_load_or_create_creates_0600_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "keys" / "gateway.key"
    key = load_or_create_signing_key(path)
    assert path.exists() and mode_of(path) == 0o600
    assert bytes(load_or_create_signing_key(path)) == bytes(key)
    assert bytes(load_signing_key(path)) == bytes(key)
    assert path.read_text().strip() == bytes(key).hex()
    assert [p.name for p in path.parent.iterdir()] == ["gateway.key"]  # no temp files left


def test_created_key_is_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "gateway.key"
        load_or_create_signing_key(path)
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "k" / "gateway.key"
    first, second = SigningKey.generate(), SigningKey.generate()
    save_signing_key(first, path)
    save_signing_key(second, path)
    assert mode_of(path) == 0o600
    assert bytes(load_signing_key(path)) == bytes(second)
    assert [p.name for p in path.parent.iterdir()] == ["gateway.key"]


def test_load_tolerates_whitespace_and_rejects_garbage(tmp_path: Path) -> None:
    seed = b"\x11" * 32
    path = tmp_path / "key"
    path.write_text(f"  {seed.hex()}\n\n")
    assert bytes(load_signing_key(path)) == seed
    for bad in ["", "zz", "ab" * 31, "ab" * 33]:
        path.write_text(bad)
        with pytest.raises(ValueError):
            load_signing_key(path)
    with pytest.raises(FileNotFoundError):
        load_signing_key(tmp_path / "missing")


def test_concurrent_creation_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "gateway.key"
    results: list[bytes] = []
    lock = threading.Lock()

    def create() -> None:
        key = bytes(load_or_create_signing_key(path))
        with lock:
            results.append(key)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert bytes(load_signing_key(path)) == results[0]
