"""The key holder: a small child process that owns the gateway's signing key and signs
authorisations for it, so the process facing the network keeps no signing key once started (it
reads the key file at start-up only to create it if missing and to learn the public key) and the
Ed25519 work (the largest single cost of a tap) runs on another core.

The gateway process (`KeyholderSigner`) talks to it over a socketpair. Requests and replies are
length-prefixed batches, answered in order:

    request:  u32 length, then per message: u16 length + message bytes
    reply:    u32 length, then one 64-byte signature per message

Every message must be the canonical bytes of an authorisation or of a deny list frame
(`gateway.wire.protocol.auth_bytes` / `deny_bytes`: they start with the AUTH or DENY domain
line); anything else ends the key holder, so the key cannot be made to sign something of
another kind. Signing is grouped like the store's commits: what
is asked in one event-loop iteration goes out as one batch, and while a batch is being signed new
messages queue and go out together when its reply comes back.

If the key holder dies, waiting signatures fail with `SigningUnavailable` (the terminal is told
`unavailable` and retries the same tap id) and the next signature starts a new one, at most
MAX_RESTARTS_PER_MIN times a minute. Ed25519 is deterministic: a signature made by the key
holder is byte for byte the one `GatewaySigner` would make.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final, cast

import nacl.bindings

from actors.card import SigningUnavailable
from gateway.keys.signing import SIGNATURE_BYTES, key_id_for, load_signing_key
from gateway.wire.protocol import AUTH_DOMAIN, SIGNED_DOMAINS

#: Messages per batch sent to the key holder.
MAX_BATCH: Final = 256
#: Signatures waiting (queued or in flight); more are refused with SigningUnavailable.
MAX_PENDING: Final = 10_000
#: Largest message the key holder signs (an authorisation's canonical bytes are far smaller; a
#: full deny list part stays under it).
MAX_MESSAGE_BYTES: Final = 4096
#: Key holder starts allowed per minute before signing is refused.
MAX_RESTARTS_PER_MIN: Final = 10
#: Seconds to wait for a new key holder to answer its first batch.
START_TIMEOUT_S: Final = 10.0
#: Seconds a batch may take to come back signed; then the key holder is taken as hung: its
#: waiting signatures fail with SigningUnavailable and it is replaced. Taps are decided in their
#: terminal's task (inline card actors), so every wait on their path has its own bound.
SIGN_TIMEOUT_S: Final = 2.0

_AUTH_PREFIX: Final = (AUTH_DOMAIN + "\n").encode("ascii")
#: A request must start with one of these (authorisations and deny lists, nothing else).
_SIGNED_PREFIXES: Final = tuple((d + "\n").encode("ascii") for d in SIGNED_DOMAINS)


# --------------------------------------------------------------------------------------------
# The child process
# --------------------------------------------------------------------------------------------


def _sign_batch(payload: bytes, secret: bytes) -> bytes:
    sigs: list[bytes] = []
    i, end = 0, len(payload)
    while i < end:
        n = int.from_bytes(payload[i : i + 2], "big")
        message = payload[i + 2 : i + 2 + n]
        if len(message) != n or not message.startswith(_SIGNED_PREFIXES):
            raise ValueError("not an authorisation or deny list")
        sigs.append(nacl.bindings.crypto_sign(message, secret)[:SIGNATURE_BYTES])
        i += 2 + n
    return b"".join(sigs)


def serve(sock: socket.socket, secret: bytes) -> None:
    """Sign batches from `sock` until it closes (the gateway ended) or sends garbage."""
    buf = bytearray()
    max_request = 4 + MAX_BATCH * (2 + MAX_MESSAGE_BYTES)
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        buf += data
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if n > max_request:
                raise ValueError(f"request of {n} bytes")
            if len(buf) < 4 + n:
                break
            payload = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            out = _sign_batch(payload, secret)
            sock.sendall(len(out).to_bytes(4, "big") + out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="citycard key holder (started by the gateway)")
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    key = load_signing_key(args.key)
    secret = nacl.bindings.crypto_sign_seed_keypair(bytes(key))[1]
    sock = socket.socket(fileno=args.fd)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        serve(sock, secret)


# --------------------------------------------------------------------------------------------
# The gateway side
# --------------------------------------------------------------------------------------------


class _Link(asyncio.Protocol):
    """Replies of one key holder, in order, to the batches waiting for them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[list[asyncio.Future[bytes]]] = deque()
        self._buf = bytearray()
        self.lost = False
        self.signer: KeyholderSigner | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def send(
        self, futures: list[asyncio.Future[bytes]], request: bytes, *, timed: bool = True
    ) -> None:
        """Write one batch; its reply must come within SIGN_TIMEOUT_S (unless not `timed`:
        the start-up probe has START_TIMEOUT_S, a new process being slower to answer)."""
        assert self.transport is not None
        self.waiting.append(futures)
        self.transport.write(request)
        if timed and self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(SIGN_TIMEOUT_S, self._hung)

    def _hung(self) -> None:
        self._deadline = None
        self.fail(SigningUnavailable(f"key holder did not answer within {SIGN_TIMEOUT_S} s"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + n:
                return
            sigs = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            if not self.waiting:
                self.fail(SigningUnavailable("key holder sent a reply nobody asked for"))
                return
            futures = self.waiting.popleft()
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
                if self.waiting:
                    self._deadline = asyncio.get_running_loop().call_later(
                        SIGN_TIMEOUT_S, self._hung
                    )
            if len(sigs) != SIGNATURE_BYTES * len(futures):
                self.fail(SigningUnavailable("key holder reply has the wrong length"))
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(SigningUnavailable("key holder failed"))
                return
            for k, fut in enumerate(futures):
                if not fut.done():
                    fut.set_result(sigs[k * SIGNATURE_BYTES : (k + 1) * SIGNATURE_BYTES])
            if self.signer is not None:
                self.signer._send_next(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(SigningUnavailable(f"key holder connection lost: {exc or 'closed'}"))

    def fail(self, err: SigningUnavailable) -> None:
        self.lost = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        while self.waiting:
            for fut in self.waiting.popleft():
                if not fut.done():
                    fut.set_exception(err)
        if self.transport is not None:
            self.transport.close()
        if self.signer is not None:
            self.signer._link_failed(self, err)


def _start_process(key_path: Path) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A key holder child (fork + exec: milliseconds) and the gateway's end of its socket."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.keys.keyholder",
                "--key",
                str(key_path),
                "--fd",
                str(child.fileno()),
            ],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    return parent, proc


class KeyholderSigner:
    """Signs authorisation bytes in the key holder child process (see the module docstring).

    Use `async with KeyholderSigner.start(key_path) as signer: sig = await signer.sign(msg)`.
    """

    def __init__(self, key_path: Path) -> None:
        key = load_signing_key(key_path)
        public = bytes(key.verify_key)
        self.public_key_hex = public.hex()
        self.key_id = key_id_for(public)
        self._key_path = key_path
        self._loop = asyncio.get_running_loop()
        self._pending: deque[tuple[bytes, asyncio.Future[bytes]]] = deque()
        self._link: _Link | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Task[_Link] | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._starts: deque[float] = deque()
        self._closed = False
        self.batches = 0
        self.signed = 0
        self.starts = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, key_path: Path) -> AsyncIterator[KeyholderSigner]:
        signer = cls(key_path)
        try:
            await signer._ensure_link()
            yield signer
        finally:
            signer.close()

    async def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (an authorisation's or a deny list's
        canonical bytes)."""
        if len(message) > MAX_MESSAGE_BYTES or not message.startswith(_SIGNED_PREFIXES):
            raise ValueError("the key holder signs authorisation and deny list bytes only")
        if self._closed:
            raise SigningUnavailable("signer is closed")
        if len(self._pending) >= MAX_PENDING:
            raise SigningUnavailable(f"{MAX_PENDING} signatures waiting")
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._pending.append((message, fut))
        link = self._link
        if link is None or link.lost:
            try:
                await self._ensure_link()
            except BaseException:
                fut.cancel()  # refused or abandoned: never signed later
                raise
        elif not link.waiting and not self._flush_scheduled:
            # Send at the end of this loop iteration: every tap decided in it shares the batch.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush, link)
        return await fut

    def _flush(self, link: _Link) -> None:
        self._flush_scheduled = False
        self._send_next(link)

    def stats(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "signed": self.signed,
            "restarts": max(0, self.starts - 1),
        }

    def _send_next(self, link: _Link) -> None:
        """Send what is queued as one batch, unless a batch is still being signed."""
        pending = self._pending
        if not pending or link.waiting or link.lost or link.transport is None:
            return
        parts: list[bytes] = []
        futures: list[asyncio.Future[bytes]] = []
        while pending and len(futures) < MAX_BATCH:
            message, fut = pending.popleft()
            if fut.done():  # the tap gave up
                continue
            parts.append(len(message).to_bytes(2, "big"))
            parts.append(message)
            futures.append(fut)
        if not futures:
            return
        body = b"".join(parts)
        link.send(futures, len(body).to_bytes(4, "big") + body)
        self.batches += 1
        self.signed += len(futures)

    def _link_failed(self, link: _Link, err: SigningUnavailable) -> None:
        if self._link is link:
            self._link = None
            # Queued signatures wait for the next key holder, started by the next sign().
            if self._pending and not self._closed and self._restarting is None:
                self._restarting = self._loop.create_task(self._restart_soon())

    async def _restart_soon(self) -> None:
        try:
            await self._ensure_link()
        except SigningUnavailable as exc:
            while self._pending:
                _, fut = self._pending.popleft()
                if not fut.done():
                    fut.set_exception(exc)
        finally:
            self._restarting = None

    async def _ensure_link(self) -> None:
        if self._closed:
            raise SigningUnavailable("signer is closed")
        starting = self._starting
        if starting is None:
            starting = self._starting = self._loop.create_task(self._spawn())
            # Cleared when it ends, whoever awaited it (an awaiting sign may be cancelled).
            starting.add_done_callback(self._spawn_done)
        link = await asyncio.shield(starting)
        self._send_next(link)

    def _spawn_done(self, task: asyncio.Task[_Link]) -> None:
        if self._starting is task:
            self._starting = None
        if not task.cancelled():
            task.exception()  # retrieved: awaiting signs got it already

    async def _spawn(self) -> _Link:
        if self._closed:
            raise SigningUnavailable("signer is closed")
        now = time.monotonic()
        while self._starts and self._starts[0] < now - 60:
            self._starts.popleft()
        if len(self._starts) >= MAX_RESTARTS_PER_MIN:
            raise SigningUnavailable(f"key holder restarted {MAX_RESTARTS_PER_MIN} times a minute")
        self._starts.append(now)
        self.starts += 1
        self._stop_process()
        parent, self._proc = _start_process(self._key_path)
        _, link = await self._loop.connect_accepted_socket(_Link, parent)
        link.signer = self
        self._link = link
        # Prove it works before tapping through it: sign one authorisation-shaped message.
        probe: asyncio.Future[bytes] = self._loop.create_future()
        payload = len(_AUTH_PREFIX).to_bytes(2, "big") + _AUTH_PREFIX
        link.send([probe], len(payload).to_bytes(4, "big") + payload, timed=False)
        try:
            await asyncio.wait_for(probe, START_TIMEOUT_S)
        except (TimeoutError, SigningUnavailable) as exc:
            link.fail(SigningUnavailable("key holder did not start"))
            raise SigningUnavailable(f"key holder did not start: {exc}") from exc
        if self._closed:  # closed while this one was starting
            link.signer = None
            link.fail(SigningUnavailable("signer closed"))
            self._stop_process()
            raise SigningUnavailable("signer is closed")
        return link

    def _stop_process(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None and proc.poll() is None:
            # SIGKILL, not SIGTERM: it holds nothing to flush, and a hung or stopped one would
            # make a polite wait block the event loop.
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self._closed = True
        for task in (self._starting, self._restarting):
            if task is not None:
                task.cancel()
        link, self._link = self._link, None
        if link is not None:
            link.signer = None
            link.fail(SigningUnavailable("signer closed"))
        while self._pending:
            _, fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(SigningUnavailable("signer closed"))
        self._stop_process()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
    os._exit(0)
