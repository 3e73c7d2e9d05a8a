"""Wire protocol v1: decoder errors, field rules, round trips, canonical bytes, fuzzing."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.wire import protocol as wire
from gateway.wire.protocol import (
    AuthFields,
    Heartbeat,
    Hello,
    Proof,
    ProtocolError,
    Tap,
    decode_gateway_message,
    decode_terminal_message,
)

CHALLENGE = "ab" * 32
SIG = "cd" * 64
DELETE = object()  # tap_dict(field=DELETE) leaves the field out


def tap_dict(**overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "v": 1,
        "type": "tap",
        "seq": 7,
        "tap_id": "gate-0001:000007",
        "card": "card-0042",
        "op": "purchase",
        "terminal_time": 1_767_225_600_000,
        "amount": 250,
    }
    msg.update(overrides)
    return {k: v for k, v in msg.items() if v is not DELETE}


def dumps(obj: Any) -> bytes:
    """JSON bytes; unlike orjson, the stdlib encodes integers beyond 64 bits too."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def decode(obj: Any) -> wire.TerminalMessage:
    return decode_terminal_message(dumps(obj))


def error_of(data: str | bytes | dict[str, Any]) -> ProtocolError:
    raw = dumps(data) if isinstance(data, dict) else data
    with pytest.raises(ProtocolError) as info:
        decode_terminal_message(raw)
    assert info.value.code in wire.ERROR_CODES
    return info.value


# ------------------------------------------------------------------------------------------
# Decoding valid messages
# ------------------------------------------------------------------------------------------


def test_decode_each_terminal_message() -> None:
    assert decode({"v": 1, "type": "hello", "terminal_id": "gate-0001"}) == Hello("gate-0001")
    assert decode(
        {"v": 1, "type": "proof", "terminal_id": "g", "challenge": CHALLENGE, "sig": SIG}
    ) == Proof("g", CHALLENGE, SIG)
    assert decode({"v": 1, "type": "heartbeat", "t": -5}) == Heartbeat(-5)
    tap = decode(tap_dict(merchant="shop-17"))
    assert tap == Tap(
        7, "gate-0001:000007", "card-0042", "purchase", 1_767_225_600_000,
        {"amount": 250, "merchant": "shop-17"},
    )  # fmt: skip


def test_decode_accepts_str_and_bytes() -> None:
    raw = orjson.dumps(tap_dict())
    assert decode_terminal_message(raw) == decode_terminal_message(raw.decode())


def test_unknown_fields_ignored_and_not_exposed() -> None:
    tap = decode(tap_dict(op="fare", amount=DELETE, extra={"x": [1, 2]}, future_field=3))
    assert isinstance(tap, Tap)
    assert tap.fields == {}
    hello = decode({"v": 1, "type": "hello", "terminal_id": "t", "sw": "1.2.3"})
    assert hello == Hello("t")


def test_fare_optional_fields() -> None:
    tap = decode(tap_dict(op="fare", amount=DELETE, network="METRO", stop="central"))
    assert isinstance(tap, Tap)
    assert tap.fields == {"network": "METRO", "stop": "central"}


def test_null_is_absent() -> None:
    tap = decode(tap_dict(op="fare", amount=DELETE, network=None))
    assert isinstance(tap, Tap) and tap.fields == {}
    assert error_of(tap_dict(amount=None)).code == wire.MISSING_FIELD


def test_amount_is_not_range_checked_beyond_int64() -> None:
    # Zero and negative amounts are business declines (invalid_amount), not protocol errors.
    for amount in (0, -1, wire.INT64_MAX, wire.INT64_MIN):
        tap = decode(tap_dict(amount=amount))
        assert isinstance(tap, Tap) and tap.fields["amount"] == amount


# ------------------------------------------------------------------------------------------
# Decoder errors
# ------------------------------------------------------------------------------------------


