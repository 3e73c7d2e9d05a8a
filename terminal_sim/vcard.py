"""A virtual citycard for the vsmartcard `vpcd` reader driver of pcscd.

pcscd with Debian's `vsmartcard-vpcd` shows a reader ("Virtual PCD 00 00") whose card is
whatever connects to TCP port 35963 (the next slot, "Virtual PCD 00 01", listens on 35964).
Connecting is inserting the card; closing the connection is removing it. The vpcd wire protocol:
every message either way is a 2-byte big-endian length and a payload. A 1-byte payload from the
reader is a control message: 0x00 power off, 0x01 power on, 0x02 reset (none answered), 0x04 get
ATR (answered with the ATR). Any longer payload is a command APDU, answered with a response APDU.
vpcd asks for the ATR every time pcscd polls the slot, which is how it sees the card is present.

`VirtualCard` serves `terminal_sim.card_app.CityCardApplet` in a thread; `python -m
terminal_sim.vcard TOKEN` inserts one card until Ctrl-C (for trying the reader terminal without
hardware).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from typing import Final

import nacl.signing

from terminal_sim.card_app import CardProfile, CityCardApplet, personalise

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 35963

CTRL_OFF: Final = 0x00
CTRL_ON: Final = 0x01
CTRL_RESET: Final = 0x02
CTRL_ATR: Final = 0x04


def make_atr(historical: bytes = b"CITYCARD") -> bytes:
    """An ATR offering T=0 and T=1 with `historical` bytes (at most 15) and its check byte."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical  # T0, TD1 (T=0), TD2 (T=1)
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


ATR: Final = make_atr()

_LEN: Final = struct.Struct("!H")


def encode_message(payload: bytes) -> bytes:
    """One vpcd message: big-endian 16-bit length, then the payload."""
    if len(payload) > 0xFFFF:
        raise ValueError("vpcd message too long")
    return _LEN.pack(len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket) -> bytes | None:
    """The next vpcd message's payload; None when the peer closed the connection."""
    head = _recv_exact(sock, 2)
    if head is None:
        return None
    (length,) = _LEN.unpack(head)
    return _recv_exact(sock, length) if length else b""


class VirtualCard:
    """One card in a vpcd slot. `insert()` connects and serves in a thread; `remove()` closes.

    Can be inserted again after removal (a new power-on resets the application). Use as a
    context manager to insert for the block's duration.
    """

    def __init__(
        self,
        profile: CardProfile,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        atr: bytes = ATR,
    ) -> None:
        self.applet = CityCardApplet(profile)
        self.host, self.port, self.atr = host, port, atr
        self.powered = False
        #: command APDUs received (for tests and logs)
        self.apdus: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def inserted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def handle(self, payload: bytes) -> bytes | None:
        """The answer to one vpcd message (None: nothing to answer)."""
        if len(payload) == 1:
            ctrl = payload[0]
            if ctrl == CTRL_ATR:
                return self.atr
            if ctrl == CTRL_ON:
                self.powered = True
                self.applet.reset()
            elif ctrl == CTRL_OFF:
                self.powered = False
                self.applet.reset()
            elif ctrl == CTRL_RESET:
                self.applet.reset()
            return None  # unknown control messages are ignored, as vpicc does
        with self._lock:
            self.apdus.append(payload)
        return self.applet.process(payload)

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd (retrying until `timeout` while pcscd comes up) and serve."""
        if self.inserted:
            raise RuntimeError("card already inserted")
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), daemon=True, name=f"vcard-{self.applet.profile.token}"
        )
        self._thread.start()

    def remove(self) -> None:
        """Pull the card out: close the connection and wait for the serving thread."""
        sock, thread = self._sock, self._thread
        self._sock = self._thread = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if thread is not None:
            thread.join(5.0)
        self.powered = False

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                payload = read_message(sock)
                if payload is None:
                    return
                answer = self.handle(payload)
                if answer is not None:
                    sock.sendall(encode_message(answer))
        except OSError:
            return  # removed (socket shut down) or vpcd went away

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m terminal_sim.vcard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("token", help="the card token (as issued with `citycard cards issue`)")
    p.add_argument("--host", default=DEFAULT_HOST, help="where vpcd listens (pcscd's host)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="vpcd slot port (35963)")
    p.add_argument(
        "--issuer-seed-hex",
        default=None,
        help="issuer key seed: gives the card a key and an issuer certificate",
    )
    p.add_argument("--card-seed-hex", default=None, help="the card key's seed (default: fresh)")
    args = p.parse_args(argv)
    issuer = (
        nacl.signing.SigningKey(bytes.fromhex(args.issuer_seed_hex))
        if args.issuer_seed_hex
        else None
    )
    seed = bytes.fromhex(args.card_seed_hex) if args.card_seed_hex else None
    card = VirtualCard(
        personalise(args.token, issuer_key=issuer, card_seed=seed), host=args.host, port=args.port
    )
    card.insert(timeout=30.0)
    print(f"card {args.token} inserted at {args.host}:{args.port}; Ctrl-C removes it", flush=True)
    try:
        while card.inserted:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        card.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
