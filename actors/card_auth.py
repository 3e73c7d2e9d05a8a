"""Checking a tap's card cryptogram: the bytes a card signs and the Ed25519 verification.

The rules on the verdict (required, stale counter) are the pure core's
(`policies.card_auth`); this module only does the cryptography, which the core may not import.
"""

from __future__ import annotations

from typing import Final

import nacl.exceptions
import nacl.signing

#: Domain separation: a card signature over a tap can be nothing else.
TAP_CRYPTOGRAM_DOMAIN: Final = "citycard-tap-v1"


def tap_cryptogram_bytes(card: str, terminal_id: str, tap_id: str, counter: int) -> bytes:
    """What a card signs for one tap: the domain, the card token, the terminal id, the tap id
    and the card's counter in decimal, each followed by a newline (identifiers cannot hold
    one, so the bytes are unambiguous)."""
    return f"{TAP_CRYPTOGRAM_DOMAIN}\n{card}\n{terminal_id}\n{tap_id}\n{counter}\n".encode()


def verify_tap_cryptogram(
    card_key_hex: str, card: str, terminal_id: str, tap_id: str, counter: int, sig_hex: str
) -> bool:
    """Whether `sig_hex` is the card key's signature over this tap. PyNaCl (libsodium) refuses
    non-canonical signatures (S >= L) and small-order keys."""
    try:
        key = nacl.signing.VerifyKey(bytes.fromhex(card_key_hex))
        key.verify(tap_cryptogram_bytes(card, terminal_id, tap_id, counter),
                   bytes.fromhex(sig_hex))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError,
            TypeError):
        return False
    return True