def test_frame_too_large() -> None:
    small = orjson.dumps(tap_dict())
    padding = wire.MAX_FRAME_BYTES - len(small) - len(',"pad":""')
    exact = orjson.dumps(tap_dict(pad="x" * padding))
    assert len(exact) == wire.MAX_FRAME_BYTES
    decode_terminal_message(exact)
    decode_terminal_message(exact.decode())
    over = orjson.dumps(tap_dict(pad="x" * (padding + 1)))
    assert error_of(over).code == wire.FRAME_TOO_LARGE
    assert error_of(over.decode()).code == wire.FRAME_TOO_LARGE
    # Multi-byte characters count in UTF-8 bytes, not code points.
    wide = orjson.dumps(tap_dict(pad="é" * 2100)).decode()
    assert len(wide) < wire.MAX_FRAME_BYTES
    assert error_of(wide).code == wire.FRAME_TOO_LARGE


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1,2]", b'"hello"', b"42", b"null", b"\xff\xfe", b'{"v":1', "\ud800"],
)
def test_malformed(raw: str | bytes) -> None:
    assert error_of(raw).code == wire.MALFORMED


@pytest.mark.parametrize("version", [0, 2, -1, 2**63 - 1])
def test_unsupported_version(version: object) -> None:
    assert error_of(tap_dict(v=version)).code == wire.UNSUPPORTED_VERSION


@pytest.mark.parametrize("version", ["1", 1.0, True, [1], {"v": 1}])
def test_a_version_that_is_not_an_integer_is_a_bad_field(version: object) -> None:
    err = error_of(tap_dict(v=version))
    assert (err.code, err.message) == (wire.BAD_FIELD, "v: expected an integer")


def test_missing_version() -> None:
    assert error_of(tap_dict(v=DELETE)).code == wire.MISSING_FIELD


@pytest.mark.parametrize("mtype", ["auth", "welcome", "HELLO", "", "tap_on"])
def test_unknown_type(mtype: str) -> None:
    assert error_of(tap_dict(type=mtype)).code == wire.UNKNOWN_TYPE


def test_type_missing_or_not_a_string() -> None:
    assert error_of(tap_dict(type=DELETE)).code == wire.MISSING_FIELD
    assert error_of(tap_dict(type=["tap"])).code == wire.BAD_FIELD
    assert error_of(tap_dict(type=1)).code == wire.BAD_FIELD


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        ({"v": 1, "type": "hello"}, "terminal_id"),
        ({"v": 1, "type": "proof", "terminal_id": "t", "challenge": CHALLENGE}, "sig"),
        ({"v": 1, "type": "proof", "terminal_id": "t", "sig": SIG}, "challenge"),
        ({"v": 1, "type": "heartbeat"}, "t"),
        (tap_dict(seq=DELETE), "seq"),
        (tap_dict(tap_id=DELETE), "tap_id"),
        (tap_dict(card=DELETE), "card"),
        (tap_dict(op=DELETE), "op"),
        (tap_dict(terminal_time=DELETE), "terminal_time"),
        (tap_dict(amount=DELETE), "amount"),
        (tap_dict(op="topup", amount=DELETE), "amount"),
    ],
)
def test_missing_field(msg: dict[str, Any], field: str) -> None:
    err = error_of(msg)
    assert err.code == wire.MISSING_FIELD
    assert field in err.message


@pytest.mark.parametrize(
    "overrides",
    [
        {"seq": 0},
        {"seq": -1},
        {"seq": "7"},
        {"seq": 7.0},
        {"seq": True},
        {"seq": 2**63},
        {"tap_id": ""},
        {"tap_id": "x" * 65},
        {"tap_id": "has space"},
        {"tap_id": 12},
        {"card": "card\n42"},
        {"card": "carté"},
        {"card": "a/b"},
        {"op": 3},
        {"terminal_time": -1},
        {"terminal_time": 1.5e12},
        {"terminal_time": False},
        {"amount": 2.5},
        {"amount": 250.0},
        {"amount": True},
        {"amount": "250"},
        {"amount": 2**63},
        {"amount": -(2**63) - 1},
        {"amount": 10**30},
        {"merchant": "bad merchant"},
        {"op": "fare", "amount": DELETE, "network": 5},
        {"op": "fare", "amount": DELETE, "stop": ""},
    ],
)
def test_bad_tap_field(overrides: dict[str, Any]) -> None:
    assert error_of(tap_dict(**overrides)).code == wire.BAD_FIELD


