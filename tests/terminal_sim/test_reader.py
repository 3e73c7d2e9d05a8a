"""The PC/SC reader terminal against the real PC/SC stack: pcscd with the vsmartcard vpcd
driver, the project's virtual card connecting to vpcd, pyscard in the reader, and a real gateway
(in process, real Redis) for the taps. Nothing of pyscard or pcscd is mocked.

The module starts its own pcscd when none is running (and stops it afterwards), or uses the
running one if it has the vpcd reader. Runs on one machine are serialised by a lock file (vpcd's
slot is one TCP port). Without pyscard, pcscd or vpcd the tests skip, except under CI=true,
where they fail: CI must run them for real (`.ci/run` installs all of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson
import pytest
from nacl.signing import SigningKey

from gateway.config import GatewayConfig
from gateway.keys.signing import trusted_keys
from gateway.provisioning import enroll_terminal, gateway_keys, issue_card
from gateway.server import Gateway, open_gateway
from terminal_sim.card_app import personalise
from terminal_sim.vcard import ATR, DEFAULT_PORT, VirtualCard

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
#: vpcd's first slot: the reader pcscd names "Virtual PCD 00 00".
VPCD_READER = "Virtual PCD 00 00"
#: The slot port of the pcscd these tests start themselves. vpcd's packaged default (35963, and
#: 35964 for its second slot) lies inside Linux's ephemeral port range, where any TIME-WAIT left
#: by an unrelated connection makes vpcd's bind fail; this one is below that range.
TEST_VPCD_PORT = 30963
#: The port the virtual card connects to: TEST_VPCD_PORT, or the packaged default when the tests
#: use a pcscd that was already running.
_port = DEFAULT_PORT
LOCK_PATH = Path("/tmp/citycard-pcsc-tests.lock")

GATE, SHOP = "gate-reader-1", "shop-reader-1"
CARD, OTHER_CARD = "card-reader-1", "card-reader-unknown"
KEYED_CARD = "card-reader-keyed"
ISSUER = SigningKey(hashlib.sha256(b"test issuer").digest())


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PC/SC stack unavailable under CI=true (it must run there): {reason}")
    pytest.skip(f"PC/SC stack unavailable: {reason}")


def term_key(terminal_id: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"test terminal {terminal_id}".encode()).digest())


def _vpcd_readers() -> list[str] | None:
    """Readers of the running pcscd; None when no pcscd answers."""
    from terminal_sim.reader import ReaderError, list_readers

    try:
        return list_readers()
    except ReaderError:
        return None


@contextlib.contextmanager
def _machine_lock(timeout: float = 180.0) -> Iterator[None]:
    with LOCK_PATH.open("a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    unavailable(f"another test run holds {LOCK_PATH} for more than {timeout} s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _start_pcscd(log: IO[bytes], conf_dir: Path) -> subprocess.Popen[bytes]:
    pcscd = shutil.which("pcscd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if pcscd is None:
        unavailable("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
    # Our own reader.conf.d: one vpcd slot on TEST_VPCD_PORT.
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:0x{TEST_VPCD_PORT:04X}\n"
        f"LIBPATH      {VPCD_DRIVER}\n"
        f"CHANNELID    0x{TEST_VPCD_PORT:04X}\n"
    )
    # --auto-exit: should this process be killed before it stops pcscd, pcscd quits by itself
    # after 60 s without clients.
    return subprocess.Popen(
        [pcscd, "--foreground", "--auto-exit", "--config", str(conf_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _vcard(app: Any, **kwargs: Any) -> VirtualCard:
    return VirtualCard(app, port=_port, **kwargs)


@pytest.fixture(scope="module")
def vpcd_reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of an empty vpcd reader of a running pcscd (started here if need be)."""
    try:
        import smartcard  # noqa: F401
    except ImportError:
        unavailable("pyscard is not installed (pip install -e '.[reader]')")
    if not VPCD_DRIVER.exists():
        unavailable(f"the vpcd driver {VPCD_DRIVER} is missing (apt-get install vsmartcard-vpcd)")
    log_path = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
    with _machine_lock(), log_path.open("wb") as log:
        proc: subprocess.Popen[bytes] | None = None
        names = _vpcd_readers()
        global _port
        _port = DEFAULT_PORT
        if names is None:
            proc = _start_pcscd(log, log_path.parent / "reader.conf.d")
            _port = TEST_VPCD_PORT
        try:
            deadline = time.monotonic() + 15
            while VPCD_READER not in (names or []):
                if proc is not None and proc.poll() is not None:
                    unavailable(f"pcscd exited ({proc.returncode}): {log_path.read_text()[-800:]}")
                if time.monotonic() > deadline:
                    why = "no pcscd answers" if names is None else f"readers are {names}"
                    unavailable(f"no {VPCD_READER!r} reader after 15 s ({why})")
                time.sleep(0.1)
                names = _vpcd_readers()
            from terminal_sim.reader import wait_for_card

            if not wait_for_card(VPCD_READER, present=False, timeout=5):
                unavailable(f"{VPCD_READER!r} holds a card of someone else")
            yield VPCD_READER
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio, websockets and the gateway are asyncio-only


