"""Wire protocol v1 between terminals and the gateway: the one module that defines it.

Every frame is a websocket TEXT frame holding one UTF-8 JSON object of at most `MAX_FRAME_BYTES`
bytes, with `"v": 1` and a `"type"`. This module owns the message types, their validation
(`decode_terminal_message`, hand-written for speed: a tap decodes in a few microseconds), their
encoders (orjson `bytes`), the canonical bytes that are signed (`proof_bytes`, `auth_bytes`), the
error codes, and the table of tap operations (`OPS`). `docs/protocol.md` is the vendor-facing
description; its tables and test vectors are generated from here by
`python -m gateway.wire.vectors`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import orjson

from policies._slots import slot_setters

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 4096
"""Largest frame (UTF-8 bytes) either side may send."""

DEFAULT_HEARTBEAT_S: Final = 15
"""Default `welcome.heartbeat_s`: the terminal sends a heartbeat at least this often."""

MISSED_HEARTBEATS: Final = 3
"""The gateway closes a connection that sent nothing for this many heartbeat intervals."""

HANDSHAKE_TIMEOUT_S: Final = 10
"""The gateway closes a connection that has not completed hello/proof within this time."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

PROOF_DOMAIN: Final = "citycard-proof-v1"
AUTH_DOMAIN: Final = "citycard-auth-v1"
DENY_DOMAIN: Final = "citycard-deny-v1"
#: What the gateway's key signs, and nothing else (the key holder refuses any other bytes).
OFFLINE_DOMAIN: Final = "citycard-offline-v1"
#: What a terminal signs for a tap it decided while offline (its own key; section 8).
OFFLINE_TAP_DOMAIN: Final = "citycard-offline-tap-v1"
SIGNED_DOMAINS: Final = (AUTH_DOMAIN, DENY_DOMAIN, OFFLINE_DOMAIN)
#: Cards in one `deny_list` frame: every frame, with 64-character ids, stays under
#: MAX_FRAME_BYTES.
DENY_PART_MAX_CARDS: Final = 48

RESULT_APPROVED: Final = "approved"
RESULT_DECLINED: Final = "declined"

IDENTIFIER_PATTERN: Final = r"[A-Za-z0-9._:-]{1,64}"
_ID_RE: Final = re.compile(IDENTIFIER_PATTERN)
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")
_HEX128_RE: Final = re.compile(r"[0-9a-f]{128}")

# Message types.
HELLO: Final = "hello"
PROOF: Final = "proof"
TAP: Final = "tap"
HEARTBEAT: Final = "heartbeat"
CHALLENGE: Final = "challenge"
WELCOME: Final = "welcome"
AUTH: Final = "auth"
ERROR: Final = "error"
HEARTBEAT_ACK: Final = "heartbeat_ack"
DENY_LIST: Final = "deny_list"
OFFLINE_POLICY: Final = "offline_policy"

TERMINAL_MESSAGE_TYPES: Final = frozenset({HELLO, PROOF, TAP, HEARTBEAT})
GATEWAY_MESSAGE_TYPES: Final = frozenset(
    {CHALLENGE, WELCOME, AUTH, ERROR, HEARTBEAT_ACK, DENY_LIST, OFFLINE_POLICY}
)

# --------------------------------------------------------------------------------------------
# Error codes
# --------------------------------------------------------------------------------------------

FRAME_TOO_LARGE: Final = "frame_too_large"
MALFORMED: Final = "malformed"
UNSUPPORTED_VERSION: Final = "unsupported_version"
UNKNOWN_TYPE: Final = "unknown_type"
MISSING_FIELD: Final = "missing_field"
BAD_FIELD: Final = "bad_field"
UNKNOWN_OP: Final = "unknown_op"
NOT_AUTHENTICATED: Final = "not_authenticated"
UNEXPECTED_MESSAGE: Final = "unexpected_message"
UNKNOWN_TERMINAL: Final = "unknown_terminal"
TERMINAL_REVOKED: Final = "terminal_revoked"
BAD_PROOF: Final = "bad_proof"
ALREADY_CONNECTED: Final = "already_connected"
SEQ_OUT_OF_ORDER: Final = "seq_out_of_order"
TAP_ID_REUSED: Final = "tap_id_reused"
BUSY: Final = "busy"
UNAVAILABLE: Final = "unavailable"
INTERNAL: Final = "internal"
TIMEOUT: Final = "timeout"
IMPLAUSIBLE_TIME: Final = "implausible_time"
BAD_OFFLINE_TAP: Final = "bad_offline_tap"

#: A tap's `terminal_time` may be at most this far ahead of the gateway's clock (a clock some
#: minutes fast is common in the field and harmless online; a year ahead is not a clock) ...
MAX_TERMINAL_TIME_AHEAD_MS: Final = 3600 * 1000
#: ... and at most this far behind it (a retried or queued tap is old, never older than this).
MAX_TERMINAL_TIME_BEHIND_MS: Final = 7 * 24 * 3600 * 1000


def terminal_time_plausible(terminal_time: int, gateway_time: int) -> bool:
    """Whether a new tap's `terminal_time` is within the plausibility window around the
    gateway's clock (docs/protocol.md section 2)."""
    return (
        gateway_time - MAX_TERMINAL_TIME_BEHIND_MS
        <= terminal_time
        <= gateway_time + MAX_TERMINAL_TIME_AHEAD_MS
    )