@pytest.mark.parametrize(
    "msg",
    [
        {"v": 1, "type": "hello", "terminal_id": "x" * 65},
        {"v": 1, "type": "hello", "terminal_id": True},
        {"v": 1, "type": "proof", "terminal_id": "t", "challenge": CHALLENGE.upper(), "sig": SIG},
        {"v": 1, "type": "proof", "terminal_id": "t", "challenge": CHALLENGE[:-2], "sig": SIG},
        {"v": 1, "type": "proof", "terminal_id": "t", "challenge": CHALLENGE, "sig": SIG + "00"},
        {"v": 1, "type": "proof", "terminal_id": "t", "challenge": CHALLENGE, "sig": "zz" * 64},
        {"v": 1, "type": "heartbeat", "t": 1.0},
        {"v": 1, "type": "heartbeat", "t": True},
        {"v": 1, "type": "heartbeat", "t": 2**64},
    ],
)
def test_bad_field_other_messages(msg: dict[str, Any]) -> None:
    assert error_of(msg).code == wire.BAD_FIELD


@pytest.mark.parametrize("op", ["refund", "FARE", "", "tap_out"])
def test_unknown_op(op: str) -> None:
    err = error_of(tap_dict(op=op))
    assert err.code == wire.UNKNOWN_OP
    assert (err.seq, err.tap_id) == (7, "gate-0001:000007")


def test_identifier_charset() -> None:
    for good in ["a", "A-Z.a_z:0-9", "x" * 64, "gate-0001:000001", "..", "-"]:
        assert wire.is_identifier(good)
        assert isinstance(decode(tap_dict(card=good)), Tap)
    for bad in ["", "x" * 65, "a b", "a\nb", "a\tb", "é", "a/b", "a,b", "a\x00", "\uff41", None, 1]:
        assert not wire.is_identifier(bad)


def test_ints_reject_bools_and_floats() -> None:
    assert wire.is_int64(0) and wire.is_int64(wire.INT64_MAX) and wire.is_int64(wire.INT64_MIN)
    for bad in [True, False, 1.0, 2**63, -(2**63) - 1, "1", None]:
        assert not wire.is_int64(bad)


def test_errors_reference_the_tap_when_readable() -> None:
    err = error_of(tap_dict(amount="x"))
    assert (err.seq, err.tap_id) == (7, "gate-0001:000007")
    err = error_of(tap_dict(seq="x"))
    assert (err.code, err.seq, err.tap_id) == (wire.BAD_FIELD, None, "gate-0001:000007")
    err = error_of(tap_dict(tap_id=DELETE))
    assert (err.code, err.seq, err.tap_id) == (wire.MISSING_FIELD, 7, None)
    err = error_of(tap_dict(card="bad card", terminal_time=-3))
    assert "card" in err.message and (err.seq, err.tap_id) == (7, "gate-0001:000007")
    err = error_of(tap_dict(terminal_time=-3))
    assert "terminal_time" in err.message and err.seq == 7


def test_error_message_does_not_echo_huge_values() -> None:
    err = error_of(tap_dict(op="x" * 3000))
    assert len(err.message) < 100


def test_decoder_codes_are_known() -> None:
    for code in (
        wire.FRAME_TOO_LARGE, wire.MALFORMED, wire.UNSUPPORTED_VERSION, wire.UNKNOWN_TYPE,
        wire.MISSING_FIELD, wire.BAD_FIELD, wire.UNKNOWN_OP,
    ):  # fmt: skip
        assert code in wire.ERROR_CODES


