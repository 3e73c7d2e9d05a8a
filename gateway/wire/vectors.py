"""Protocol v1 test vectors and the generated parts of docs/protocol.md, from one source.

Keys come from fixed seeds (sha256 of a label) and Ed25519 signatures are deterministic, so the
vectors are reproducible. `python -m gateway.wire.vectors` rewrites docs/test-vectors.json and the
marked sections of docs/protocol.md (vectors, op table, error codes, decline reasons);
`python -m gateway.wire.vectors --check` exits 1 when either file is stale.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nacl.signing
import orjson

from gateway.keys.signing import GatewaySigner, sign_proof
from gateway.wire import protocol as wire

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = REPO_ROOT / "docs" / "protocol.md"
JSON_PATH = REPO_ROOT / "docs" / "test-vectors.json"

GATEWAY_SEED_LABEL = "citycard test vector gateway key"
TERMINAL_ID = "gate-0001"
TERMINAL_SEED_LABEL = f"citycard test vector terminal {TERMINAL_ID}"
CHALLENGE_LABEL = "citycard test vector challenge"
CURRENCY = "EUR"
TARIFF_VERSION = "city-2026.1"
HEARTBEAT_S = 15

_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode("ascii")).digest()


def _tap_vector(
    signer: GatewaySigner,
    name: str,
    seq: int,
    tap_id: str,
    card: str,
    terminal_time: int,
    tap_fields: dict[str, object],
    result: str,
    reason: str,
    amount: int,
    balance: int,
    gateway_time: int,
    detail: dict[str, object],
) -> dict[str, Any]:
    tap_frame = wire.encode_tap(seq, tap_id, card, "fare", terminal_time, tap_fields)
    fields = wire.AuthFields(
        key_id=signer.key_id,
        terminal_id=TERMINAL_ID,
        seq=seq,
        tap_id=tap_id,
        card=card,
        result=result,
        reason=reason,
        amount=amount,
        balance=balance,
        currency=CURRENCY,
        gateway_time=gateway_time,
    )
    signed = wire.auth_bytes(fields)
    sig = signer.sign_auth(fields)
    return {
        "name": name,
        "tap_frame": tap_frame.decode(),
        "auth_fields": asdict(fields),
        "auth_bytes": signed.decode("ascii"),
        "auth_bytes_hex": signed.hex(),
        "sig": sig,
        "auth_frame": wire.encode_auth(fields, sig, detail).decode(),
    }


def build_vectors() -> dict[str, Any]:
    """Every test vector, as the JSON-ready dict written to docs/test-vectors.json."""
    gw_seed = _seed(GATEWAY_SEED_LABEL)
    signer = GatewaySigner(nacl.signing.SigningKey(gw_seed))
    term_seed = _seed(TERMINAL_SEED_LABEL)
    term_key = nacl.signing.SigningKey(term_seed)
    term_pub = bytes(term_key.verify_key)
    kid = signer.key_id
    challenge = hashlib.sha256(CHALLENGE_LABEL.encode("ascii")).hexdigest()
    proof = wire.proof_bytes(TERMINAL_ID, challenge, kid)
    proof_sig = sign_proof(term_key, TERMINAL_ID, challenge, kid)

    approved = _tap_vector(
        signer,
        "approved",
        seq=1,
        tap_id=f"{TERMINAL_ID}:000001",
        card="card-0042",
        terminal_time=_T0 + 500,
        tap_fields={"network": "METRO"},
        result=wire.RESULT_APPROVED,
        reason="ok",
        amount=250,
        balance=1750,
        gateway_time=_T0 + 512,
        detail={
            "product": "fare:METRO",
            "tariff_version": TARIFF_VERSION,
            "explain": [{"rule": "flat_fare", "network": "METRO", "fare": 250}],
        },
    )
    declined = _tap_vector(
        signer,
        "declined",
        seq=2,
        tap_id=f"{TERMINAL_ID}:000002",
        card="card-0077",
        terminal_time=_T0 + 60_000,
        tap_fields={},
        result=wire.RESULT_DECLINED,
        reason="insufficient_funds",
        amount=0,
        balance=120,
        gateway_time=_T0 + 60_009,
        detail={
            "product": "fare:METRO",
            "tariff_version": TARIFF_VERSION,
            "explain": [
                {"rule": "flat_fare", "network": "METRO", "fare": 250},
                {"rule": "sufficient_funds", "balance": 120, "required": 250},
            ],
        },
    )
    tampered = dict(approved["auth_fields"], amount=25)
    deny = wire.DenyFields(
        key_id=kid,
        list_version=7,
        base_version=6,
        part=1,
        parts=1,
        gateway_time=_T0 + 90_000,
        add=("card-0077",),
        remove=("card-0013",),
    )
    deny_msg = wire.deny_bytes(deny)
    deny_sig = signer.sign_bytes(deny_msg).hex()
    return {
        "protocol_version": wire.PROTOCOL_VERSION,
        "generated_by": "python -m gateway.wire.vectors",
        "gateway_key": {
            "seed_label": GATEWAY_SEED_LABEL,
            "seed_hex": gw_seed.hex(),
            "public_key_hex": signer.public_key_hex,
            "key_id": kid,
        },
        "terminal_key": {
            "terminal_id": TERMINAL_ID,
            "seed_label": TERMINAL_SEED_LABEL,
            "seed_hex": term_seed.hex(),
            "public_key_hex": term_pub.hex(),
        },
        "handshake": {
            "hello_frame": wire.encode_hello(TERMINAL_ID).decode(),
            "challenge_label": CHALLENGE_LABEL,
            "challenge_hex": challenge,
            "challenge_frame": wire.encode_challenge(challenge, kid, _T0).decode(),
            "proof_bytes": proof.decode("ascii"),
            "proof_bytes_hex": proof.hex(),
            "proof_sig": proof_sig,
            "proof_frame": wire.encode_proof(TERMINAL_ID, challenge, proof_sig).decode(),
            "welcome_frame": wire.encode_welcome(
                TERMINAL_ID, 0, kid, HEARTBEAT_S, wire.MAX_FRAME_BYTES
            ).decode(),
        },
        "taps": [approved, declined],
        "deny_list": {
            "deny_bytes": deny_msg.decode("ascii"),
            "deny_bytes_hex": deny_msg.hex(),
            "sig": deny_sig,
            "frame": wire.encode_deny_list(deny, deny_sig).decode(),
        },
        "must_not_verify": [
            {
                "name": "approved auth with amount changed from 250 to 25",
                "auth_fields": tampered,
                "sig": approved["sig"],
            }
        ],
        "other_frames": {
            "purchase_tap": wire.encode_tap(
                3,
                f"{TERMINAL_ID}:000003",
                "card-0042",
                "purchase",
                _T0 + 120_000,
                {"amount": 1250, "merchant": "kiosk-7"},
            ).decode(),
            "topup_tap": wire.encode_tap(
                4, f"{TERMINAL_ID}:000004", "card-0042", "topup", _T0 + 180_000, {"amount": 2000}
            ).decode(),
            "heartbeat": wire.encode_heartbeat(_T0 + 15_000).decode(),
            "heartbeat_ack": wire.encode_heartbeat_ack(_T0 + 15_000, _T0 + 15_004).decode(),
            "error_busy": wire.encode_error(
                wire.BUSY,
                "card is busy; retry with the same tap id",
                False,
                5,
                f"{TERMINAL_ID}:000005",
            ).decode(),
            "error_bad_proof": wire.encode_error(
                wire.BAD_PROOF, "signature does not verify", True
            ).decode(),
        },
    }


def vectors_json(vectors: dict[str, Any]) -> str:
    return orjson.dumps(vectors, option=orjson.OPT_INDENT_2).decode() + "\n"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _code(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text}\n```"


def _escaped(text: str) -> str:
    """A string literal with \\n escapes (JSON syntax, which is also C/Python/Java syntax)."""
    return json.dumps(text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_vectors(v: dict[str, Any]) -> str:
    gw, term, hs = v["gateway_key"], v["terminal_key"], v["handshake"]
    out = [
        "All values below are also in `docs/test-vectors.json`. Seeds are sha256 of the label "
        "(ASCII); an Ed25519 key is the libsodium/RFC 8032 key derived from the 32-byte seed.",
        "",
        "| | value |",
        "|---|---|",
        f"| gateway seed label | `{gw['seed_label']}` |",
        f"| gateway seed | `{gw['seed_hex']}` |",
        f"| gateway public key | `{gw['public_key_hex']}` |",
        f"| gateway key id | `{gw['key_id']}` |",
        f"| terminal id | `{term['terminal_id']}` |",
        f"| terminal seed label | `{term['seed_label']}` |",
        f"| terminal seed | `{term['seed_hex']}` |",
        f"| terminal public key | `{term['public_key_hex']}` |",
        "",
        "### Handshake",
        "",
        "Terminal sends `hello`:",
        "",
        _code(hs["hello_frame"], "json"),
        "",
        f"Gateway answers with a challenge (here sha256 of `{hs['challenge_label']}`; in "
        "production 32 random bytes):",
        "",
        _code(hs["challenge_frame"], "json"),
        "",
        "Proof bytes (shown as an escaped string literal, then as hex):",
        "",
        _code(_escaped(hs["proof_bytes"])),
        "",
        _code(hs["proof_bytes_hex"]),
        "",
        "Proof signature (terminal key over the proof bytes):",
        "",
        _code(hs["proof_sig"]),
        "",
        "Terminal sends `proof`:",
        "",
        _code(hs["proof_frame"], "json"),
        "",
        "Gateway answers `welcome`:",
        "",
        _code(hs["welcome_frame"], "json"),
    ]
    titles = {"approved": "Approved tap", "declined": "Declined tap"}
    for tap in v["taps"]:
        out += [
            "",
            f"### {titles.get(tap['name'], tap['name'])}",
            "",
            "Tap frame:",
            "",
            _code(tap["tap_frame"], "json"),
            "",
            "Auth bytes (escaped string literal, then hex):",
            "",
            _code(_escaped(tap["auth_bytes"])),
            "",
            _code(tap["auth_bytes_hex"]),
            "",
            "Signature (gateway key over the auth bytes):",
            "",
            _code(tap["sig"]),
            "",
            "Auth frame:",
            "",
            _code(tap["auth_frame"], "json"),
        ]
    dl = v["deny_list"]
    out += [
        "",
        "### Deny list delta",
        "",
        "Version 6 to 7: `card-0077` blocked, `card-0013` unblocked. Deny bytes (escaped string "
        "literal, then hex):",
        "",
        _code(_escaped(dl["deny_bytes"])),
        "",
        _code(dl["deny_bytes_hex"]),
        "",
        "Signature (gateway key over the deny bytes):",
        "",
        _code(dl["sig"]),
        "",
        "Frame:",
        "",
        _code(dl["frame"], "json"),
    ]
    out += ["", "### Must not verify", ""]
    for bad in v["must_not_verify"]:
        out.append(
            f"- {bad['name']}: the fields below with the signature `{bad['sig']}` must be rejected."
        )
        out += ["", _code(orjson.dumps(bad["auth_fields"]).decode(), "json"), ""]
    out += ["### Other frames", ""]
    for name, frame in v["other_frames"].items():
        out += [f"`{name}`:", "", _code(frame, "json"), ""]
    return "\n".join(out).rstrip()


def render_ops() -> str:
    out = [
        "| op | operation | field | type | required | field meaning |",
        "|---|---|---|---|---|---|",
    ]
    for op, spec in wire.OPS.items():
        if not spec.fields:
            out.append(f"| `{op}` | {_cell(spec.doc)} | | | | |")
        for i, fs in enumerate(spec.fields):
            head = f"| `{op}` | {_cell(spec.doc)} " if i == 0 else "| | "
            out.append(
                f"{head}| `{fs.name}` | {fs.kind.name} | {'yes' if fs.required else 'no'} "
                f"| {_cell(fs.doc)} |"
            )
    return "\n".join(out)


def render_kinds() -> str:
    from gateway.tap_commands import KIND_DOCS, KIND_OPS

    out = ["| terminal kind | is | may send `op` |", "|---|---|---|"]
    for kind, ops in KIND_OPS.items():
        ordered = [op for op in wire.OPS if op in ops]  # in the op table's order
        cells = ", ".join(f"`{op}`" for op in ordered)
        out.append(f"| `{kind}` | {_cell(KIND_DOCS.get(kind, ''))} | {cells} |")
    return "\n".join(out)


def identifier_fields() -> list[str]:
    """Every field the protocol types as an identifier, messages' and ops' alike."""
    names = ["terminal_id", "tap_id", "card", "key_id"]
    for spec in wire.OPS.values():
        names += [f.name for f in spec.fields if f.kind is wire.IDENTIFIER]
    return list(dict.fromkeys(names))


def render_identifiers() -> str:
    import textwrap

    text = (
        "- **Identifiers** ("
        + ", ".join(f"`{n}`" for n in identifier_fields())
        + ") are 1 to 64 characters from `A-Z a-z 0-9 . _ : -` (regular expression "
        "`^[A-Za-z0-9._:-]{1,64}$`). They are case sensitive. The restricted alphabet keeps "
        "the signed bytes unambiguous."
    )
    return textwrap.fill(text, width=98, subsequent_indent="  ", break_on_hyphens=False)


def render_error_codes() -> str:
    out = ["| code | meaning | closes the connection |", "|---|---|---|"]
    for code, meaning in wire.ERROR_CODES.items():
        fatal = "always" if code in wire.ALWAYS_FATAL else "no (yes before `welcome`)"
        out.append(f"| `{code}` | {_cell(meaning)} | {fatal} |")
    return "\n".join(out)


def render_reasons() -> str:
    from policies.reasons import APPROVING, REASONS

    out = ["| reason | result | meaning |", "|---|---|---|"]
    for code, meaning in REASONS.items():
        result = "approved" if code in APPROVING else "declined"
        out.append(f"| `{code}` | {result} | {_cell(meaning)} |")
    return "\n".join(out)


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "ops": lambda v: render_ops(),
    "kinds": lambda v: render_kinds(),
    "identifiers": lambda v: render_identifiers(),
    "error-codes": lambda v: render_error_codes(),
    "reasons": lambda v: render_reasons(),
    "vectors": render_vectors,
}


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- BEGIN GENERATED {name} (python -m gateway.wire.vectors) -->",
        f"<!-- END GENERATED {name} -->",
    )


def update_document(text: str, vectors: dict[str, Any]) -> str:
    """`text` with every generated section replaced by its fresh rendering."""
    for name, render in SECTIONS.items():
        begin, end = _markers(name)
        start = text.find(begin)
        stop = text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"protocol doc lacks the markers of section {name!r}")
        text = text[: start + len(begin)] + "\n" + render(vectors) + "\n" + text[stop:]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.wire.vectors", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    vectors = build_vectors()
    wanted = {
        JSON_PATH: vectors_json(vectors),
        DOC_PATH: update_document(DOC_PATH.read_text(encoding="utf-8"), vectors),
    }
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text("utf-8") != text]
    if args.check:
        for p in stale:
            print(f"stale: {p} (run python -m gateway.wire.vectors)", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p], encoding="utf-8")
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