ERROR_CODES: Final[dict[str, str]] = {
    FRAME_TOO_LARGE: f"the frame is larger than {MAX_FRAME_BYTES} bytes",
    MALFORMED: "the frame is not a UTF-8 JSON object",
    UNSUPPORTED_VERSION: 'the "v" field is not a protocol version this gateway speaks (1)',
    UNKNOWN_TYPE: 'the "type" field names no message a terminal may send',
    MISSING_FIELD: "a required field is absent (or null)",
    BAD_FIELD: "a field has the wrong type, format or range",
    UNKNOWN_OP: "the tap's op is not one this gateway knows",
    NOT_AUTHENTICATED: "a tap or heartbeat arrived before the proof was accepted",
    UNEXPECTED_MESSAGE: (
        "the message is not allowed at this point (hello twice, proof without hello or after "
        "authentication)"
    ),
    UNKNOWN_TERMINAL: "no terminal with this id is registered",
    TERMINAL_REVOKED: "the terminal is registered but revoked",
    BAD_PROOF: (
        "the proof signature is invalid, names another terminal, or signs a challenge that was "
        "not issued on this connection"
    ),
    ALREADY_CONNECTED: "another live connection holds this terminal id",
    SEQ_OUT_OF_ORDER: (
        "seq is not greater than the last accepted one and the tap is not a retry of a known tap"
    ),
    TAP_ID_REUSED: "the tap id was already used for a tap with different content",
    BUSY: "the gateway is overloaded; nothing was charged; retry later with the same tap id",
    UNAVAILABLE: (
        "storage did not confirm the decision in time; the terminal must not treat the tap as "
        "approved and retries with the same tap id, which returns the original decision if there "
        "was one (never a second charge)"
    ),
    INTERNAL: "unexpected gateway failure; retry with the same tap id",
    IMPLAUSIBLE_TIME: (
        "the tap's terminal_time is more than 1 hour ahead of the gateway's clock or more than 7 "
        "days behind it; the tap was not recorded: correct the clock and send it again"
    ),
    BAD_OFFLINE_TAP: (
        "an offline tap's offline_sig does not verify with the terminal's key; it was not "
        "recorded"
    ),
    TIMEOUT: (
        "the connection is closed: no hello and proof within the handshake time-out, or no frame "
        "for 3 heartbeat intervals; reconnect"
    ),
}
"""Every error code with its meaning (rendered into docs/protocol.md)."""

ALWAYS_FATAL: Final[frozenset[str]] = frozenset(
    {
        UNSUPPORTED_VERSION,
        NOT_AUTHENTICATED,
        UNEXPECTED_MESSAGE,
        UNKNOWN_TERMINAL,
        TERMINAL_REVOKED,
        BAD_PROOF,
        ALREADY_CONNECTED,
        TIMEOUT,
    }
)
"""Codes after which the gateway always closes the connection. Before `welcome` every error is
fatal; after it, the other codes reject one frame and the connection stays open."""


def is_fatal(code: str, *, authenticated: bool) -> bool:
    """Whether the gateway closes the connection after sending this error code."""
    return not authenticated or code in ALWAYS_FATAL