# ------------------------------------------------------------------------------------------
# Fuzzing: nothing but ProtocolError escapes the decoders
# ------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)

field_names = st.sampled_from(
    [
        "v", "type", "seq", "tap_id", "card", "op", "terminal_time", "amount", "network", "stop",
        "merchant", "terminal_id", "challenge", "sig", "t", "key_id", "result", "reason",
        "balance", "currency", "gateway_time", "fatal", "code", "message", "detail", "last_seq",
        "heartbeat_s", "max_frame",
    ]
)  # fmt: skip
field_values = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=2),
    st.sampled_from(
        [1, 0, -1, 2**63, "tap", "hello", "proof", "heartbeat", "auth", "error", "challenge",
         "welcome", "heartbeat_ack", "fare", "purchase", "topup", CHALLENGE, SIG, "gate-0001"]
    ),
)  # fmt: skip
near_messages = st.dictionaries(field_names, field_values, max_size=14)


def both_decoders(data: str | bytes) -> None:
    for decoder in (decode_terminal_message, decode_gateway_message):
        try:
            decoder(data)
        except ProtocolError as exc:
            assert exc.code in wire.ERROR_CODES


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    both_decoders(data)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_fuzz_text(data: str) -> None:
    both_decoders(data)


@settings(max_examples=300)
@given(json_values)
def test_fuzz_json_values(value: Any) -> None:
    both_decoders(dumps(value))


@settings(max_examples=500)
@given(near_messages)
def test_fuzz_near_messages(msg: dict[str, Any]) -> None:
    msg.setdefault("v", 1)
    both_decoders(dumps(msg))


@settings(max_examples=300)
@given(
    st.sampled_from(list(tap_dict())),
    json_values,
)
def test_fuzz_tap_one_field(name: str, value: Any) -> None:
    msg = tap_dict()
    msg[name] = value
    try:
        tap = decode(msg)
    except ProtocolError as exc:
        assert exc.code in wire.ERROR_CODES
    else:
        assert isinstance(tap, Tap)


# ------------------------------------------------------------------------------------------
# Encode -> decode round trips
# ------------------------------------------------------------------------------------------

identifiers = st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z")
int64s = st.integers(min_value=wire.INT64_MIN, max_value=wire.INT64_MAX)
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
hex128 = st.binary(min_size=64, max_size=64).map(bytes.hex)


@st.composite
def taps(draw: st.DrawFn) -> Tap:
    op = draw(st.sampled_from(sorted(wire.OPS)))
    fields: dict[str, object] = {}
    for fs in wire.OPS[op].fields:
        if fs.required or draw(st.booleans()):
            fields[fs.name] = draw(int64s if fs.kind is wire.INT64 else identifiers)
    return Tap(
        seq=draw(st.integers(min_value=1, max_value=wire.INT64_MAX)),
        tap_id=draw(identifiers),
        card=draw(identifiers),
        op=op,
        terminal_time=draw(st.integers(min_value=0, max_value=wire.INT64_MAX)),
        fields=fields,
    )


@given(taps())
def test_roundtrip_tap(tap: Tap) -> None:
    raw = wire.encode_tap(tap.seq, tap.tap_id, tap.card, tap.op, tap.terminal_time, tap.fields)
    decoded = decode_terminal_message(raw)
    assert decoded == tap
    assert isinstance(decoded, Tap) and wire.tap_content_hash(decoded) == wire.tap_content_hash(tap)


@given(identifiers, hex64, hex128, int64s)
def test_roundtrip_other_terminal_messages(tid: str, ch: str, sig: str, t: int) -> None:
    assert decode_terminal_message(wire.encode_hello(tid)) == Hello(tid)
    assert decode_terminal_message(wire.encode_proof(tid, ch, sig)) == Proof(tid, ch, sig)
    assert decode_terminal_message(wire.encode_heartbeat(t)) == Heartbeat(t)


