"""A card terminal with a real PC/SC card reader: `citycard reader`.

It waits for a card on a PC/SC reader (pyscard, through pcscd), reads the card token with the
citycard card application (`terminal_sim.card_app`; with `--issuer-key` it also makes the card
prove it is genuine), sends a tap for it to the gateway as an authenticated terminal (hello /
challenge / proof, protocol v1), verifies the signed authorisation, reports the result, waits
for the card to be removed, and loops.

Card I/O and network I/O are kept apart: pyscard blocks, so every PC/SC call runs in a worker
thread (`asyncio.to_thread`, in slices of at most `WAIT_SLICE_S` so the terminal stays
cancellable), while the gateway link runs on the event loop with its own receive and heartbeat
tasks. The link uses the `websockets` client (TLS for `wss://`, random masking): this is a
real terminal, not the load generator's lean client. Taps are retried with the same tap id as
`docs/protocol.md` section 7 prescribes. `docs/card-readers.md` explains the setup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import nacl.signing
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from gateway.keys.signing import sign_proof, trusted_keys, verify_auth
from gateway.wire import protocol as wire
from terminal_sim.card_app import (
    SW_OK,
    TAG_CARD_KEY,
    TAG_ISSUER_CERT,
    TAG_TOKEN,
    CardError,
    get_data_apdu,
    internal_authenticate_apdu,
    parse_fci,
    parse_tap_cryptogram,
    select_apdu,
    tap_cryptogram_apdu,
    verify_card,
)

#: Longest single blocking PC/SC wait, seconds (bounds how long a cancel waits for the thread).
WAIT_SLICE_S: Final = 0.5
#: How long to wait for a tap's answer before resending it (protocol section 12).
ANSWER_TIMEOUT_S: Final = 6.0
#: Attempts per tap before the terminal gives up (busy / unavailable / dropped connections).
MAX_TAP_ATTEMPTS: Final = 8
RETRYABLE: Final = frozenset({wire.BUSY, wire.UNAVAILABLE, wire.INTERNAL})
#: Connection-level error codes worth reconnecting for (everything else is provisioning).
RETRYABLE_CONNECT: Final = frozenset({wire.ALREADY_CONNECTED, *RETRYABLE})


class ReaderError(Exception):
    """No PC/SC service, no such reader, or the card went away while being read."""


class LinkError(Exception):
    """The gateway refused the connection (`code`) or is not one this terminal trusts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class TapFailed(Exception):
    """A tap ended without a valid authorisation: a non-retryable error, an authorisation that
    does not verify, or retries exhausted. Nothing may be handed over."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# --------------------------------------------------------------------------------------------
# PC/SC (blocking; call from a worker thread)
# --------------------------------------------------------------------------------------------


def list_readers() -> list[str]:
    """Names of the PC/SC readers pcscd knows (raises ReaderError without a PC/SC service)."""
    from smartcard.Exceptions import SmartcardException
    from smartcard.pcsc.PCSCExceptions import BaseSCardException
    from smartcard.System import readers

    try:
        return [str(r) for r in readers()]
    except (BaseSCardException, SmartcardException) as e:  # no context, no reader list
        raise ReaderError(f"PC/SC service not available: {e}") from e


def choose_reader(name: str | None) -> str:
    """The reader called `name`, else the first whose name contains it (case-insensitive), or
    the first reader when `name` is None."""
    names = list_readers()
    if not names:
        raise ReaderError("no PC/SC reader found (is the reader plugged in and pcscd running?)")
    if name is None:
        return names[0]
    if name in names:
        return name
    for n in names:
        if name.lower() in n.lower():
            return n
    raise ReaderError(f"no reader matches {name!r}; readers: {names}")


def wait_for_card(reader: str, *, present: bool, timeout: float) -> bool:
    """Block until a card is present (or absent) in `reader`, at most `timeout` seconds;
    returns whether it is."""
    from smartcard import scard

    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise ReaderError(f"PC/SC service not available: {scard.SCardGetErrorMessage(hresult)}")
    try:
        deadline = time.monotonic() + timeout
        known = scard.SCARD_STATE_UNAWARE
        while True:
            ms = max(0, int((deadline - time.monotonic()) * 1000))
            hresult, states = scard.SCardGetStatusChange(ctx, ms, [(reader, known)])
            if hresult == scard.SCARD_E_TIMEOUT:
                return False
            if hresult != scard.SCARD_S_SUCCESS:
                raise ReaderError(f"{reader}: {scard.SCardGetErrorMessage(hresult)}")
            event_state = states[0][1]
            if event_state & scard.SCARD_STATE_UNKNOWN:
                raise ReaderError(f"reader {reader!r} is gone")
            has_card = bool(event_state & scard.SCARD_STATE_PRESENT) and not (
                event_state & scard.SCARD_STATE_MUTE
            )
            if has_card == present:
                return True
            if ms == 0:
                return False
            known = event_state & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(ctx)


@dataclass(frozen=True)
class CardRead:
    token: str
    atr: str
    app_version: int
    #: None: not checked (no issuer keys configured); else whether the card proved genuine
    authenticated: bool | None
    #: the card's tap cryptogram (card_counter, card_sig) when asked for one and it has a key
    cryptogram: tuple[int, str] | None = None


def _transmit(conn: Any, apdu: list[int]) -> tuple[bytes, int]:
    """Send one APDU; follows 6Cxx (resend with the right Le) and 61xx (GET RESPONSE, T=0)."""
    data, sw1, sw2 = conn.transmit(apdu)
    if sw1 == 0x6C:
        data, sw1, sw2 = conn.transmit([*apdu[:-1], sw2])
    out = bytes(data)
    while sw1 == 0x61:
        data, sw1, sw2 = conn.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
        out += bytes(data)
    return out, (sw1 << 8) | sw2


def _get_data(conn: Any, tag: int) -> bytes:
    data, sw = _transmit(conn, get_data_apdu(tag))
    if sw != SW_OK:
        raise CardError(f"GET DATA {tag:04X} failed", sw)
    return data


def read_card(
    reader: str,
    issuer_keys: Sequence[nacl.signing.VerifyKey] = (),
    tap: tuple[str, str] | None = None,
) -> CardRead:
    """Read the card in `reader`: SELECT the citycard application, GET DATA the token and,
    with `issuer_keys`, check the card's issuer certificate and its signature over a fresh
    challenge (INTERNAL AUTHENTICATE). With `tap` (terminal id, tap id) a card with a key is
    asked for that tap's cryptogram (TAP CRYPTOGRAM) while it is still in the field."""
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.pcsc.PCSCReader import PCSCReader

    conn = PCSCReader(reader).createConnection()
    try:
        conn.connect()
    except (NoCardException, CardConnectionException) as e:
        raise ReaderError(f"{reader}: cannot connect to the card: {e}") from e
    try:
        atr = bytes(conn.getATR()).hex()
        data, sw = _transmit(conn, select_apdu())
        if sw != SW_OK:
            raise CardError("not a citycard: SELECT of the citycard application failed", sw)
        fci = parse_fci(data)
        raw = _get_data(conn, TAG_TOKEN)
        try:
            token = raw.decode("ascii")
        except UnicodeDecodeError:
            token = ""
        if not wire.is_identifier(token):
            raise CardError(f"card token {raw!r} is not a protocol identifier")
        authenticated: bool | None = None
        if issuer_keys:
            if not fci.has_card_key:
                authenticated = False
            else:
                card_key = _get_data(conn, TAG_CARD_KEY)
                cert = _get_data(conn, TAG_ISSUER_CERT)
                challenge = os.urandom(32)
                sig, sw = _transmit(conn, internal_authenticate_apdu(challenge))
                if sw != SW_OK:
                    raise CardError("INTERNAL AUTHENTICATE failed", sw)
                authenticated = verify_card(
                    token, card_key, cert, challenge, sig, list(issuer_keys)
                )
        cryptogram = None
        if tap is not None and fci.has_card_key:
            data, sw = _transmit(conn, tap_cryptogram_apdu(*tap))
            if sw != SW_OK:
                raise CardError("TAP CRYPTOGRAM failed", sw)
            cryptogram = parse_tap_cryptogram(data)
        return CardRead(token, atr, fci.version, authenticated, cryptogram)
    except CardConnectionException as e:
        raise ReaderError(f"{reader}: card removed while being read: {e}") from e
    finally:
        with contextlib.suppress(CardConnectionException):
            conn.disconnect()


