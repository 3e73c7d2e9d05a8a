"""The citycard card application: APDUs, status words, and both sides of them.

Card side: `CityCardApplet.process` answers ISO 7816-4 short command APDUs (what a card OS would
run; the virtual card in `terminal_sim.vcard` serves it to a PC/SC reader). Terminal side: the
command builders (`select_apdu`, `get_data_apdu`, `internal_authenticate_apdu`) and the checks a
reader applies to the answers (`parse_fci`, `verify_card`).

The application (AID `F0 43 49 54 59 43 41 52 44 01`: proprietary F0, "CITYCARD", version 1)
holds the card token the gateway knows and, optionally, an Ed25519 card key with an issuer
certificate, so that a terminal can tell a genuine card from a copy of its token
(INTERNAL AUTHENTICATE). `docs/card-readers.md` describes it for card and terminal vendors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import nacl.exceptions
import nacl.signing

from actors.card_auth import tap_cryptogram_bytes
from gateway.wire.protocol import is_identifier

AID: Final = bytes.fromhex("F0") + b"CITYCARD" + b"\x01"
APP_VERSION: Final = 1

# Instructions (CLA 00).
CLA_ISO: Final = 0x00
INS_SELECT: Final = 0xA4
INS_GET_DATA: Final = 0xCA
INS_INTERNAL_AUTHENTICATE: Final = 0x88
# Proprietary class: the tap cryptogram (the card's counter and its signature over the tap).
CLA_PROPRIETARY: Final = 0x80
INS_TAP_CRYPTOGRAM: Final = 0xAE
#: Longest "terminal_id LF tap_id" a TAP CRYPTOGRAM command carries (two identifiers).
MAX_TAP_DATA: Final = 64 + 1 + 64

# GET DATA tags (P1-P2).
TAG_TOKEN: Final = 0xDF01
TAG_CARD_KEY: Final = 0xDF02
TAG_ISSUER_CERT: Final = 0xDF03

# FCI (answer to SELECT): 6F { 84 AID, A5 { 80 version, 81 features } }.
FEATURE_CARD_KEY: Final = 0x01

#: Challenge length accepted by INTERNAL AUTHENTICATE, bytes.
MIN_CHALLENGE: Final = 16
MAX_CHALLENGE: Final = 64

CARD_CERT_DOMAIN: Final = "citycard-card-cert-v1"
CARD_AUTH_DOMAIN: Final = "citycard-card-auth-v1"

# Status words.
SW_OK: Final = 0x9000
SW_WRONG_LENGTH: Final = 0x6700
SW_CONDITIONS_NOT_SATISFIED: Final = 0x6985
SW_FUNCTION_NOT_SUPPORTED: Final = 0x6A81
SW_APP_NOT_FOUND: Final = 0x6A82
SW_INCORRECT_P1P2: Final = 0x6A86
SW_DATA_NOT_FOUND: Final = 0x6A88
SW_WRONG_LE: Final = 0x6C00  # | exact length available
SW_INS_NOT_SUPPORTED: Final = 0x6D00
SW_CLA_NOT_SUPPORTED: Final = 0x6E00


class CardError(Exception):
    """A card answered with an unexpected status word, or with data that does not check out."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        super().__init__(message if sw is None else f"{message} (SW {sw:04X})")
        self.sw = sw


# --------------------------------------------------------------------------------------------
# Signed bytes
# --------------------------------------------------------------------------------------------


def cert_bytes(token: str, card_public_key: bytes) -> bytes:
    """What the issuer signs to bind a card key to a token (the issuer certificate, DF03)."""
    return f"{CARD_CERT_DOMAIN}\n{token}\n{card_public_key.hex()}\n".encode("ascii")


def card_auth_bytes(token: str, challenge: bytes) -> bytes:
    """What the card signs in INTERNAL AUTHENTICATE."""
    return f"{CARD_AUTH_DOMAIN}\n{token}\n{challenge.hex()}\n".encode("ascii")


# --------------------------------------------------------------------------------------------
# APDU framing (short APDUs only)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    #: expected response length (Ne): None when absent, 256 for Le = 00
    ne: int | None