auth_fields = st.builds(
    AuthFields,
    key_id=identifiers,
    terminal_id=identifiers,
    seq=st.integers(min_value=1, max_value=wire.INT64_MAX),
    tap_id=identifiers,
    card=identifiers,
    result=st.sampled_from([wire.RESULT_APPROVED, wire.RESULT_DECLINED]),
    reason=st.sampled_from(["ok", "repeat_tap", "insufficient_funds"]),
    amount=int64s,
    balance=int64s,
    currency=st.sampled_from(["EUR", "CHF"]),
    gateway_time=st.integers(min_value=0, max_value=wire.INT64_MAX),
)


@given(auth_fields, hex128)
def test_roundtrip_auth(fields: AuthFields, sig: str) -> None:
    detail = {"product": "fare:METRO", "tariff_version": "v1", "explain": [{"rule": "x"}]}
    msg = decode_gateway_message(wire.encode_auth(fields, sig, detail))
    assert msg["type"] == "auth" and msg["sig"] == sig and msg["detail"] == detail
    assert wire.auth_fields_from_message(msg) == fields
    plain = decode_gateway_message(wire.encode_auth(fields, sig))
    assert "detail" not in plain
    assert wire.auth_fields_from_message(plain) == fields


@given(hex64, identifiers, int64s, int64s)
def test_roundtrip_gateway_messages(ch: str, kid: str, t: int, now: int) -> None:
    assert decode_gateway_message(wire.encode_challenge(ch, kid, now)) == {
        "v": 1, "type": "challenge", "challenge": ch, "key_id": kid, "gateway_time": now,
    }  # fmt: skip
    assert decode_gateway_message(wire.encode_welcome("gate-1", 12, kid, 15, 4096)) == {
        "v": 1, "type": "welcome", "terminal_id": "gate-1", "last_seq": 12, "key_id": kid,
        "heartbeat_s": 15, "max_frame": 4096,
    }  # fmt: skip
    assert decode_gateway_message(wire.encode_heartbeat_ack(t, now)) == {
        "v": 1, "type": "heartbeat_ack", "t": t, "gateway_time": now,
    }  # fmt: skip


def test_roundtrip_error() -> None:
    assert decode_gateway_message(wire.encode_error("busy", "later", False, 5, "t:5")) == {
        "v": 1, "type": "error", "code": "busy", "message": "later", "fatal": False,
        "seq": 5, "tap_id": "t:5",
    }  # fmt: skip
    plain = decode_gateway_message(wire.encode_error("bad_proof", "no", True))
    assert plain == {"v": 1, "type": "error", "code": "bad_proof", "message": "no", "fatal": True}
    err = ProtocolError(wire.BAD_FIELD, "amount: expected int", 3, "t:3")
    msg = decode_gateway_message(wire.encode_protocol_error(err, fatal=False))
    assert (msg["code"], msg["seq"], msg["tap_id"], msg["fatal"]) == ("bad_field", 3, "t:3", False)
    long = decode_gateway_message(wire.encode_error("internal", "x" * 10_000, False))
    assert len(long["message"]) <= 512


def test_encode_tap_fields_cannot_override_common_fields() -> None:
    raw = wire.encode_tap(1, "t", "c", "topup", 5, {"amount": 10, "seq": 99, "card": "evil"})
    tap = decode_terminal_message(raw)
    assert isinstance(tap, Tap) and (tap.seq, tap.card) == (1, "c")


def test_encoders_return_bytes_and_put_v_and_type_first() -> None:
    fields = AuthFields("k0", "t", 1, "t:1", "c", "approved", "ok", 1, 2, "EUR", 3)
    frames = [
        wire.encode_challenge(CHALLENGE, "k0", 1),
        wire.encode_welcome("t", 0, "k0"),
        wire.encode_auth(fields, SIG),
        wire.encode_error("busy", "m", False),
        wire.encode_heartbeat_ack(1, 2),
        wire.encode_hello("t"),
        wire.encode_proof("t", CHALLENGE, SIG),
        wire.encode_tap(1, "t:1", "c", "fare", 0),
        wire.encode_heartbeat(1),
    ]
    for frame in frames:
        assert isinstance(frame, bytes)
        assert frame.startswith(b'{"v":1,"type":"')