async def wait_for_card_async(reader: str, *, present: bool, max_wait: float | None) -> bool:
    """`wait_for_card` in worker-thread slices of at most WAIT_SLICE_S (None: wait forever)."""
    deadline = None if max_wait is None else time.monotonic() + max_wait
    while True:
        left = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return False
        step = min(WAIT_SLICE_S, left)
        if await asyncio.to_thread(wait_for_card, reader, present=present, timeout=step):
            return True


# --------------------------------------------------------------------------------------------
# The gateway link
# --------------------------------------------------------------------------------------------


class GatewayLink:
    """One terminal's authenticated websocket to the gateway, reopened when it drops."""

    def __init__(
        self,
        url: str,
        terminal_id: str,
        signing_key: nacl.signing.SigningKey,
        gateway_keys: Mapping[str, nacl.signing.VerifyKey],
        *,
        answer_timeout: float = ANSWER_TIMEOUT_S,
        open_timeout: float = 10.0,
    ) -> None:
        if not gateway_keys:
            raise ValueError("a terminal needs at least one trusted gateway key")
        self.url, self.terminal_id, self.key = url, terminal_id, signing_key
        self.gateway_keys = dict(gateway_keys)
        self.answer_timeout, self.open_timeout = answer_timeout, open_timeout
        self.seq = 0
        self.heartbeat_s = float(wire.DEFAULT_HEARTBEAT_S)
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._taps = 0

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def open(self) -> None:
        """Connect and authenticate (hello, challenge, proof, welcome)."""
        await self.close()
        ws = await ws_connect(
            self.url,
            compression=None,
            open_timeout=self.open_timeout,
            max_size=wire.MAX_FRAME_BYTES * 4,
        )
        try:
            await ws.send(wire.encode_hello(self.terminal_id).decode())
            challenge = await self._expect(ws, wire.CHALLENGE)
            key_id = challenge["key_id"]
            if key_id not in self.gateway_keys:
                raise LinkError(
                    "untrusted_gateway_key",
                    f"gateway signs with {key_id}, "
                    f"this terminal trusts {sorted(self.gateway_keys)}",
                )
            sig = sign_proof(self.key, self.terminal_id, challenge["challenge"], key_id)
            await ws.send(wire.encode_proof(self.terminal_id, challenge["challenge"], sig).decode())
            welcome = await self._expect(ws, wire.WELCOME)
        except BaseException:
            await ws.close()
            raise
        self.seq = max(self.seq, int(welcome["last_seq"]))
        self.heartbeat_s = float(welcome["heartbeat_s"])
        self.connects += 1
        self._ws = ws
        self._tasks = [
            asyncio.create_task(self._receive(ws)),
            asyncio.create_task(self._heartbeats(ws)),
        ]

    async def _expect(self, ws: ClientConnection, mtype: str) -> dict[str, Any]:
        msg = wire.decode_gateway_message(await asyncio.wait_for(ws.recv(), self.open_timeout))
        if msg["type"] == wire.ERROR:
            raise LinkError(msg["code"], msg.get("message", ""))
        if msg["type"] != mtype:
            raise LinkError("unexpected_message", f"expected {mtype}, got {msg['type']}")
        return msg

    async def close(self) -> None:
        ws, tasks = self._ws, self._tasks
        self._ws, self._tasks = None, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    msg = wire.decode_gateway_message(raw)
                except wire.ProtocolError:
                    continue
                tap_id = msg.get("tap_id")
                if msg["type"] in (wire.AUTH, wire.ERROR) and isinstance(tap_id, str):
                    fut = self._pending.get(tap_id)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection to the gateway closed"))

    async def _heartbeats(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_s)
                await ws.send(wire.encode_heartbeat(int(time.time() * 1000)).decode())

    def new_tap_id(self) -> str:
        """Unique per terminal across restarts: wall clock in ms, a counter, random bits."""
        self._taps += 1
        return f"rd-{time.time_ns() // 1_000_000}-{self._taps}-{os.urandom(3).hex()}"

    async def tap(
        self,
        card: str,
        op: str,
        fields: Mapping[str, object] | None = None,
        *,
        tap_id: str | None = None,
    ) -> dict[str, Any]:
        """Send a tap and return its verified `auth` message (approved or declined); retries
        with the same tap id and content, reconnecting as needed. Raises TapFailed.
        `tap_id`: one taken earlier with `new_tap_id` (e.g. signed by the card)."""
        tap_id = tap_id or self.new_tap_id()
        terminal_time = time.time_ns() // 1_000_000
        sent_seqs: set[int] = set()
        backoff = 0.1
        last = "no attempt"
        for _ in range(MAX_TAP_ATTEMPTS):
            fut: asyncio.Future[dict[str, Any]] | None = None
            try:
                if self._ws is None:
                    await self.open()
                assert self._ws is not None
                fut = asyncio.get_running_loop().create_future()
                self._pending[tap_id] = fut
                self.seq += 1
                sent_seqs.add(self.seq)
                frame = wire.encode_tap(self.seq, tap_id, card, op, terminal_time, fields)
                await self._ws.send(frame.decode())
                msg = await asyncio.wait_for(fut, self.answer_timeout)
            except LinkError as e:
                if e.code not in RETRYABLE_CONNECT:
                    raise TapFailed(e.code, f"gateway refused the terminal: {e}") from e
                last = str(e)
            except (
                OSError,
                ConnectionError,
                WebSocketException,
                TimeoutError,
                wire.ProtocolError,
            ) as e:
                last = f"{type(e).__name__}: {e}"
                if not isinstance(e, TimeoutError):  # an answer may still come on a live link
                    self._pending.pop(tap_id, None)
                    await self.close()
            else:
                if msg["type"] == wire.AUTH:
                    return self._check_auth(msg, tap_id, card, sent_seqs)
                code = msg["code"]
                last = f"{code}: {msg.get('message', '')}"
                if code == wire.SEQ_OUT_OF_ORDER:
                    await self.close()  # the next welcome resynchronises the counter
                elif code not in RETRYABLE:
                    raise TapFailed(code, msg.get("message", ""))
            finally:
                self._pending.pop(tap_id, None)
                if fut is not None and fut.done() and not fut.cancelled():
                    fut.exception()  # retrieved: a dropped link's error is handled above
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        raise TapFailed("gave_up", f"no authorisation after {MAX_TAP_ATTEMPTS} attempts ({last})")

    def _check_auth(
        self, msg: dict[str, Any], tap_id: str, card: str, sent_seqs: set[int]
    ) -> dict[str, Any]:
        """Protocol section 8: ours, for this tap and card, and signed by a trusted key."""
        if msg["terminal_id"] != self.terminal_id or msg["card"] != card:
            raise TapFailed("invalid_auth", "authorisation names another terminal or card")
        if msg["seq"] not in sent_seqs:  # a replayed original carries an earlier attempt's seq
            raise TapFailed("invalid_auth", f"authorisation for seq {msg['seq']} never sent")
        if not verify_auth(self.gateway_keys, wire.auth_fields_from_message(msg), msg["sig"]):
            raise TapFailed("invalid_auth", f"authorisation for {tap_id} does not verify")
        return msg