def parse_command(apdu: bytes) -> Command | None:
    """Decode a short command APDU (cases 1 to 4); None if malformed or extended."""
    if len(apdu) < 4:
        return None
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return Command(cla, ins, p1, p2, b"", body[0] or 256)
    lc = body[0]
    if lc == 0:  # extended length: not supported
        return None
    if len(body) == 1 + lc:
        return Command(cla, ins, p1, p2, body[1:], None)
    if len(body) == 2 + lc:
        return Command(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
    return None


def build_apdu(
    cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None
) -> list[int]:
    """A short command APDU as pyscard wants it (a list of ints); `le=256` is sent as 00."""
    if len(data) > 255 or (le is not None and not 1 <= le <= 256):
        raise ValueError("short APDU: data up to 255 bytes, Le 1..256")
    apdu = [cla, ins, p1, p2]
    if data:
        apdu += [len(data), *data]
    if le is not None:
        apdu.append(le & 0xFF)
    return apdu


def select_apdu(aid: bytes = AID) -> list[int]:
    return build_apdu(CLA_ISO, INS_SELECT, 0x04, 0x00, aid, 256)


def get_data_apdu(tag: int) -> list[int]:
    return build_apdu(CLA_ISO, INS_GET_DATA, tag >> 8, tag & 0xFF, b"", 256)


def internal_authenticate_apdu(challenge: bytes) -> list[int]:
    return build_apdu(CLA_ISO, INS_INTERNAL_AUTHENTICATE, 0x00, 0x00, challenge, 256)


def tap_cryptogram_apdu(terminal_id: str, tap_id: str) -> list[int]:
    """Ask the card to sign one tap: data "terminal_id LF tap_id"; the answer is the card's
    counter (4 bytes, big-endian) and its Ed25519 signature over `tap_cryptogram_bytes`."""
    data = f"{terminal_id}\n{tap_id}".encode("ascii")
    return build_apdu(CLA_PROPRIETARY, INS_TAP_CRYPTOGRAM, 0x00, 0x00, data, 256)


def parse_tap_cryptogram(data: bytes) -> tuple[int, str]:
    """(card_counter, card_sig hex) from a TAP CRYPTOGRAM answer."""
    if len(data) != 4 + 64:
        raise CardError(f"TAP CRYPTOGRAM answer of {len(data)} bytes, not 68")
    return int.from_bytes(data[:4], "big"), data[4:].hex()


# --------------------------------------------------------------------------------------------
# BER-TLV (the few one- and two-byte tags the FCI uses; lengths up to 255)
# --------------------------------------------------------------------------------------------


def tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    length = bytes([len(value)]) if len(value) < 0x80 else bytes([0x81, len(value)])
    return tag_bytes + length + value


def parse_tlv(data: bytes) -> dict[int, bytes]:
    """Top-level TLVs of `data` (tag -> value); raises CardError on malformed input."""
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:  # two-byte tag
            if i >= len(data):
                raise CardError("truncated TLV tag")
            tag = (tag << 8) | data[i]
            i += 1
        if i >= len(data):
            raise CardError("truncated TLV length")
        length = data[i]
        i += 1
        if length == 0x81:
            if i >= len(data):
                raise CardError("truncated TLV length")
            length = data[i]
            i += 1
        elif length > 0x80:
            raise CardError("TLV length too large")
        if i + length > len(data):
            raise CardError("truncated TLV value")
        out[tag] = data[i : i + length]
        i += length
    return out


@dataclass(frozen=True, slots=True)
class Fci:
    aid: bytes
    version: int
    features: int

    @property
    def has_card_key(self) -> bool:
        return bool(self.features & FEATURE_CARD_KEY)


def build_fci(aid: bytes, version: int, features: int) -> bytes:
    prop = tlv(0x80, bytes([version])) + tlv(0x81, bytes([features]))
    return tlv(0x6F, tlv(0x84, aid) + tlv(0xA5, prop))


def parse_fci(data: bytes) -> Fci:
    """The answer to SELECT, checked to name this application."""
    outer = parse_tlv(data)
    if 0x6F not in outer:
        raise CardError("SELECT answer is not an FCI template")
    fci = parse_tlv(outer[0x6F])
    prop = parse_tlv(fci.get(0xA5, b""))
    version = prop.get(0x80, b"")
    features = prop.get(0x81, b"\x00")
    if fci.get(0x84) != AID or len(version) != 1 or len(features) != 1:
        raise CardError("SELECT answer does not name the citycard application")
    return Fci(fci[0x84], version[0], features[0])


# --------------------------------------------------------------------------------------------
# Card side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardProfile:
    """What is personalised into one card: its token and, optionally, its key and certificate."""

    token: str
    card_key: nacl.signing.SigningKey | None = None
    issuer_cert: bytes = b""

    def __post_init__(self) -> None:
        if not is_identifier(self.token):
            raise ValueError(f"card token {self.token!r} is not a protocol identifier")


def personalise(
    token: str,
    *,
    issuer_key: nacl.signing.SigningKey | None = None,
    card_seed: bytes | None = None,
) -> CardProfile:
    """A card profile; with `issuer_key`, the card gets a key (from `card_seed`, or fresh) and
    the issuer's certificate binding it to the token."""
    if issuer_key is None:
        return CardProfile(token)
    card_key = (
        nacl.signing.SigningKey(card_seed) if card_seed else nacl.signing.SigningKey.generate()
    )
    cert = issuer_key.sign(cert_bytes(token, bytes(card_key.verify_key))).signature
    return CardProfile(token, card_key, cert)


def _sw(sw: int, data: bytes = b"") -> bytes:
    return data + sw.to_bytes(2, "big")


class CityCardApplet:
    """The card application's state machine: nothing but SELECT works until it is selected."""

    def __init__(self, profile: CardProfile, counter: int = 0) -> None:
        self.profile = profile
        self.selected = False
        #: the card's transaction counter: raised before every tap cryptogram, never lowered
        #: (a real card keeps it in non-volatile memory)
        self.counter = counter

    def reset(self) -> None:
        """Power-on or reset: the application is deselected."""
        self.selected = False

    def process(self, apdu: bytes) -> bytes:
        """The response APDU (data + SW1 SW2) to one command APDU."""
        cmd = parse_command(apdu)
        if cmd is None:
            return _sw(SW_WRONG_LENGTH)
        if cmd.cla == CLA_PROPRIETARY and cmd.ins == INS_TAP_CRYPTOGRAM:
            data, sw = self._tap_cryptogram(cmd)
        elif cmd.cla != CLA_ISO:
            return _sw(SW_CLA_NOT_SUPPORTED)
        elif cmd.ins == INS_SELECT:
            data, sw = self._select(cmd)
        elif cmd.ins == INS_GET_DATA:
            data, sw = self._get_data(cmd)
        elif cmd.ins == INS_INTERNAL_AUTHENTICATE:
            data, sw = self._internal_authenticate(cmd)
        else:
            return _sw(SW_INS_NOT_SUPPORTED)
        if sw == SW_OK and data and cmd.ne is not None and cmd.ne < len(data):
            return _sw(SW_WRONG_LE | (len(data) & 0xFF))  # 6Cxx: ask again with Le = xx
        return _sw(sw, data)

    def _select(self, cmd: Command) -> tuple[bytes, int]:
        if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x0C):
            return b"", SW_INCORRECT_P1P2
        if cmd.data != AID:
            self.selected = False
            return b"", SW_APP_NOT_FOUND
        self.selected = True
        if cmd.p2 == 0x0C:  # no FCI wanted
            return b"", SW_OK
        features = FEATURE_CARD_KEY if self.profile.card_key is not None else 0
        return build_fci(AID, APP_VERSION, features), SW_OK

    def _get_data(self, cmd: Command) -> tuple[bytes, int]:
        if not self.selected:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        if cmd.data:
            return b"", SW_WRONG_LENGTH
        tag = (cmd.p1 << 8) | cmd.p2
        p = self.profile
        if tag == TAG_TOKEN:
            return p.token.encode("ascii"), SW_OK
        if tag == TAG_CARD_KEY and p.card_key is not None:
            return bytes(p.card_key.verify_key), SW_OK
        if tag == TAG_ISSUER_CERT and p.issuer_cert:
            return p.issuer_cert, SW_OK
        return b"", SW_DATA_NOT_FOUND

    def _internal_authenticate(self, cmd: Command) -> tuple[bytes, int]:
        if not self.selected:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        if cmd.p1 != 0 or cmd.p2 != 0:
            return b"", SW_INCORRECT_P1P2
        if not MIN_CHALLENGE <= len(cmd.data) <= MAX_CHALLENGE:
            return b"", SW_WRONG_LENGTH
        key = self.profile.card_key
        if key is None:
            return b"", SW_FUNCTION_NOT_SUPPORTED
        return key.sign(card_auth_bytes(self.profile.token, cmd.data)).signature, SW_OK

    def _tap_cryptogram(self, cmd: Command) -> tuple[bytes, int]:
        if not self.selected:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        if cmd.p1 != 0 or cmd.p2 != 0:
            return b"", SW_INCORRECT_P1P2
        key = self.profile.card_key
        if key is None:
            return b"", SW_FUNCTION_NOT_SUPPORTED
        try:
            terminal_id, tap_id = cmd.data.decode("ascii").split("\n")
        except (UnicodeDecodeError, ValueError):
            return b"", SW_WRONG_LENGTH
        if len(cmd.data) > MAX_TAP_DATA or not (is_identifier(terminal_id)
                                                and is_identifier(tap_id)):
            return b"", SW_WRONG_LENGTH
        if self.counter >= 0xFFFFFFFF:
            return b"", SW_CONDITIONS_NOT_SATISFIED  # the counter is spent: the card is dead
        self.counter += 1
        msg = tap_cryptogram_bytes(self.profile.token, terminal_id, tap_id, self.counter)
        return self.counter.to_bytes(4, "big") + key.sign(msg).signature, SW_OK


# --------------------------------------------------------------------------------------------
# Terminal side: checking a card's answers
# --------------------------------------------------------------------------------------------


def verify_card(
    token: str,
    card_public_key: bytes,
    issuer_cert: bytes,
    challenge: bytes,
    signature: bytes,
    issuer_keys: list[nacl.signing.VerifyKey],
) -> bool:
    """Whether one of the trusted issuer keys certified `card_public_key` for `token`, and the
    card's key signed this terminal's fresh `challenge`."""
    try:
        card_key = nacl.signing.VerifyKey(card_public_key)
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    certified = False
    for issuer in issuer_keys:
        try:
            issuer.verify(cert_bytes(token, card_public_key), issuer_cert)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            continue
        certified = True
        break
    if not certified:
        return False
    try:
        card_key.verify(card_auth_bytes(token, challenge), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True