def test_encode_auth_drops_oversized_or_unencodable_detail() -> None:
    fields = AuthFields("k0", "t", 1, "t:1", "c", "approved", "ok", 1, 2, "EUR", 3)
    big = wire.encode_auth(fields, SIG, {"explain": ["x" * 5000]})
    assert len(big) <= wire.MAX_FRAME_BYTES and b"detail" not in big
    odd = wire.encode_auth(fields, SIG, {"explain": {1, 2}})  # a set is not JSON
    assert b"detail" not in odd
    ok = wire.encode_auth(fields, SIG, {"explain": ({"rule": "flat"},)})
    assert orjson.loads(ok)["detail"] == {"explain": [{"rule": "flat"}]}


def test_largest_auth_fits_in_a_frame() -> None:
    longest = "x" * 64
    fields = AuthFields(
        longest, longest, wire.INT64_MAX, longest, longest, "declined", "unsupported_operation",
        wire.INT64_MIN, wire.INT64_MIN, "EUR", wire.INT64_MAX,
    )  # fmt: skip
    assert len(wire.encode_auth(fields, SIG)) < wire.MAX_FRAME_BYTES // 4


# ------------------------------------------------------------------------------------------
# decode_gateway_message light validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        ({"v": 1, "type": "tap"}, wire.UNKNOWN_TYPE),
        ({"v": 2, "type": "auth"}, wire.UNSUPPORTED_VERSION),
        ({"v": 1, "type": "challenge", "key_id": "k", "gateway_time": 1}, wire.MISSING_FIELD),
        (
            {"v": 1, "type": "challenge", "challenge": "x", "key_id": "k", "gateway_time": 1},
            wire.BAD_FIELD,
        ),
        ({"v": 1, "type": "error", "code": "busy", "message": "m", "fatal": 0}, wire.BAD_FIELD),
        (
            {"v": 1, "type": "error", "code": "b", "message": "m", "fatal": False, "seq": "1"},
            wire.BAD_FIELD,
        ),
        ({"v": 1, "type": "heartbeat_ack", "t": 1, "gateway_time": 1.5}, wire.BAD_FIELD),
    ],
)
def test_decode_gateway_message_errors(msg: dict[str, Any], code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_gateway_message(orjson.dumps(msg))
    assert info.value.code == code


def test_decode_gateway_auth_detail_must_be_object() -> None:
    fields = AuthFields("k0", "t", 1, "t:1", "c", "approved", "ok", 1, 2, "EUR", 3)
    msg = orjson.loads(wire.encode_auth(fields, SIG))
    msg["detail"] = [1]
    with pytest.raises(ProtocolError) as info:
        decode_gateway_message(orjson.dumps(msg))
    assert info.value.code == wire.BAD_FIELD


# ------------------------------------------------------------------------------------------
# Canonical bytes and content hash
# ------------------------------------------------------------------------------------------


def test_proof_bytes_layout() -> None:
    assert wire.proof_bytes("gate-1", CHALLENGE, "k0123") == (
        b"citycard-proof-v1\ngate-1\n" + CHALLENGE.encode() + b"\nk0123\n"
    )


def test_auth_bytes_layout() -> None:
    fields = AuthFields(
        "kabc", "gate-1", 12, "gate-1:12", "card-9", "approved", "ok", -2000, 0, "EUR", 1000
    )
    assert wire.auth_bytes(fields) == (
        b"citycard-auth-v1\nkabc\ngate-1\n12\ngate-1:12\ncard-9\napproved\nok\n-2000\n0\nEUR\n1000\n"
    )


@pytest.mark.parametrize("bad", ["a\nb", "é", "\n"])
def test_canonical_bytes_refuse_ambiguous_strings(bad: str) -> None:
    fields = AuthFields("k", "t", 1, "t:1", "c", "approved", "ok", 0, 0, "EUR", 0)
    wire.auth_bytes(fields)
    with pytest.raises(ValueError):
        wire.auth_bytes(dataclasses.replace(fields, reason=bad))
    with pytest.raises(ValueError):
        wire.proof_bytes(bad, CHALLENGE, "k")


def test_tap_content_hash() -> None:
    base = decode(tap_dict(merchant="m1"))
    assert isinstance(base, Tap)
    h = wire.tap_content_hash(base)
    assert len(h) == 64
    # seq and tap_id are not content; field order and unknown fields do not matter.
    same = [
        tap_dict(merchant="m1", seq=99),
        tap_dict(merchant="m1", tap_id="other"),
        {"merchant": "m1", **tap_dict(), "unknown": 1},
    ]
    for msg in same:
        t = decode(msg)
        assert isinstance(t, Tap) and wire.tap_content_hash(t) == h
    different = [
        tap_dict(merchant="m2"),
        tap_dict(),
        tap_dict(merchant="m1", amount=251),
        tap_dict(merchant="m1", card="card-0043"),
        tap_dict(merchant="m1", terminal_time=1),
        tap_dict(merchant="m1", op="topup"),
    ]
    hashes = {h}
    for msg in different:
        t = decode(msg)
        assert isinstance(t, Tap)
        hashes.add(wire.tap_content_hash(t))
    assert len(hashes) == len(different) + 1


def test_new_challenge() -> None:
    a, b = wire.new_challenge(), wire.new_challenge()
    assert a != b and len(a) == 64 and a == a.lower() and bytes.fromhex(a)


def test_is_fatal() -> None:
    assert wire.is_fatal(wire.BUSY, authenticated=False)
    assert not wire.is_fatal(wire.BUSY, authenticated=True)
    assert wire.is_fatal(wire.BAD_PROOF, authenticated=True)
    assert set(wire.ERROR_CODES) >= wire.ALWAYS_FATAL


def test_ops_table_is_well_formed() -> None:
    common = {"v", "type", "seq", "tap_id", "card", "op", "terminal_time"}
    for op, spec in wire.OPS.items():
        assert wire.is_identifier(op)
        names = [fs.name for fs in spec.fields]
        assert len(names) == len(set(names)) and not common & set(names)


def test_decode_tap_is_fast() -> None:
    raw = wire.encode_tap(
        12345, "gate-0001:000123", "card-0042", "purchase", 1_767_225_600_000,
        {"amount": 250, "merchant": "shop-17"},
    )  # fmt: skip
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        decode_terminal_message(raw)
    per_tap_us = (time.perf_counter() - start) / n * 1e6
    assert per_tap_us < 50, per_tap_us  # ~3 us on a laptop; generous for slow CI


@settings(max_examples=300)
@given(
    card=st.from_regex(wire.IDENTIFIER_PATTERN, fullmatch=True) | st.text(min_size=1, max_size=70),
    op=st.sampled_from([*wire.OPS, "no-such-op", 'q"uote']),
    terminal_time=st.integers(0, 2**63 - 1),
    fields=st.sampled_from([{}, {"amount": 250}]),
)
def test_tap_content_hash_fast_path_is_the_canonical_hash(
    card: str, op: str, terminal_time: int, fields: dict[str, object]
) -> None:
    """Taps without fields are hashed without building the canonical dict: same bytes."""
    import hashlib

    tap = Tap(1, "t", card, op, terminal_time, fields)
    canonical = orjson.dumps(
        {"card": card, "fields": fields, "op": op, "terminal_time": terminal_time},
        option=orjson.OPT_SORT_KEYS,
    )
    assert wire.tap_content_hash(tap) == hashlib.sha256(canonical).hexdigest()