# --------------------------------------------------------------------------------------------
# The terminal loop
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderConfig:
    url: str
    terminal_id: str
    signing_key: nacl.signing.SigningKey
    gateway_keys: Mapping[str, nacl.signing.VerifyKey]
    reader: str | None = None
    op: str = "fare"
    amount: int | None = None
    #: trusted card issuer keys: when set, only cards that prove genuine are tapped
    issuer_keys: tuple[nacl.signing.VerifyKey, ...] = ()
    #: stop after this many cards (None: run until cancelled)
    max_cards: int | None = None
    #: give up waiting for the next card after this many seconds (None: wait forever)
    card_timeout: float | None = None


@dataclass
class Outcome:
    """What the terminal did with one card."""

    card: CardRead | None
    auth: dict[str, Any] | None = None
    error: str | None = None
    elapsed_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        return self.auth is not None and self.auth["result"] == wire.RESULT_APPROVED

    def line(self) -> str:
        token = self.card.token if self.card else "?"
        if self.auth is None:
            return f"card {token}: NOT ACCEPTED ({self.error})"
        a = self.auth
        genuine = {None: "", True: " [genuine]", False: " [NOT GENUINE]"}[
            self.card.authenticated if self.card else None
        ]
        return (
            f"card {token}{genuine}: {a['result'].upper()} ({a['reason']}) amount={a['amount']} "
            f"balance={a['balance']} {a['currency']} tap={a['tap_id']} "
            f"[{self.elapsed_ms:.0f} ms, signature verified]"
        )


