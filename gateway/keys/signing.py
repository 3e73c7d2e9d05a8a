"""Ed25519 signing for protocol v1: gateway authorisations, terminal proofs, key files.

The gateway signs `protocol.auth_bytes` for every tap (`GatewaySigner.sign_auth`) and
`protocol.deny_bytes` for every deny list frame (`verify_deny` checks one); a terminal
signs `protocol.proof_bytes` to authenticate (`sign_proof` / `verify_proof`). A gateway key is
named by its key id, `"k"` + the first 8 bytes of sha256(public key) in hex. Keys rotate by adding
a new key id: terminals keep a small set of trusted gateway public keys (`trusted_keys`) and
`verify_auth` picks the one the authorisation names. Key files hold the 32-byte seed in hex.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.signing

from gateway.wire.protocol import (
    AuthFields,
    DenyFields,
    OfflinePolicyFields,
    auth_bytes,
    deny_bytes,
    offline_policy_bytes,
    proof_bytes,
)

SIGNATURE_BYTES = nacl.bindings.crypto_sign_BYTES
SEED_BYTES = nacl.bindings.crypto_sign_SEEDBYTES


def key_id_for(verify_key_bytes: bytes) -> str:
    """Key id of an Ed25519 public key: "k" + hex of the first 8 bytes of its sha256."""
    if len(verify_key_bytes) != nacl.bindings.crypto_sign_PUBLICKEYBYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return "k" + hashlib.sha256(verify_key_bytes).digest()[:8].hex()


def trusted_keys(public_keys_hex: Iterable[str]) -> dict[str, nacl.signing.VerifyKey]:
    """The key-id -> key map a terminal verifies with, from the gateway public keys it trusts."""
    keys: dict[str, nacl.signing.VerifyKey] = {}
    for pk_hex in public_keys_hex:
        raw = bytes.fromhex(pk_hex)
        keys[key_id_for(raw)] = nacl.signing.VerifyKey(raw)
    return keys


class GatewaySigner:
    """Signs authorisations with the gateway's current key."""

    __slots__ = ("_secret", "key_id", "public_key_hex", "signing_key", "verify_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self.signing_key = signing_key
        self.verify_key = signing_key.verify_key
        public = bytes(self.verify_key)
        self.public_key_hex = public.hex()
        self.key_id = key_id_for(public)
        # The 64-byte libsodium secret key; signing through the binding skips the wrapper
        # objects SigningKey.sign builds for every call.
        self._secret = nacl.bindings.crypto_sign_seed_keypair(bytes(signing_key))[1]

    def sign_bytes(self, message: bytes) -> bytes:
        """The 64-byte signature of `message`."""
        return nacl.bindings.crypto_sign(message, self._secret)[:SIGNATURE_BYTES]

    def _sign(self, message: bytes) -> str:
        return self.sign_bytes(message).hex()

    def sign_auth(self, fields: AuthFields) -> str:
        """Hex signature of an authorisation; `fields.key_id` must be this signer's key id."""
        if fields.key_id != self.key_id:
            raise ValueError(f"auth names key {fields.key_id!r}, signer holds {self.key_id!r}")
        return self._sign(auth_bytes(fields))


def _verify(verify_key: nacl.signing.VerifyKey, message: bytes, sig_hex: str) -> bool:
    try:
        sig = bytes.fromhex(sig_hex)
    except (ValueError, TypeError):
        return False
    if len(sig) != SIGNATURE_BYTES:
        return False
    try:
        verify_key.verify(message, sig)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def _verify_by_key_id(
    public_keys: Mapping[str, nacl.signing.VerifyKey],
    key_id: str,
    message: Callable[[], bytes],
    sig_hex: str,
) -> bool:
    """Whether `sig_hex` signs `message()` with the trusted key `key_id` names (an unknown key
    id, or fields that have no canonical bytes, do not verify)."""
    key = public_keys.get(key_id)
    if key is None:
        return False
    try:
        data = message()
    except ValueError:
        return False
    return _verify(key, data, sig_hex)


def verify_auth(
    public_keys: Mapping[str, nacl.signing.VerifyKey], fields: AuthFields, sig_hex: str
) -> bool:
    """Whether `sig_hex` is a valid signature of `fields` by the trusted key `fields.key_id`
    names. An unknown key id is not valid."""
    return _verify_by_key_id(public_keys, fields.key_id, lambda: auth_bytes(fields), sig_hex)


def verify_deny(
    public_keys: Mapping[str, nacl.signing.VerifyKey], fields: DenyFields, sig_hex: str
) -> bool:
    """Whether `sig_hex` is a valid signature of a deny list frame by the trusted key its
    `key_id` names."""
    return _verify_by_key_id(public_keys, fields.key_id, lambda: deny_bytes(fields), sig_hex)


def verify_offline_policy(
    public_keys: Mapping[str, nacl.signing.VerifyKey], fields: OfflinePolicyFields, sig_hex: str
) -> bool:
    """Whether `sig_hex` is a trusted gateway key's signature over an `offline_policy`."""
    return _verify_by_key_id(
        public_keys, fields.key_id, lambda: offline_policy_bytes(fields), sig_hex
    )


def sign_proof(
    signing_key: nacl.signing.SigningKey, terminal_id: str, challenge_hex: str, gateway_key_id: str
) -> str:
    """A terminal's proof: hex signature of `proof_bytes(...)`."""
    message = proof_bytes(terminal_id, challenge_hex, gateway_key_id)
    return signing_key.sign(message).signature.hex()


def verify_terminal_signature(
    verify_key: nacl.signing.VerifyKey, message: bytes, sig_hex: str
) -> bool:
    """Whether `sig_hex` is the terminal key's signature over `message` (an offline tap)."""
    return _verify(verify_key, message, sig_hex)


def verify_proof(
    verify_key: nacl.signing.VerifyKey,
    terminal_id: str,
    challenge_hex: str,
    gateway_key_id: str,
    sig_hex: str,
) -> bool:
    """Whether `sig_hex` is the terminal's signature over `proof_bytes(...)`."""
    try:
        message = proof_bytes(terminal_id, challenge_hex, gateway_key_id)
    except ValueError:
        return False
    return _verify(verify_key, message, sig_hex)


# --------------------------------------------------------------------------------------------
# Key files
# --------------------------------------------------------------------------------------------


def load_signing_key(path: Path) -> nacl.signing.SigningKey:
    """Read a key file: the 32-byte seed as 64 hex characters (surrounding whitespace ignored)."""
    text = path.read_text(encoding="ascii").strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a hex Ed25519 seed") from None
    if len(seed) != SEED_BYTES:
        raise ValueError(f"{path}: expected a {SEED_BYTES}-byte seed, got {len(seed)} bytes")
    return nacl.signing.SigningKey(seed)


def _write_private_temp(key: nacl.signing.SigningKey, path: Path) -> Path:
    """Write the seed to a fresh 0600 file next to `path`; returns the temp file's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # in case the umask or filesystem widened it
        os.write(fd, (bytes(key).hex() + "\n").encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def save_signing_key(key: nacl.signing.SigningKey, path: Path) -> None:
    """Write a key file atomically with mode 0600 (replacing any existing file), creating the
    parent directories."""
    tmp = _write_private_temp(key, path)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_or_create_signing_key(path: Path) -> nacl.signing.SigningKey:
    """Load the key at `path`, or generate one and save it (mode 0600). Safe against concurrent
    creators: the file appears complete or not at all, and the first writer wins."""
    with contextlib.suppress(FileNotFoundError):
        return load_signing_key(path)
    key = nacl.signing.SigningKey.generate()
    tmp = _write_private_temp(key, path)
    try:
        os.link(tmp, path)  # fails if another process created the key meanwhile
    except FileExistsError:
        return load_signing_key(path)
    except OSError:  # no hard links on this filesystem: fall back to a plain atomic rename
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return key
