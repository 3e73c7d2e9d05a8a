"""The published test vectors: recomputed from the seeds, present verbatim in the vendor doc,
and verifiable (with PyNaCl, and with an independent Ed25519 implementation when available)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson
import pytest
from nacl.signing import SigningKey, VerifyKey

from gateway.keys.signing import (
    key_id_for,
    trusted_keys,
    verify_auth,
    verify_deny,
    verify_proof,
)
from gateway.wire import protocol as wire
from gateway.wire import vectors

DOC = vectors.DOC_PATH.read_text(encoding="utf-8")
PUBLISHED: dict[str, Any] = json.loads(vectors.JSON_PATH.read_text(encoding="utf-8"))


def test_json_matches_a_fresh_computation() -> None:
    assert vectors.vectors_json(vectors.build_vectors()) == vectors.JSON_PATH.read_text("utf-8")


def test_doc_generated_sections_are_current() -> None:
    assert vectors.update_document(DOC, vectors.build_vectors()) == DOC, (
        "docs/protocol.md is stale: run python -m gateway.wire.vectors"
    )


def test_check_mode_reports_fresh_files() -> None:
    assert vectors.main(["--check"]) == 0


def test_keys_derive_from_the_published_seeds() -> None:
    gw, term = PUBLISHED["gateway_key"], PUBLISHED["terminal_key"]
    for entry in (gw, term):
        seed = hashlib.sha256(entry["seed_label"].encode("ascii")).digest()
        assert seed.hex() == entry["seed_hex"]
        assert bytes(SigningKey(seed).verify_key).hex() == entry["public_key_hex"]
    assert key_id_for(bytes.fromhex(gw["public_key_hex"])) == gw["key_id"]
    assert term["seed_label"] == f"citycard test vector terminal {term['terminal_id']}"


def all_signatures_and_keys() -> list[str]:
    hs = PUBLISHED["handshake"]
    values = [
        PUBLISHED["gateway_key"]["public_key_hex"],
        PUBLISHED["gateway_key"]["seed_hex"],
        PUBLISHED["gateway_key"]["key_id"],
        PUBLISHED["terminal_key"]["public_key_hex"],
        PUBLISHED["terminal_key"]["seed_hex"],
        hs["challenge_hex"],
        hs["proof_sig"],
        hs["proof_bytes_hex"],
    ]
    for tap in PUBLISHED["taps"]:
        values += [tap["sig"], tap["auth_bytes_hex"]]
    values += [PUBLISHED["deny_list"]["sig"], PUBLISHED["deny_list"]["deny_bytes_hex"]]
    return values


@pytest.mark.parametrize("value", all_signatures_and_keys())
def test_signatures_and_keys_appear_verbatim_in_doc(value: str) -> None:
    assert value in DOC


def test_frames_appear_verbatim_in_doc() -> None:
    hs = PUBLISHED["handshake"]
    frames = [hs[k] for k in hs if k.endswith("_frame")]
    frames += [tap[k] for tap in PUBLISHED["taps"] for k in ("tap_frame", "auth_frame")]
    frames += list(PUBLISHED["other_frames"].values())
    frames.append(PUBLISHED["deny_list"]["frame"])
    for frame in frames:
        assert f"\n{frame}\n" in DOC, frame
    # Canonical bytes appear as escaped string literals.
    assert json.dumps(hs["proof_bytes"]) in DOC
    for tap in PUBLISHED["taps"]:
        assert json.dumps(tap["auth_bytes"]) in DOC


def test_proof_vector() -> None:
    hs = PUBLISHED["handshake"]
    term, gw = PUBLISHED["terminal_key"], PUBLISHED["gateway_key"]
    assert hs["challenge_hex"] == hashlib.sha256(hs["challenge_label"].encode()).hexdigest()
    proof = wire.proof_bytes(term["terminal_id"], hs["challenge_hex"], gw["key_id"])
    assert proof.decode("ascii") == hs["proof_bytes"]
    assert proof.hex() == hs["proof_bytes_hex"]
    vk = VerifyKey(bytes.fromhex(term["public_key_hex"]))
    assert verify_proof(vk, term["terminal_id"], hs["challenge_hex"], gw["key_id"], hs["proof_sig"])
    msg = wire.decode_terminal_message(hs["proof_frame"])
    assert msg == wire.Proof(term["terminal_id"], hs["challenge_hex"], hs["proof_sig"])
    assert wire.decode_terminal_message(hs["hello_frame"]) == wire.Hello(term["terminal_id"])
    challenge = wire.decode_gateway_message(hs["challenge_frame"])
    assert (challenge["challenge"], challenge["key_id"]) == (hs["challenge_hex"], gw["key_id"])
    welcome = wire.decode_gateway_message(hs["welcome_frame"])
    assert welcome["max_frame"] == wire.MAX_FRAME_BYTES and welcome["last_seq"] == 0


@pytest.mark.parametrize("tap", PUBLISHED["taps"], ids=lambda t: t["name"])
def test_tap_vectors(tap: dict[str, Any]) -> None:
    keys = trusted_keys([PUBLISHED["gateway_key"]["public_key_hex"]])
    fields = wire.AuthFields(**tap["auth_fields"])
    assert wire.auth_bytes(fields).decode("ascii") == tap["auth_bytes"]
    assert wire.auth_bytes(fields).hex() == tap["auth_bytes_hex"]
    assert verify_auth(keys, fields, tap["sig"])
    # The terminal's view: decode the frame, rebuild the fields, verify; match it to the tap.
    msg = wire.decode_gateway_message(tap["auth_frame"])
    assert wire.auth_fields_from_message(msg) == fields and msg["sig"] == tap["sig"]
    sent = wire.decode_terminal_message(tap["tap_frame"])
    assert isinstance(sent, wire.Tap)
    assert (sent.seq, sent.tap_id, sent.card) == (fields.seq, fields.tap_id, fields.card)
    assert fields.terminal_id == PUBLISHED["terminal_key"]["terminal_id"]
    assert fields.result in (wire.RESULT_APPROVED, wire.RESULT_DECLINED)


def test_deny_list_vector() -> None:
    keys = trusted_keys([PUBLISHED["gateway_key"]["public_key_hex"]])
    dl = PUBLISHED["deny_list"]
    msg = wire.decode_gateway_message(dl["frame"])
    fields = wire.deny_fields_from_message(msg)
    assert wire.deny_bytes(fields).decode("ascii") == dl["deny_bytes"]
    assert wire.deny_bytes(fields).hex() == dl["deny_bytes_hex"]
    assert verify_deny(keys, fields, dl["sig"]) and msg["sig"] == dl["sig"]
    # Moving one card from `remove` to `add` must not verify.
    swapped = wire.DenyFields(
        fields.key_id,
        fields.list_version,
        fields.base_version,
        fields.part,
        fields.parts,
        fields.gateway_time,
        fields.add + fields.remove,
        (),
    )
    assert not verify_deny(keys, swapped, dl["sig"])


def test_one_approved_one_declined() -> None:
    results = sorted(t["auth_fields"]["result"] for t in PUBLISHED["taps"])
    assert results == ["approved", "declined"]


def test_must_not_verify_vectors() -> None:
    keys = trusted_keys([PUBLISHED["gateway_key"]["public_key_hex"]])
    assert PUBLISHED["must_not_verify"]
    for bad in PUBLISHED["must_not_verify"]:
        assert not verify_auth(keys, wire.AuthFields(**bad["auth_fields"]), bad["sig"])


def test_other_frames_decode() -> None:
    frames = PUBLISHED["other_frames"]
    for name in ("purchase_tap", "topup_tap", "heartbeat"):
        wire.decode_terminal_message(frames[name])
    for name in ("heartbeat_ack", "error_busy", "error_bad_proof"):
        wire.decode_gateway_message(frames[name])


def test_independent_ed25519_implementation_agrees() -> None:
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    gw_seed = bytes.fromhex(PUBLISHED["gateway_key"]["seed_hex"])
    gw = ed25519.Ed25519PrivateKey.from_private_bytes(gw_seed)
    for tap in PUBLISHED["taps"]:
        assert gw.sign(bytes.fromhex(tap["auth_bytes_hex"])).hex() == tap["sig"]
    term_seed = bytes.fromhex(PUBLISHED["terminal_key"]["seed_hex"])
    term = ed25519.Ed25519PrivateKey.from_private_bytes(term_seed)
    hs = PUBLISHED["handshake"]
    assert term.sign(bytes.fromhex(hs["proof_bytes_hex"])).hex() == hs["proof_sig"]
    dl = PUBLISHED["deny_list"]
    assert gw.sign(bytes.fromhex(dl["deny_bytes_hex"])).hex() == dl["sig"]


def test_generated_tables_cover_the_code() -> None:
    for code in wire.ERROR_CODES:
        assert f"| `{code}` |" in DOC
    for op, spec in wire.OPS.items():
        assert f"| `{op}` |" in DOC
        for fs in spec.fields:
            assert f"| `{fs.name}` |" in DOC


def test_reason_table_matches_policies() -> None:
    reasons = pytest.importorskip("policies.reasons")
    section = DOC.split("BEGIN GENERATED reasons", 1)[1].split("END GENERATED reasons", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    assert documented == list(reasons.REASONS)


def test_doc_mentions_every_message_type() -> None:
    for mtype in wire.TERMINAL_MESSAGE_TYPES | wire.GATEWAY_MESSAGE_TYPES:
        assert f"### {mtype}\n" in DOC


def test_json_is_plain_json() -> None:
    assert orjson.loads(vectors.JSON_PATH.read_bytes()) == PUBLISHED


def test_kind_table_names_only_known_ops_and_every_kind() -> None:
    from gateway.tap_commands import KIND_DOCS, KIND_OPS
    from gateway.wire.vectors import render_kinds

    table = render_kinds()
    for kind, ops in KIND_OPS.items():
        assert ops <= set(wire.OPS), kind
        assert kind in KIND_DOCS
        row = next(line for line in table.splitlines() if line.startswith(f"| `{kind}` |"))
        assert all(f"`{op}`" in row for op in ops)


def test_identifier_list_covers_every_identifier_field() -> None:
    from gateway.wire.vectors import identifier_fields

    names = identifier_fields()
    for spec in wire.OPS.values():
        for f in spec.fields:
            assert (f.name in names) == (f.kind is wire.IDENTIFIER), f.name


def test_document_states_the_transport_limit_the_gateway_uses() -> None:
    from gateway.config import GatewayConfig
    from gateway.wire.vectors import DOC_PATH

    doc = DOC_PATH.read_text(encoding="utf-8")
    limit = f"{GatewayConfig().max_ws_message:,} bytes"
    assert f"larger than {limit} is not read" in doc.replace("\n  ", " ")