class ProtocolError(Exception):
    """A frame the gateway refuses; `code` is one of `ERROR_CODES`. `seq`/`tap_id` are set when
    they could be read from the offending tap, so the error frame can reference it."""

    __slots__ = ("code", "message", "seq", "tap_id")

    def __init__(
        self, code: str, message: str, seq: int | None = None, tap_id: str | None = None
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.seq = seq
        self.tap_id = tap_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --------------------------------------------------------------------------------------------
# Field kinds and the table of tap operations
# --------------------------------------------------------------------------------------------


def is_int64(value: object) -> bool:
    """A JSON integer (not a bool, not a float) within int64 range."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def is_identifier(value: object) -> bool:
    """1-64 characters of `[A-Za-z0-9._:-]`."""
    return type(value) is str and _ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class FieldKind:
    """A value type of an op-specific field: its documented name and its check."""

    name: str
    check: Callable[[object], bool]


INT64: Final = FieldKind("integer (int64)", is_int64)
IDENTIFIER: Final = FieldKind("identifier", is_identifier)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One op-specific tap field."""

    name: str
    kind: FieldKind
    required: bool
    doc: str


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One tap operation: what it means and its op-specific fields."""

    doc: str
    fields: tuple[FieldSpec, ...]


_FACILITY: Final = FieldSpec(
    "facility",
    IDENTIFIER,
    required=False,
    doc="car park or facility id; default: the terminal's registered network",
)

_NETWORK: Final = FieldSpec(
    "network",
    IDENTIFIER,
    required=False,
    doc="transport network; default: the terminal's configured network",
)
_STOP: Final = FieldSpec(
    "stop",
    IDENTIFIER,
    required=False,
    doc="stop or station; default: the terminal's configured location",
)
_ROUTE: Final = FieldSpec(
    "route",
    IDENTIFIER,
    required=False,
    doc="route (GTFS route_id) a bus validator is serving; prices the leg from the tariff's feed",
)

OPS: Final[dict[str, OpSpec]] = {
    "fare": OpSpec(
        "pay a fare (metro gate, bus validator); the gateway computes the amount from the tariff",
        (
            FieldSpec(
                "network",
                IDENTIFIER,
                required=False,
                doc="transport network; default: the terminal's configured network",
            ),
            FieldSpec(
                "stop",
                IDENTIFIER,
                required=False,
                doc="stop or station; default: the terminal's configured location",
            ),
            _ROUTE,
        ),
    ),
    # Transit products (policies/transit.py, passes.py; docs/tariff.md).
    "tap_on": OpSpec(
        "enter a tap on / tap off network (gate, bus validator): the maximum fare from the stop "
        "is charged and a journey opened",
        (_NETWORK, _STOP, _ROUTE),
    ),
    "tap_off": OpSpec(
        "leave a tap on / tap off network (exit gate, bus validator): the real fare of the open "
        "journey is computed and the difference to the maximum credited",
        (_NETWORK, _STOP, _ROUTE),
    ),
    "buy_product": OpSpec(
        "buy a tariff product (1-, 7-, 31-day pass, tourist card) from stored value; it is "
        "activated by its first use",
        (FieldSpec("product", IDENTIFIER, required=True, doc="product id of the tariff"),),
    ),
    "inspect": OpSpec(
        "a ticket inspector checks the card on a bus or train: approved when it holds a valid "
        "ticket (open trip, usable pass, recent fare; which one in `detail.explain`), declined "
        "`no_valid_ticket`; charges nothing (inspector handhelds only)",
        (_NETWORK,),
    ),
    "card_info": OpSpec(
        "show the cardholder the card at a kiosk: balance, category, products and points "
        "(in `detail.explain`); charges nothing",
        (),
    ),
    "fare_correction": OpSpec(
        "an operator sets the fare of an incomplete journey (no tap off); the difference to what "
        "was charged is refunded (ops terminals only)",
        (
            FieldSpec(
                "journey",
                IDENTIFIER,
                required=True,
                doc="journey reference (from the tap on's explanation, e.g. J12)",
            ),
            FieldSpec(
                "amount", INT64, required=True, doc="the corrected fare, in minor units (>= 0)"
            ),
        ),
    ),
    "purchase": OpSpec(
        "pay an amount at a shop or venue till",
        (
            FieldSpec("amount", INT64, required=True, doc="amount to charge, in minor units"),
            FieldSpec(
                "merchant",
                IDENTIFIER,
                required=False,
                doc="merchant id; default: the terminal's operator",
            ),
            FieldSpec(
                "category",
                IDENTIFIER,
                required=False,
                doc="merchant category (discounts); default: the till's registered network",
            ),
        ),
    ),
    "topup": OpSpec(
        "load money onto the card",
        (FieldSpec("amount", INT64, required=True, doc="amount to load, in minor units"),),
    ),
    # City services (policies/services/; docs/services.md).
    "parking_entry": OpSpec(
        "a car enters a car park: opens a parking session (amount 0, or a lost-exit charge)",
        (_FACILITY,),
    ),
    "parking_exit": OpSpec(
        "a car leaves a car park: charges the session by the car park's time tariff",
        (_FACILITY,),
    ),
    "parking_close": OpSpec(
        "the car park's operator closes the card's open session (exit never seen)",
        (_FACILITY,),
    ),
    "taxi_fare": OpSpec(
        "a taxi driver's handheld charges the metered amount",
        (
            FieldSpec("amount", INT64, required=True, doc="metered amount, in minor units"),
            FieldSpec(
                "trip_id",
                IDENTIFIER,
                required=False,
                doc="the trip; a re-tap of a charged trip is not charged again",
            ),
        ),
    ),
    "venue_entry": OpSpec(
        "entry to a museum, cinema, library, gym...: an entitlement or a paid entry",
        (
            FieldSpec(
                "venue",
                IDENTIFIER,
                required=False,
                doc="venue id; default: the terminal's registered network",
            ),
        ),
    ),
    "access": OpSpec(
        "open a facility without payment (e.g. school grounds at night), by category and time",
        (_FACILITY,),
    ),
    "recycle": OpSpec(
        "a recycling kiosk reports a deposit; the card is credited per material and weight",
        (
            FieldSpec("material", IDENTIFIER, required=True, doc="material id of the tariff"),
            FieldSpec("weight_g", INT64, required=True, doc="weight deposited, in grams"),
        ),
    ),
    "reward_credit": OpSpec(
        "credit volunteer hours as reward points (authorised kiosks and operators only)",
        (FieldSpec("hours", INT64, required=True, doc="whole hours volunteered"),),
    ),
    "redeem_points": OpSpec(
        "turn reward points into fare credit (stored value)",
        (FieldSpec("points", INT64, required=True, doc="points to redeem"),),
    ),
}
"""Tap operations (op -> spec). Adding an op is adding a row; the policy core decides the rest.
Op-specific amounts are only checked for int64 here: zero, negative or excessive amounts are
business declines (`invalid_amount`, `amount_too_large`) with a signed `auth`, not protocol
errors."""

# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    terminal_id: str
    #: The version of the deny list the terminal holds (0: none); the gateway sends what changed
    #: since, or the whole list.
    deny_version: int = 0
    #: The terminal decides taps offline when it loses the gateway: send it the offline policy.
    offline: bool = False


@dataclass(frozen=True, slots=True)
class Proof:
    terminal_id: str
    challenge: str
    sig: str


@dataclass(frozen=True, slots=True, init=False)
class Tap:
    seq: int
    tap_id: str
    card: str
    op: str
    terminal_time: int
    fields: Mapping[str, object]
    """Validated op-specific values (only the fields `OPS[op]` names and the frame carried)."""

    # Decoded once per tap: stores through the slots (policies._slots).
    def __init__(
        self,
        seq: int,
        tap_id: str,
        card: str,
        op: str,
        terminal_time: int,
        fields: Mapping[str, object],
    ) -> None:
        s = _TAP
        s[0](self, seq)
        s[1](self, tap_id)
        s[2](self, card)
        s[3](self, op)
        s[4](self, terminal_time)
        s[5](self, fields)


_TAP: Final = slot_setters(Tap)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    t: int


TerminalMessage = Hello | Proof | Tap | Heartbeat


@dataclass(frozen=True, slots=True)
class AuthFields:
    """Exactly the signed fields of an `auth` message, in canonical order."""

    key_id: str
    terminal_id: str
    seq: int
    tap_id: str
    card: str
    result: str
    reason: str
    amount: int
    balance: int
    currency: str
    gateway_time: int


# --------------------------------------------------------------------------------------------
# Canonical bytes
# --------------------------------------------------------------------------------------------


def proof_bytes(terminal_id: str, challenge_hex: str, gateway_key_id: str) -> bytes:
    """What a terminal signs to prove it holds its key."""
    text = f"{PROOF_DOMAIN}\n{terminal_id}\n{challenge_hex}\n{gateway_key_id}\n"
    if not text.isascii() or text.count("\n") != 4:
        raise ValueError("proof fields must be ASCII without newlines")
    return text.encode("ascii")


def auth_bytes(f: AuthFields) -> bytes:
    """What the gateway signs for one authorisation."""
    text = (
        f"{AUTH_DOMAIN}\n{f.key_id}\n{f.terminal_id}\n{f.seq}\n{f.tap_id}\n{f.card}\n{f.result}\n"
        f"{f.reason}\n{f.amount}\n{f.balance}\n{f.currency}\n{f.gateway_time}\n"
    )
    # One pass each: an embedded newline or non-ASCII character would make the bytes ambiguous.
    if not text.isascii() or text.count("\n") != 12:
        raise ValueError("auth fields must be ASCII without newlines")
    return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class DenyFields:
    """Exactly the signed fields of a `deny_list` frame.

    A snapshot has `base_version` 0 and is sent in `parts` frames whose `add` lists together are
    the whole list at `list_version`; a delta (`parts` 1) turns the list at `base_version` into
    the list at `list_version` by adding `add` and removing `remove`."""

    key_id: str
    list_version: int
    base_version: int
    part: int
    parts: int
    gateway_time: int
    add: tuple[str, ...]
    remove: tuple[str, ...]


def deny_bytes(f: DenyFields) -> bytes:
    """What the gateway signs for one `deny_list` frame: the header fields, then each list as a
    count line followed by one card per line (cards are identifiers: no newlines)."""
    head = (
        f"{DENY_DOMAIN}\n{f.key_id}\n{f.list_version}\n{f.base_version}\n{f.part}\n{f.parts}\n"
        f"{f.gateway_time}\n"
    )
    lines = [head, f"{len(f.add)}\n", *(f"{c}\n" for c in f.add)]
    lines += [f"{len(f.remove)}\n", *(f"{c}\n" for c in f.remove)]
    text = "".join(lines)
    if not text.isascii() or text.count("\n") != 9 + len(f.add) + len(f.remove):
        raise ValueError("deny list fields must be ASCII without newlines")
    return text.encode("ascii")


def deny_parts(cards: list[str]) -> list[tuple[str, ...]]:
    """`cards` cut into frame-sized parts (at least one, possibly empty)."""
    step = DENY_PART_MAX_CARDS
    return [tuple(cards[i : i + step]) for i in range(0, len(cards), step)] or [()]


def tap_content_hash(tap: Tap) -> str:
    """Stable hash of what a tap asks for (card, op, op fields, terminal_time; not seq), used to
    tell a retry of a tap id from a reuse of it with other content."""
    card, op = tap.card, tap.op
    if not tap.fields and op in OPS and _id_fullmatch(card) is not None:
        # The same bytes orjson writes below (an identifier and an op name need no escaping),
        # without building the dict: most taps (fares) carry no fields.
        return hashlib.sha256(
            b'{"card":"%b","fields":{},"op":"%b","terminal_time":%d}'
            % (card.encode(), op.encode(), tap.terminal_time)
        ).hexdigest()
    canonical = orjson.dumps(
        {
            "card": tap.card,
            "fields": dict(tap.fields),
            "op": tap.op,
            "terminal_time": tap.terminal_time,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def new_challenge() -> str:
    """A fresh challenge: 32 random bytes as 64 lowercase hex characters."""
    return secrets.token_hex(32)


# --------------------------------------------------------------------------------------------
# Decoding terminal -> gateway
# --------------------------------------------------------------------------------------------


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _load_object(data: str | bytes) -> dict[str, Any]:
    if isinstance(data, str):
        # A str of at most MAX/4 code points cannot exceed MAX UTF-8 bytes.
        if (
            len(data) > MAX_FRAME_BYTES // 4
            and len(data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES
        ):
            raise ProtocolError(FRAME_TOO_LARGE, f"frame exceeds {MAX_FRAME_BYTES} bytes")
    elif len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(FRAME_TOO_LARGE, f"frame exceeds {MAX_FRAME_BYTES} bytes")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError(MALFORMED, "frame is not valid UTF-8 JSON") from None
    if type(obj) is not dict:
        raise ProtocolError(MALFORMED, "frame is not a JSON object")
    version = obj.get("v")
    if version is None:
        raise ProtocolError(MISSING_FIELD, "v is required")
    if type(version) is not int:  # "1", 1.0, true: not a version at all, a malformed field
        raise ProtocolError(BAD_FIELD, "v: expected an integer")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            UNSUPPORTED_VERSION, f"unsupported version {_short(version)}; this gateway speaks 1"
        )
    return obj


def _message_type(obj: dict[str, Any]) -> str:
    mtype = obj.get("type")
    if mtype is None:
        raise ProtocolError(MISSING_FIELD, "type is required")
    if type(mtype) is not str:
        raise ProtocolError(BAD_FIELD, "type: expected a string")
    return mtype


def _field(
    obj: dict[str, Any],
    name: str,
    check: Callable[[object], bool],
    expected: str,
    seq: int | None = None,
    tap_id: str | None = None,
) -> Any:
    value = obj.get(name)
    if value is None:  # absent and JSON null are treated alike
        raise ProtocolError(MISSING_FIELD, f"{name} is required", seq, tap_id)
    if not check(value):
        raise ProtocolError(BAD_FIELD, f"{name}: expected {expected}", seq, tap_id)
    return value


def _is_hex64(value: object) -> bool:
    return type(value) is str and _HEX64_RE.fullmatch(value) is not None


def _is_hex128(value: object) -> bool:
    return type(value) is str and _HEX128_RE.fullmatch(value) is not None


def _is_seq(value: object) -> bool:
    return type(value) is int and 1 <= value <= INT64_MAX


def _is_time(value: object) -> bool:
    return type(value) is int and 0 <= value <= INT64_MAX


def _is_str(value: object) -> bool:
    return type(value) is str


_ID_EXPECTED: Final = "an identifier (1-64 characters of A-Z a-z 0-9 . _ : -)"
_INT64_EXPECTED: Final = "an integer in int64 range"


def _decode_hello(obj: dict[str, Any]) -> Hello:
    terminal_id = _field(obj, "terminal_id", is_identifier, _ID_EXPECTED)
    deny_version = obj.get("deny_version", 0)
    if deny_version is None:
        deny_version = 0
    if not (is_int64(deny_version) and deny_version >= 0):
        raise ProtocolError(BAD_FIELD, "deny_version: expected an integer >= 0 in int64 range")
    offline = obj.get("offline", False)
    if offline is None:
        offline = False
    if type(offline) is not bool:
        raise ProtocolError(BAD_FIELD, "offline: expected a boolean")
    return Hello(terminal_id, deny_version, offline)


def _decode_proof(obj: dict[str, Any]) -> Proof:
    return Proof(
        _field(obj, "terminal_id", is_identifier, _ID_EXPECTED),
        _field(obj, "challenge", _is_hex64, "64 lowercase hex characters"),
        _field(obj, "sig", _is_hex128, "128 lowercase hex characters"),
    )


def _decode_heartbeat(obj: dict[str, Any]) -> Heartbeat:
    return Heartbeat(_field(obj, "t", is_int64, _INT64_EXPECTED))


_id_fullmatch: Final = _ID_RE.fullmatch
_TAP_SEQ_EXPECTED: Final = "an integer >= 1 in int64 range"
_TAP_TIME_EXPECTED: Final = "milliseconds since the epoch (int64, >= 0)"


def _tap_error(obj: dict[str, Any]) -> NoReturn:
    """Raise the precise error for a tap whose common fields failed the fast check."""
    # Read seq and tap_id leniently first so that the error can reference the tap.
    raw_seq = obj.get("seq")
    raw_tap_id = obj.get("tap_id")
    seq = raw_seq if _is_seq(raw_seq) else None
    tap_id = raw_tap_id if is_identifier(raw_tap_id) else None
    _field(obj, "seq", _is_seq, _TAP_SEQ_EXPECTED, None, tap_id)
    _field(obj, "tap_id", is_identifier, _ID_EXPECTED, seq, None)
    _field(obj, "card", is_identifier, _ID_EXPECTED, seq, tap_id)
    _field(obj, "op", _is_str, "a string", seq, tap_id)
    _field(obj, "terminal_time", _is_time, _TAP_TIME_EXPECTED, seq, tap_id)
    raise AssertionError("_tap_error called for a valid tap")  # pragma: no cover


def _decode_tap(obj: dict[str, Any]) -> Tap:
    seq = obj.get("seq")
    tap_id = obj.get("tap_id")
    card = obj.get("card")
    op = obj.get("op")
    terminal_time = obj.get("terminal_time")
    # Fast path: one expression for the common fields; _tap_error finds the culprit otherwise.
    if not (
        type(seq) is int
        and 1 <= seq <= INT64_MAX
        and type(tap_id) is str
        and _id_fullmatch(tap_id) is not None
        and type(card) is str
        and _id_fullmatch(card) is not None
        and type(op) is str
        and type(terminal_time) is int
        and 0 <= terminal_time <= INT64_MAX
    ):
        _tap_error(obj)
    spec = OPS.get(op)
    if spec is None:
        raise ProtocolError(UNKNOWN_OP, f"unknown op {_short(op)}", seq, tap_id)
    fields: dict[str, object] = {}
    for fs in spec.fields:
        value = obj.get(fs.name)
        if value is None:
            if fs.required:
                raise ProtocolError(MISSING_FIELD, f"{fs.name} is required for {op}", seq, tap_id)
            continue
        if not fs.kind.check(value):
            raise ProtocolError(BAD_FIELD, f"{fs.name}: expected {fs.kind.name}", seq, tap_id)
        fields[fs.name] = value
    offline = obj.get(OFFLINE_RESULT)
    if offline is not None or OFFLINE_SIG in obj or OFFLINE_AMOUNT in obj:
        _offline_fields(obj, seq, tap_id)
        fields[OFFLINE_RESULT] = offline
        fields[OFFLINE_AMOUNT] = obj[OFFLINE_AMOUNT]
        fields[OFFLINE_SIG] = obj[OFFLINE_SIG]
    counter = obj.get(CARD_COUNTER)
    card_sig = obj.get(CARD_SIG)
    if counter is not None or card_sig is not None:
        _card_cryptogram(counter, card_sig, seq, tap_id)
        fields[CARD_COUNTER] = counter
        fields[CARD_SIG] = card_sig
    return Tap(seq, tap_id, card, op, terminal_time, fields)


#: The card cryptogram: optional fields of every tap (docs/protocol.md section 8), carried in
#: `Tap.fields` so that the content hash covers them.
CARD_COUNTER: Final = "card_counter"
CARD_SIG: Final = "card_sig"


def _card_cryptogram(counter: object, card_sig: object, seq: int, tap_id: str) -> None:
    for name, value in ((CARD_COUNTER, counter), (CARD_SIG, card_sig)):
        if value is None:
            raise ProtocolError(
                MISSING_FIELD, f"{name} is required with {CARD_COUNTER} and {CARD_SIG}", seq,
                tap_id,
            )
    if not _is_seq(counter):
        raise ProtocolError(BAD_FIELD, f"{CARD_COUNTER}: expected an integer >= 1", seq, tap_id)
    if not _is_hex128(card_sig):
        raise ProtocolError(BAD_FIELD, f"{CARD_SIG}: expected 128 lowercase hex characters",
                            seq, tap_id)


#: An offline tap (section 8, *Offline taps*): what the terminal decided and its signature.
OFFLINE_RESULT: Final = "offline_result"
OFFLINE_AMOUNT: Final = "offline_amount"
OFFLINE_SIG: Final = "offline_sig"


def _offline_fields(obj: dict[str, Any], seq: int, tap_id: str) -> None:
    for name in (OFFLINE_RESULT, OFFLINE_AMOUNT, OFFLINE_SIG):
        if obj.get(name) is None:
            raise ProtocolError(
                MISSING_FIELD, f"{name} is required in an offline tap", seq, tap_id
            )
    if obj[OFFLINE_RESULT] not in (RESULT_APPROVED, RESULT_DECLINED):
        raise ProtocolError(BAD_FIELD, f"{OFFLINE_RESULT}: expected approved or declined", seq,
                            tap_id)
    amount = obj[OFFLINE_AMOUNT]
    if not (is_int64(amount) and amount >= 0):
        raise ProtocolError(BAD_FIELD, f"{OFFLINE_AMOUNT}: expected an integer >= 0", seq,
                            tap_id)
    if not _is_hex128(obj[OFFLINE_SIG]):
        raise ProtocolError(BAD_FIELD, f"{OFFLINE_SIG}: expected 128 lowercase hex characters",
                            seq, tap_id)


def offline_tap_bytes(
    terminal_id: str,
    tap_id: str,
    card: str,
    op: str,
    terminal_time: int,
    result: str,
    amount: int,
) -> bytes:
    """What a terminal signs with its own key for a tap it decided offline."""
    text = (
        f"{OFFLINE_TAP_DOMAIN}\n{terminal_id}\n{tap_id}\n{card}\n{op}\n{terminal_time}\n"
        f"{result}\n{amount}\n"
    )
    if not text.isascii() or text.count("\n") != 8:
        raise ValueError("offline tap fields must be ASCII without newlines")
    return text.encode("ascii")


def offline_of(tap: Tap) -> tuple[str, int, str] | None:
    """(offline_result, offline_amount, offline_sig) of an offline tap, else None."""
    result = tap.fields.get(OFFLINE_RESULT)
    if result is None:
        return None
    f = tap.fields
    return str(result), int(f[OFFLINE_AMOUNT]), str(f[OFFLINE_SIG])  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class OfflinePolicyFields:
    """The signed content of an `offline_policy` message: how a terminal decides offline."""

    key_id: str
    version: int
    gateway_time: int
    #: largest amount one offline tap may approve
    max_tap_amount: int
    #: most offline taps a terminal may hold before uploading (then it declines)
    max_queue_taps: int
    #: largest sum of approved offline amounts it may hold
    max_queue_total: int
    #: oldest offline tap the gateway accepts (ms behind its clock)
    max_age_ms: int
    #: (network, fare) of the flat fares a gate or validator charges offline
    fares: tuple[tuple[str, int], ...]


def offline_policy_bytes(f: OfflinePolicyFields) -> bytes:
    """What the gateway signs for an `offline_policy`: the header, then a count line and one
    "network fare" line per fare, sorted by network."""
    head = (
        f"{OFFLINE_DOMAIN}\n{f.key_id}\n{f.version}\n{f.gateway_time}\n{f.max_tap_amount}\n"
        f"{f.max_queue_taps}\n{f.max_queue_total}\n{f.max_age_ms}\n"
    )
    fares = sorted(f.fares)
    text = head + f"{len(fares)}\n" + "".join(f"{n} {a}\n" for n, a in fares)
    if not text.isascii() or text.count("\n") != 9 + len(fares):
        raise ValueError("offline policy fields must be ASCII without newlines")
    return text.encode("ascii")


def encode_offline_policy(f: OfflinePolicyFields, sig_hex: str) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "type": OFFLINE_POLICY,
            "key_id": f.key_id,
            "version": f.version,
            "gateway_time": f.gateway_time,
            "max_tap_amount": f.max_tap_amount,
            "max_queue_taps": f.max_queue_taps,
            "max_queue_total": f.max_queue_total,
            "max_age_ms": f.max_age_ms,
            "fares": {n: a for n, a in sorted(f.fares)},
            "sig": sig_hex,
        }
    )


def offline_policy_from_message(msg: Mapping[str, Any]) -> OfflinePolicyFields:
    """The signed fields of a decoded `offline_policy` message."""
    return OfflinePolicyFields(
        key_id=msg["key_id"],
        version=msg["version"],
        gateway_time=msg["gateway_time"],
        max_tap_amount=msg["max_tap_amount"],
        max_queue_taps=msg["max_queue_taps"],
        max_queue_total=msg["max_queue_total"],
        max_age_ms=msg["max_age_ms"],
        fares=tuple(sorted(msg["fares"].items())),
    )


def _is_fares(value: object) -> bool:
    return (
        type(value) is dict
        and len(value) <= 64
        and all(is_identifier(k) and is_int64(v) and v >= 0 for k, v in value.items())
    )


def card_proof_of(tap: Tap) -> tuple[int, str] | None:
    """(card_counter, card_sig) of a tap that carries a card cryptogram."""
    counter = tap.fields.get(CARD_COUNTER)
    if counter is None:
        return None
    return int(counter), str(tap.fields[CARD_SIG])  # type: ignore[call-overload]


_TERMINAL_DECODERS: Final[dict[str, Callable[[dict[str, Any]], TerminalMessage]]] = {
    HELLO: _decode_hello,
    PROOF: _decode_proof,
    TAP: _decode_tap,
    HEARTBEAT: _decode_heartbeat,
}


def decode_terminal_message(data: str | bytes) -> TerminalMessage:
    """Parse and validate one frame from a terminal; raises `ProtocolError` and nothing else."""
    obj = _load_object(data)
    mtype = _message_type(obj)
    decoder = _TERMINAL_DECODERS.get(mtype)
    if decoder is None:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {_short(mtype)}")
    return decoder(obj)


# --------------------------------------------------------------------------------------------
# Encoding gateway -> terminal
# --------------------------------------------------------------------------------------------


def encode_challenge(challenge_hex: str, key_id: str, gateway_time: int) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "type": CHALLENGE,
            "challenge": challenge_hex,
            "key_id": key_id,
            "gateway_time": gateway_time,
        }
    )


def encode_welcome(
    terminal_id: str,
    last_seq: int,
    key_id: str,
    heartbeat_s: int = DEFAULT_HEARTBEAT_S,
    max_frame: int = MAX_FRAME_BYTES,
) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "type": WELCOME,
            "terminal_id": terminal_id,
            "last_seq": last_seq,
            "key_id": key_id,
            "heartbeat_s": heartbeat_s,
            "max_frame": max_frame,
        }
    )


def encode_auth(
    auth: AuthFields, sig_hex: str, detail: Mapping[str, object] | None = None
) -> bytes:
    """The `auth` frame. `detail` (unsigned, informational) is dropped if it cannot be encoded or
    would push the frame over `MAX_FRAME_BYTES`: the signed part always gets through."""
    msg: dict[str, object] = {
        "v": 1,
        "type": AUTH,
        "key_id": auth.key_id,
        "terminal_id": auth.terminal_id,
        "seq": auth.seq,
        "tap_id": auth.tap_id,
        "card": auth.card,
        "result": auth.result,
        "reason": auth.reason,
        "amount": auth.amount,
        "balance": auth.balance,
        "currency": auth.currency,
        "gateway_time": auth.gateway_time,
        "sig": sig_hex,
    }
    if detail is None:
        return orjson.dumps(msg)
    msg["detail"] = detail
    try:
        out = orjson.dumps(msg)
    except orjson.JSONEncodeError:
        out = b""
    if not out or len(out) > MAX_FRAME_BYTES:
        del msg["detail"]
        out = orjson.dumps(msg)
    return out


_MAX_ERROR_MESSAGE: Final = 512


def encode_error(
    code: str,
    message: str,
    fatal: bool,
    seq: int | None = None,
    tap_id: str | None = None,
) -> bytes:
    msg: dict[str, object] = {
        "v": 1,
        "type": ERROR,
        "code": code,
        "message": message[:_MAX_ERROR_MESSAGE],
        "fatal": fatal,
    }
    if seq is not None:
        msg["seq"] = seq
    if tap_id is not None:
        msg["tap_id"] = tap_id
    return orjson.dumps(msg)


def encode_protocol_error(err: ProtocolError, *, fatal: bool) -> bytes:
    """The error frame answering a `ProtocolError` raised by the decoder."""
    return encode_error(err.code, err.message, fatal, err.seq, err.tap_id)


def encode_heartbeat_ack(t: int, gateway_time: int) -> bytes:
    return orjson.dumps({"v": 1, "type": HEARTBEAT_ACK, "t": t, "gateway_time": gateway_time})


def encode_deny_list(f: DenyFields, sig_hex: str) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "type": DENY_LIST,
            "key_id": f.key_id,
            "list_version": f.list_version,
            "base_version": f.base_version,
            "part": f.part,
            "parts": f.parts,
            "gateway_time": f.gateway_time,
            "add": list(f.add),
            "remove": list(f.remove),
            "sig": sig_hex,
        }
    )


# --------------------------------------------------------------------------------------------
# Terminal side: encoding terminal -> gateway, decoding gateway -> terminal
# --------------------------------------------------------------------------------------------


def encode_hello(terminal_id: str, deny_version: int = 0, offline: bool = False) -> bytes:
    if deny_version or offline:
        msg: dict[str, object] = {"v": 1, "type": HELLO, "terminal_id": terminal_id}
        if deny_version:
            msg["deny_version"] = deny_version
        if offline:
            msg["offline"] = True
        return orjson.dumps(msg)
    return orjson.dumps({"v": 1, "type": HELLO, "terminal_id": terminal_id})


def encode_proof(terminal_id: str, challenge_hex: str, sig_hex: str) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "type": PROOF,
            "terminal_id": terminal_id,
            "challenge": challenge_hex,
            "sig": sig_hex,
        }
    )


def encode_tap(
    seq: int,
    tap_id: str,
    card: str,
    op: str,
    terminal_time: int,
    fields: Mapping[str, object] | None = None,
) -> bytes:
    msg: dict[str, object] = {
        "v": 1,
        "type": TAP,
        "seq": seq,
        "tap_id": tap_id,
        "card": card,
        "op": op,
        "terminal_time": terminal_time,
    }
    if fields:
        for name, value in fields.items():
            msg.setdefault(name, value)  # op fields never override the common ones
    return orjson.dumps(msg)


def encode_heartbeat(t: int) -> bytes:
    return orjson.dumps({"v": 1, "type": HEARTBEAT, "t": t})


def _is_bool(value: object) -> bool:
    return type(value) is bool


def _is_object(value: object) -> bool:
    return type(value) is dict


def _is_card_list(value: object) -> bool:
    return (
        type(value) is list
        and len(value) <= DENY_PART_MAX_CARDS
        and all(is_identifier(c) for c in value)
    )


_GATEWAY_FIELDS: Final[dict[str, tuple[tuple[str, Callable[[object], bool], str], ...]]] = {
    CHALLENGE: (
        ("challenge", _is_hex64, "64 lowercase hex characters"),
        ("key_id", is_identifier, _ID_EXPECTED),
        ("gateway_time", is_int64, _INT64_EXPECTED),
    ),
    WELCOME: (
        ("terminal_id", is_identifier, _ID_EXPECTED),
        ("last_seq", is_int64, _INT64_EXPECTED),
        ("key_id", is_identifier, _ID_EXPECTED),
        ("heartbeat_s", is_int64, _INT64_EXPECTED),
        ("max_frame", is_int64, _INT64_EXPECTED),
    ),
    AUTH: (
        ("key_id", is_identifier, _ID_EXPECTED),
        ("terminal_id", is_identifier, _ID_EXPECTED),
        ("seq", is_int64, _INT64_EXPECTED),
        ("tap_id", is_identifier, _ID_EXPECTED),
        ("card", is_identifier, _ID_EXPECTED),
        ("result", _is_str, "a string"),
        ("reason", _is_str, "a string"),
        ("amount", is_int64, _INT64_EXPECTED),
        ("balance", is_int64, _INT64_EXPECTED),
        ("currency", _is_str, "a string"),
        ("gateway_time", is_int64, _INT64_EXPECTED),
        ("sig", _is_hex128, "128 lowercase hex characters"),
    ),
    ERROR: (
        ("code", _is_str, "a string"),
        ("message", _is_str, "a string"),
        ("fatal", _is_bool, "a boolean"),
    ),
    HEARTBEAT_ACK: (
        ("t", is_int64, _INT64_EXPECTED),
        ("gateway_time", is_int64, _INT64_EXPECTED),
    ),
    DENY_LIST: (
        ("key_id", is_identifier, _ID_EXPECTED),
        ("list_version", is_int64, _INT64_EXPECTED),
        ("base_version", is_int64, _INT64_EXPECTED),
        ("part", is_int64, _INT64_EXPECTED),
        ("parts", is_int64, _INT64_EXPECTED),
        ("gateway_time", is_int64, _INT64_EXPECTED),
        ("add", _is_card_list, f"a list of at most {DENY_PART_MAX_CARDS} identifiers"),
        ("remove", _is_card_list, f"a list of at most {DENY_PART_MAX_CARDS} identifiers"),
        ("sig", _is_hex128, "128 lowercase hex characters"),
    ),
    OFFLINE_POLICY: (
        ("key_id", is_identifier, _ID_EXPECTED),
        ("version", is_int64, _INT64_EXPECTED),
        ("gateway_time", is_int64, _INT64_EXPECTED),
        ("max_tap_amount", is_int64, _INT64_EXPECTED),
        ("max_queue_taps", is_int64, _INT64_EXPECTED),
        ("max_queue_total", is_int64, _INT64_EXPECTED),
        ("max_age_ms", is_int64, _INT64_EXPECTED),
        ("fares", _is_fares, "an object of at most 64 identifiers to integers >= 0"),
        ("sig", _is_hex128, "128 lowercase hex characters"),
    ),
}


def decode_gateway_message(data: str | bytes) -> dict[str, Any]:
    """Parse a frame from the gateway (terminal/simulator side) and check that its required
    fields are present with the right JSON types. Raises `ProtocolError`. Unknown fields are
    kept; verifying an `auth` signature is `signing.verify_auth`'s job."""
    obj = _load_object(data)
    mtype = _message_type(obj)
    specs = _GATEWAY_FIELDS.get(mtype)
    if specs is None:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {_short(mtype)}")
    for name, check, expected in specs:
        _field(obj, name, check, expected)
    if mtype == AUTH and "detail" in obj and not _is_object(obj["detail"]):
        raise ProtocolError(BAD_FIELD, "detail: expected an object")
    if mtype == ERROR:
        if "seq" in obj and not is_int64(obj["seq"]):
            raise ProtocolError(BAD_FIELD, f"seq: expected {_INT64_EXPECTED}")
        if "tap_id" in obj and not is_identifier(obj["tap_id"]):
            raise ProtocolError(BAD_FIELD, f"tap_id: expected {_ID_EXPECTED}")
    return obj


def deny_fields_from_message(msg: Mapping[str, Any]) -> DenyFields:
    """The signed fields of a decoded `deny_list` message (from `decode_gateway_message`)."""
    return DenyFields(
        key_id=msg["key_id"],
        list_version=msg["list_version"],
        base_version=msg["base_version"],
        part=msg["part"],
        parts=msg["parts"],
        gateway_time=msg["gateway_time"],
        add=tuple(msg["add"]),
        remove=tuple(msg["remove"]),
    )


def auth_fields_from_message(msg: Mapping[str, Any]) -> AuthFields:
    """The signed fields of a decoded `auth` message (from `decode_gateway_message`)."""
    return AuthFields(
        key_id=msg["key_id"],
        terminal_id=msg["terminal_id"],
        seq=msg["seq"],
        tap_id=msg["tap_id"],
        card=msg["card"],
        result=msg["result"],
        reason=msg["reason"],
        amount=msg["amount"],
        balance=msg["balance"],
        currency=msg["currency"],
        gateway_time=msg["gateway_time"],
    )