async def process_card(link: GatewayLink, reader: str, cfg: ReaderConfig) -> Outcome:
    """Read the card now in `reader` and tap it; never raises for card or tap problems."""
    t0 = time.perf_counter()
    tap_id = link.new_tap_id()  # before reading: the card signs it
    try:
        card = await asyncio.to_thread(
            read_card, reader, cfg.issuer_keys, (cfg.terminal_id, tap_id)
        )
    except (ReaderError, CardError) as e:
        return Outcome(None, error=str(e))
    if card.authenticated is False:
        return Outcome(card, error="card failed authentication (not a genuine citycard)")
    fields: dict[str, object] = {}
    if cfg.amount is not None:
        fields["amount"] = cfg.amount
    if card.cryptogram is not None:
        fields[wire.CARD_COUNTER], fields[wire.CARD_SIG] = card.cryptogram
    try:
        auth = await link.tap(card.token, cfg.op, fields, tap_id=tap_id)
    except TapFailed as e:
        return Outcome(card, error=str(e), elapsed_ms=(time.perf_counter() - t0) * 1000)
    return Outcome(card, auth, elapsed_ms=(time.perf_counter() - t0) * 1000)


def _print(outcome: Outcome) -> None:
    print(outcome.line(), flush=True)


async def run_reader(
    cfg: ReaderConfig,
    report: Callable[[Outcome], None] = _print,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """The terminal: connect, then for each card presented: read, tap, report, wait for its
    removal. Returns the outcomes when `cfg.max_cards` cards were handled or `cfg.card_timeout`
    passed without a card. `on_ready(reader)` is called once it is waiting for the first card."""
    reader = await asyncio.to_thread(choose_reader, cfg.reader)
    link = GatewayLink(cfg.url, cfg.terminal_id, cfg.signing_key, cfg.gateway_keys)
    outcomes: list[Outcome] = []
    try:
        await link.open()
        if on_ready is not None:
            on_ready(reader)
        while cfg.max_cards is None or len(outcomes) < cfg.max_cards:
            if not await wait_for_card_async(reader, present=True, max_wait=cfg.card_timeout):
                break
            outcome = await process_card(link, reader, cfg)
            outcomes.append(outcome)
            report(outcome)
            if cfg.max_cards is not None and len(outcomes) >= cfg.max_cards:
                break
            await wait_for_card_async(reader, present=False, max_wait=None)
    finally:
        await link.close()
    return outcomes


# --------------------------------------------------------------------------------------------
# `citycard reader`
# --------------------------------------------------------------------------------------------


def add_reader_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `citycard reader` on the main parser's `subparsers`."""
    p = subparsers.add_parser(
        "reader", help="a terminal with a PC/SC card reader: read cards, tap them at the gateway"
    )
    p.add_argument("--list", action="store_true", help="list the PC/SC readers and exit")
    p.add_argument("--url", help="gateway websocket URL, e.g. ws://127.0.0.1:8765/")
    p.add_argument("--terminal-id", help="this terminal's registered id")
    p.add_argument(
        "--seed-hex",
        default=os.environ.get("CITYCARD_TERMINAL_SEED"),
        help="the terminal's Ed25519 key seed, 64 hex chars, as printed by "
        "`citycard keys new-terminal` (default $CITYCARD_TERMINAL_SEED)",
    )
    p.add_argument(
        "--gateway-key",
        action="append",
        default=[],
        metavar="HEX",
        help="a trusted gateway public key (repeatable; `citycard keys show` prints it)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="without --gateway-key: read the trusted keys the gateway published there",
    )
    p.add_argument("--reader", default=None, help="reader name or part of it (default: first)")
    p.add_argument("--op", choices=("fare", "purchase", "topup"), default="fare")
    p.add_argument("--amount", type=int, default=None, help="minor units (purchase, topup)")
    p.add_argument(
        "--issuer-key",
        action="append",
        default=[],
        metavar="HEX",
        help="trusted card issuer public key (repeatable): only genuine cards are tapped",
    )
    p.add_argument("--once", action="store_true", help="handle one card, then exit")
    p.add_argument(
        "--card-timeout", type=float, default=None, help="exit after this long without a card (s)"
    )
    p.set_defaults(func=run_reader_cli)
    return p


def run_reader_cli(args: argparse.Namespace) -> int:
    try:
        import smartcard  # noqa: F401
    except ImportError:
        print(
            "citycard reader: pyscard is missing: pip install 'citycard[reader]' "
            "(building it needs swig, libpcsclite-dev, pkg-config)",
            file=sys.stderr,
        )
        return 1
    if args.list:
        try:
            names = list_readers()
        except ReaderError as e:
            print(f"citycard reader: {e}", file=sys.stderr)
            return 1
        for n in names:
            print(n)
        return 0
    missing = [
        f"--{n}"
        for n in ("url", "terminal-id", "seed-hex")
        if not getattr(args, n.replace("-", "_"))
    ]
    if missing:
        print(f"citycard reader: {', '.join(missing)} required", file=sys.stderr)
        return 2
    if args.op in ("purchase", "topup") and args.amount is None:
        print(f"citycard reader: --op {args.op} needs --amount", file=sys.stderr)
        return 2
    keys_hex = list(args.gateway_key)
    if not keys_hex and args.redis_url:
        from gateway.provisioning import gateway_keys

        keys_hex = list(gateway_keys(args.redis_url).values())
    if not keys_hex:
        print("citycard reader: give --gateway-key HEX (or --redis-url)", file=sys.stderr)
        return 2
    cfg = ReaderConfig(
        url=args.url,
        terminal_id=args.terminal_id,
        signing_key=nacl.signing.SigningKey(bytes.fromhex(args.seed_hex)),
        gateway_keys=trusted_keys(keys_hex),
        reader=args.reader,
        op=args.op,
        amount=args.amount,
        issuer_keys=tuple(nacl.signing.VerifyKey(bytes.fromhex(k)) for k in args.issuer_key),
        max_cards=1 if args.once else None,
        card_timeout=args.card_timeout,
    )

    def ready(reader: str) -> None:
        print(f"{cfg.terminal_id} online at {cfg.url}; waiting for cards on {reader!r}", flush=True)

    try:
        outcomes = asyncio.run(run_reader(cfg, on_ready=ready))
    except KeyboardInterrupt:
        return 0
    except (ReaderError, LinkError, OSError, WebSocketException) as e:
        print(f"citycard reader: {e}", file=sys.stderr)
        return 1
    return 0 if all(o.auth is not None for o in outcomes) else 1