@pytest.fixture
async def gw(redis_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = GatewayConfig(port=0, redis_url=redis_url, data_dir=tmp_path, heartbeat_s=5)
    async with open_gateway(config) as gateway:
        store = gateway.store
        await enroll_terminal(
            store, GATE, bytes(term_key(GATE).verify_key).hex(),
            kind="gate", operator="metro", network="METRO",
        )  # fmt: skip
        await enroll_terminal(
            store, SHOP, bytes(term_key(SHOP).verify_key).hex(), kind="retail", operator="bakery"
        )
        await issue_card(store, CARD, balance=1_000)
        yield gateway


def insert(card: VirtualCard) -> None:
    card.insert(timeout=5)


# --------------------------------------------------------------------------------------------
# PC/SC only
# --------------------------------------------------------------------------------------------


def test_vpcd_reader_is_listed_and_chosen(vpcd_reader: str) -> None:
    from terminal_sim.reader import ReaderError, choose_reader, list_readers

    assert vpcd_reader in list_readers()
    assert choose_reader(vpcd_reader) == vpcd_reader
    assert choose_reader("virtual pcd 00 00") == vpcd_reader  # any case
    assert choose_reader("Virtual PCD") == vpcd_reader  # the first reader matching a part
    with pytest.raises(ReaderError):
        choose_reader("no such reader")


def test_inserted_card_is_read(vpcd_reader: str) -> None:
    from terminal_sim.reader import ReaderError, read_card, wait_for_card

    assert not wait_for_card(vpcd_reader, present=True, timeout=0.3)
    card = _vcard(personalise("card-pcsc-42"))
    with card:
        t0 = time.monotonic()
        assert wait_for_card(vpcd_reader, present=True, timeout=10)
        seen_s = time.monotonic() - t0
        read = read_card(vpcd_reader)
        assert read.token == "card-pcsc-42"
        assert read.atr == ATR.hex() and read.app_version == 1
        assert read.authenticated is None
        assert card.apdus, "the APDUs went through pcscd to the virtual card"
    assert wait_for_card(vpcd_reader, present=False, timeout=10)
    with pytest.raises(ReaderError):
        read_card(vpcd_reader)
    assert seen_s < 5


def test_card_authenticates_through_pcsc(vpcd_reader: str) -> None:
    from terminal_sim.reader import read_card, wait_for_card

    genuine = personalise("card-pcsc-43", issuer_key=ISSUER)
    with _vcard(genuine):
        assert wait_for_card(vpcd_reader, present=True, timeout=10)
        assert read_card(vpcd_reader, [ISSUER.verify_key]).authenticated is True
        other_issuer = SigningKey.generate().verify_key
        assert read_card(vpcd_reader, [other_issuer]).authenticated is False
    assert wait_for_card(vpcd_reader, present=False, timeout=10)
    with _vcard(personalise("card-pcsc-44")):  # no key at all: cannot prove anything
        assert wait_for_card(vpcd_reader, present=True, timeout=10)
        assert read_card(vpcd_reader, [ISSUER.verify_key]).authenticated is False
    assert wait_for_card(vpcd_reader, present=False, timeout=10)


# --------------------------------------------------------------------------------------------
# End to end: card -> pcscd -> reader terminal -> gateway -> signed authorisation
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_reader_taps_cards_at_the_gateway(
    vpcd_reader: str, gw: Gateway, redis_url: str
) -> None:
    from terminal_sim.reader import Outcome, ReaderConfig, run_reader

    keys = trusted_keys(gateway_keys(redis_url).values())
    cfg = ReaderConfig(
        url=gw.url, terminal_id=GATE, signing_key=term_key(GATE), gateway_keys=keys,
        reader="Virtual PCD 00 00", issuer_keys=(ISSUER.verify_key,),
        max_cards=3, card_timeout=20,
    )  # fmt: skip
    ready = asyncio.Event()
    reported: asyncio.Queue[Outcome] = asyncio.Queue()
    task = asyncio.create_task(
        run_reader(cfg, reported.put_nowait, on_ready=lambda _reader: ready.set())
    )
    cards = [
        _vcard(personalise(CARD, issuer_key=ISSUER)),  # issued, genuine
        _vcard(personalise(OTHER_CARD, issuer_key=ISSUER)),  # genuine, unknown to gateway
        _vcard(personalise(CARD, issuer_key=SigningKey.generate())),  # a clone
    ]
    outcomes: list[Outcome] = []
    try:
        await asyncio.wait_for(ready.wait(), 20)
        for card in cards:
            await asyncio.to_thread(insert, card)
            try:
                outcomes.append(await asyncio.wait_for(reported.get(), 20))
            finally:
                await asyncio.to_thread(card.remove)
        assert await asyncio.wait_for(task, 20) == outcomes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    first, unknown, clone = outcomes
    assert first.approved and first.card is not None and first.card.authenticated
    assert first.auth is not None
    assert (first.auth["card"], first.auth["terminal_id"]) == (CARD, GATE)
    assert (first.auth["reason"], first.auth["amount"], first.auth["balance"]) == ("ok", 250, 750)
    assert "APPROVED" in first.line() and "signature verified" in first.line()
    assert unknown.auth is not None and not unknown.approved
    assert unknown.auth["reason"] == "unknown_card"
    assert clone.auth is None and clone.error is not None and "genuine" in clone.error
    rec = await gw.store.load_card(CARD)
    assert rec is not None and orjson.loads(rec.state)["balance"] == 750


@pytest.mark.anyio
async def test_citycard_reader_cli(vpcd_reader: str, gw: Gateway, redis_url: str) -> None:
    """`citycard reader --once` as a user runs it: a purchase at a shop till."""
    pub = next(iter(gateway_keys(redis_url).values()))
    with _vcard(personalise(CARD)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "reader", "--url", gw.url,
            "--terminal-id", SHOP, "--seed-hex", bytes(term_key(SHOP)).hex(),
            "--gateway-key", pub, "--reader", "Virtual PCD", "--op", "purchase",
            "--amount", "120", "--once", "--card-timeout", "20",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"{SHOP} online" in text
    assert f"card {CARD}: APPROVED (ok) amount=120 balance=880 EUR" in text


# --------------------------------------------------------------------------------------------
# The gateway link alone (no PC/SC needed)
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_link_refuses_an_untrusted_gateway(gw: Gateway) -> None:
    from terminal_sim.reader import GatewayLink, LinkError, TapFailed

    stranger = trusted_keys([bytes(SigningKey.generate().verify_key).hex()])
    link = GatewayLink(gw.url, GATE, term_key(GATE), stranger)
    with pytest.raises(LinkError, match="untrusted_gateway_key"):
        await link.open()
    with pytest.raises(TapFailed, match="untrusted_gateway_key"):
        await link.tap(CARD, "fare")
    assert not link.connected


@pytest.mark.anyio
async def test_link_reconnects_after_a_drop(gw: Gateway, redis_url: str) -> None:
    from terminal_sim.reader import GatewayLink

    keys = trusted_keys(gateway_keys(redis_url).values())
    link = GatewayLink(gw.url, GATE, term_key(GATE), keys)
    await link.open()
    try:
        first = await link.tap(CARD, "fare")
        assert first["result"] == "approved" and link.connects == 1
        assert link._ws is not None
        await link._ws.close()  # the network drops the connection
        second = await link.tap(CARD, "fare")  # reconnects, resynchronises seq, taps
        assert second["result"] == "approved" and second["reason"] == "repeat_tap"
        assert link.connects == 2 and second["seq"] > first["seq"]
    finally:
        await link.close()


@pytest.mark.anyio
async def test_card_with_a_key_signs_each_tap_through_pcsc(
    vpcd_reader: str, gw: Gateway, redis_url: str
) -> None:
    """A card issued with its card key: the reader asks it for each tap's cryptogram (TAP
    CRYPTOGRAM) and the gateway verifies it; a copy of the token with another key is declined
    by the gateway itself (no issuer keys at this terminal)."""
    from terminal_sim.reader import Outcome, ReaderConfig, run_reader

    seed = bytes(range(32))
    genuine = personalise(KEYED_CARD, issuer_key=ISSUER, card_seed=seed)
    assert genuine.card_key is not None
    await issue_card(gw.store, KEYED_CARD, balance=1_000,
                     card_key=bytes(genuine.card_key.verify_key).hex())
    keys = trusted_keys(gateway_keys(redis_url).values())
    cfg = ReaderConfig(
        url=gw.url, terminal_id=SHOP, signing_key=term_key(SHOP), gateway_keys=keys,
        reader="Virtual PCD 00 00", op="purchase", amount=100, max_cards=3, card_timeout=20,
    )  # fmt: skip
    ready = asyncio.Event()
    reported: asyncio.Queue[Outcome] = asyncio.Queue()
    task = asyncio.create_task(
        run_reader(cfg, reported.put_nowait, on_ready=lambda _reader: ready.set())
    )
    card = _vcard(genuine)
    clone = _vcard(personalise(KEYED_CARD, issuer_key=ISSUER, card_seed=bytes(32)))
    outcomes: list[Outcome] = []
    try:
        await asyncio.wait_for(ready.wait(), 20)
        for c in (card, card, clone):
            await asyncio.to_thread(insert, c)
            try:
                outcomes.append(await asyncio.wait_for(reported.get(), 20))
            finally:
                await asyncio.to_thread(c.remove)
        await asyncio.wait_for(task, 20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    first, second, copy = outcomes
    assert first.approved and second.approved, (first.line(), second.line())
    assert first.card is not None and second.card is not None
    assert first.card.cryptogram is not None and second.card.cryptogram is not None
    assert (first.card.cryptogram[0], second.card.cryptogram[0]) == (1, 2)
    assert copy.auth is not None and copy.auth["reason"] == "card_auth_failed", copy.line()
    rec = await gw.store.load_card(KEYED_CARD)
    assert rec is not None
    state = orjson.loads(rec.state)
    assert (state["balance"], state["card_counter"]) == (800, 2)
