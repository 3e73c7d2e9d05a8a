"""`gateway.keys.keyholder`: the key holder child process signs exactly what `GatewaySigner` would,
groups concurrent signatures into batches, refuses anything but authorisation bytes, survives
being killed, and is gone once its signer is closed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import nacl.signing
import pytest

from actors.card import SigningUnavailable
from gateway.keys import keyholder
from gateway.keys.keyholder import KeyholderSigner, _sign_batch
from gateway.keys.signing import GatewaySigner, load_or_create_signing_key
from gateway.wire.protocol import (
    AUTH_DOMAIN,
    AuthFields,
    DenyFields,
    auth_bytes,
    deny_bytes,
    proof_bytes,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the signer is asyncio-only


def _keyholder_children() -> list[int]:
    """Live (not zombie) key holder processes started by this test process."""
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == me and state != "Z" and b"gateway.keys.keyholder" in cmdline:
            pids.append(int(entry.name))
    return pids


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.fixture(autouse=True)
def no_keyholder_left() -> Iterator[None]:
    yield
    left = _keyholder_children()
    _kill_all(left)
    assert left == [], "a key holder process outlived its test"


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.key"
    load_or_create_signing_key(path)
    return path


@pytest.fixture
def reference(key_path: Path) -> GatewaySigner:
    return GatewaySigner(load_or_create_signing_key(key_path))


def auth(i: int, *, key_id: str = "k1", card: str = "card-1") -> bytes:
    return auth_bytes(
        AuthFields(
            key_id=key_id,
            terminal_id=f"gate-{i % 7}",
            seq=i,
            tap_id=f"tap-{i}",
            card=card,
            result="approved" if i % 3 else "declined",
            reason="" if i % 3 else "insufficient_funds",
            amount=i * 10,
            balance=10_000 - i,
            currency="EUR",
            gateway_time=1_700_000_000_000 + i,
        )
    )


async def kill_child(signer: KeyholderSigner) -> int:
    """SIGKILL the current key holder and wait until the signer has noticed."""
    assert signer._proc is not None and signer._link is not None
    link, pid = signer._link, signer._proc.pid
    os.kill(pid, signal.SIGKILL)
    with anyio.fail_after(2):
        await wait_until(lambda: link.lost, interval=0.001)
    return pid


async def wait_until(cond: Callable[[], object], interval: float = 0.01) -> None:
    """Poll until `cond()` holds (bound the wait with the caller's `fail_after`)."""
    while not cond():  # noqa: ASYNC110 - polls state nothing signals
        await asyncio.sleep(interval)


# -- signing ----------------------------------------------------------------------------------


async def test_signatures_equal_gateway_signer(key_path: Path, reference: GatewaySigner) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            assert signer.public_key_hex == reference.public_key_hex
            assert signer.key_id == reference.key_id
            for i in range(20):
                msg = auth(i, key_id=reference.key_id)
                sig = await signer.sign(msg)
                assert len(sig) == 64
                assert sig == reference.sign_bytes(msg)
                reference.verify_key.verify(msg, sig)  # raises if the signature is bad
            assert signer.stats() == {"batches": 20, "signed": 20, "restarts": 0}


async def test_deny_list_bytes_are_signed_too(key_path: Path, reference: GatewaySigner) -> None:
    fields = DenyFields(reference.key_id, 3, 2, 1, 1, 1_700_000_000_000, ("card-1",), ())
    msg = deny_bytes(fields)
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            assert await signer.sign(msg) == reference.sign_bytes(msg)
    assert _sign_batch(_request(msg), reference._secret) == reference.sign_bytes(msg)


async def test_largest_allowed_message_is_signed(key_path: Path, reference: GatewaySigner) -> None:
    prefix = (AUTH_DOMAIN + "\n").encode()
    msg = prefix + b"x" * (keyholder.MAX_MESSAGE_BYTES - len(prefix))
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            assert await signer.sign(msg) == reference.sign_bytes(msg)
            with pytest.raises(ValueError):
                await signer.sign(msg + b"x")


async def test_concurrent_signs_are_batched(key_path: Path, reference: GatewaySigner) -> None:
    messages = [auth(i) for i in range(500)]
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            sigs = await asyncio.gather(*(signer.sign(m) for m in messages))
            stats = signer.stats()
    assert sigs == [reference.sign_bytes(m) for m in messages]
    assert stats["signed"] == 500
    assert stats["batches"] < 500
    # At most MAX_BATCH per batch, so at least two batches for 500.
    assert stats["batches"] >= 500 // keyholder.MAX_BATCH
    assert stats["restarts"] == 0


async def test_concurrent_waves_keep_each_reply_with_its_message(
    key_path: Path, reference: GatewaySigner
) -> None:
    """New signatures queue while a batch is being signed; every caller gets its own."""
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:

            async def wave(w: int) -> None:
                for k in range(20):
                    msg = auth(w * 1000 + k)
                    assert await signer.sign(msg) == reference.sign_bytes(msg)
                    if k % 5 == 0:
                        await asyncio.sleep(0)

            await asyncio.gather(*(wave(w) for w in range(30)))
            assert signer.stats()["signed"] == 600


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"hello",
        AUTH_DOMAIN.encode(),  # the domain without its newline
        b" " + (AUTH_DOMAIN + "\n").encode(),
        b"citycard-auth-v2\nk1\n",
        b"citycard-deny-v2\nk1\n",
        proof_bytes("gate-1", "00" * 32, "k1"),
    ],
)
async def test_signing_anything_but_auth_bytes_is_refused(key_path: Path, message: bytes) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            with pytest.raises(ValueError):
                await signer.sign(message)
            # Refused before reaching the key holder: it is still the first one, and still works.
            assert signer.stats() == {"batches": 0, "signed": 0, "restarts": 0}
            assert len(await signer.sign(auth(1))) == 64


# -- the child side ---------------------------------------------------------------------------


def _request(*messages: bytes) -> bytes:
    return b"".join(len(m).to_bytes(2, "big") + m for m in messages)


def test_sign_batch_signs_each_message(reference: GatewaySigner) -> None:
    messages = [auth(i) for i in range(5)]
    out = _sign_batch(_request(*messages), reference._secret)
    assert out == b"".join(reference.sign_bytes(m) for m in messages)
    assert _sign_batch(b"", reference._secret) == b""


@pytest.mark.parametrize(
    "payload",
    [
        _request(b"not an authorisation"),
        _request(auth(1), b"not an authorisation"),  # one bad message spoils the batch
        _request(proof_bytes("gate-1", "00" * 32, "k1")),
        _request(AUTH_DOMAIN.encode()),
        _request(auth(1))[:-1],  # truncated message
        (100).to_bytes(2, "big") + (AUTH_DOMAIN + "\n").encode(),  # length beyond the payload
        b"\x00",  # half a length
    ],
)
def test_sign_batch_refuses_what_is_not_auth_bytes(
    reference: GatewaySigner, payload: bytes
) -> None:
    with pytest.raises(ValueError, match="not an authorisation"):
        _sign_batch(payload, reference._secret)


def test_serve_answers_in_order_and_stops_on_garbage(reference: GatewaySigner) -> None:
    gateway_end, child_end = socket.socketpair()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            keyholder.serve(child_end, reference._secret)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        gateway_end.settimeout(5)
        batches = [[auth(1)], [auth(2), auth(3)], [auth(4)]]
        # Two requests in one write, the third split in two: framing is by length only.
        raw = [len(_request(*b)).to_bytes(4, "big") + _request(*b) for b in batches]
        gateway_end.sendall(raw[0] + raw[1] + raw[2][:3])
        gateway_end.sendall(raw[2][3:])
        for batch in batches:
            expected = b"".join(reference.sign_bytes(m) for m in batch)
            reply = _recv_exact(gateway_end, 4 + len(expected))
            assert reply == len(expected).to_bytes(4, "big") + expected
        # Something not an authorisation: the key holder stops, without a reply.
        bad = _request(b"sign me")
        gateway_end.sendall(len(bad).to_bytes(4, "big") + bad)
        thread.join(5)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
    finally:
        gateway_end.close()
        thread.join(5)
        child_end.close()


def test_serve_refuses_an_oversized_request_and_ends_on_eof(reference: GatewaySigner) -> None:
    for data, error in ((b"\xff\xff\xff\xff", ValueError), (b"", None)):
        gateway_end, child_end = socket.socketpair()
        errors: list[BaseException] = []

        def run(sock: socket.socket = child_end, errs: list[BaseException] = errors) -> None:
            try:
                keyholder.serve(sock, reference._secret)
            except BaseException as exc:
                errs.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if data:
            gateway_end.sendall(data)
        else:
            gateway_end.shutdown(socket.SHUT_WR)  # the gateway went away
        thread.join(5)
        assert not thread.is_alive()
        assert [type(e) for e in errors] == ([error] if error else [])
        gateway_end.close()
        child_end.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return buf


# -- the child dying --------------------------------------------------------------------------


async def test_killed_child_is_restarted(key_path: Path, reference: GatewaySigner) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            assert await signer.sign(auth(0)) == reference.sign_bytes(auth(0))
            assert signer._proc is not None
            old = signer._proc
            await kill_child(signer)
            # The next signatures start a new key holder (or, at worst, are told to retry).
            messages = [auth(i) for i in range(1, 51)]
            results = await asyncio.gather(
                *(signer.sign(m) for m in messages), return_exceptions=True
            )
            for msg, res in zip(messages, results, strict=True):
                assert res == reference.sign_bytes(msg) or isinstance(res, SigningUnavailable)
            assert await signer.sign(auth(99)) == reference.sign_bytes(auth(99))
            assert signer.stats()["restarts"] >= 1
            assert signer._proc is not None and signer._proc.pid != old.pid
            assert old.poll() == -signal.SIGKILL  # the dead one was reaped


async def test_child_killed_with_a_batch_in_flight(
    key_path: Path, reference: GatewaySigner
) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            messages = [auth(i) for i in range(600)]
            tasks = [asyncio.create_task(signer.sign(m)) for m in messages]
            # Let the first batches go out, then kill the key holder under them.
            await wait_until(lambda: signer.stats()["batches"] >= 2, interval=0)
            await kill_child(signer)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            failed = 0
            for msg, res in zip(messages, results, strict=True):
                if isinstance(res, SigningUnavailable):
                    failed += 1
                else:
                    assert res == reference.sign_bytes(msg)
            # Whatever was only queued went to the new key holder: nothing hangs.
            assert failed <= 2 * keyholder.MAX_BATCH
            assert await signer.sign(auth(1000)) == reference.sign_bytes(auth(1000))
            assert signer.stats()["restarts"] >= 1


async def test_child_killed_twice(key_path: Path, reference: GatewaySigner) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            for round_ in range(2):
                await kill_child(signer)
                msg = auth(round_)
                try:
                    sig = await signer.sign(msg)
                except SigningUnavailable:
                    sig = await signer.sign(msg)
                assert sig == reference.sign_bytes(msg)
            assert signer.stats()["restarts"] == 2


async def test_restarts_are_limited(
    key_path: Path, reference: GatewaySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyholder, "MAX_RESTARTS_PER_MIN", 2)
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:  # start 1
            await kill_child(signer)
            assert await signer.sign(auth(1)) == reference.sign_bytes(auth(1))  # start 2
            await kill_child(signer)
            for i in range(3):
                with pytest.raises(SigningUnavailable, match="restarted 2 times"):
                    await signer.sign(auth(2 + i))
            assert signer.stats()["restarts"] == 1


async def test_refused_signature_is_not_signed_later(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyholder, "MAX_RESTARTS_PER_MIN", 1)
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            await kill_child(signer)
            for i in range(3):
                with pytest.raises(SigningUnavailable):
                    await signer.sign(auth(i))
            signer._starts.clear()  # as if the minute had passed
            await signer.sign(auth(100))
            # Only the one signature anybody waits for was made.
            assert signer.stats()["signed"] == 1


async def test_sign_cancelled_during_restart_does_not_break_the_next_restart(
    key_path: Path, reference: GatewaySigner
) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            await kill_child(signer)
            # This sign() starts a new key holder and gives up while it starts.
            task = asyncio.create_task(signer.sign(auth(1)))
            await asyncio.sleep(0.01)
            assert signer._starting is not None and not signer._starting.done()
            task.cancel()
            # The new key holder is up (its start probe answered).
            await wait_until(lambda: signer._link is not None and not signer._link.waiting)
            assert await signer.sign(auth(2)) == reference.sign_bytes(auth(2))
            await kill_child(signer)
            # Either a signature or SigningUnavailable, promptly; never a hang.
            outcome: object = "hang"
            with anyio.move_on_after(1):
                try:
                    outcome = await signer.sign(auth(3))
                except SigningUnavailable:
                    outcome = "unavailable"
    assert outcome in (reference.sign_bytes(auth(3)), "unavailable")


# -- closing ----------------------------------------------------------------------------------


async def test_child_exits_when_the_signer_closes(key_path: Path) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            await signer.sign(auth(1))
            assert signer._proc is not None
            proc = signer._proc
            assert proc.poll() is None
        assert proc.poll() is not None  # exited and reaped
        with pytest.raises(SigningUnavailable):
            await signer.sign(auth(2))
    assert _keyholder_children() == []


async def test_waiting_signatures_fail_when_the_signer_closes(key_path: Path) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            tasks = [asyncio.create_task(signer.sign(auth(i))) for i in range(600)]
            await wait_until(lambda: signer.stats()["batches"] >= 1, interval=0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, bytes | SigningUnavailable) for r in results)
    assert any(isinstance(r, SigningUnavailable) for r in results)
    assert _keyholder_children() == []


async def test_no_key_holder_is_started_after_close(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            link_failed = signer._link_failed

            def link_failed_then_close(link: keyholder._Link, err: SigningUnavailable) -> None:
                link_failed(link, err)  # schedules a restart: signatures are queued
                signer.close()  # ... and the gateway shuts down right then

            monkeypatch.setattr(signer, "_link_failed", link_failed_then_close)
            tasks = [asyncio.create_task(signer.sign(auth(i))) for i in range(600)]
            await wait_until(lambda: signer.stats()["batches"] >= 2, interval=0)
            assert signer._pending  # more than one batch's worth is queued
            assert signer._proc is not None
            os.kill(signer._proc.pid, signal.SIGKILL)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, bytes | SigningUnavailable) for r in results)
            await asyncio.sleep(0.5)  # time for a (wrongly) scheduled restart to run
            # Closed is closed: no key holder runs (leaving the context stops a stray one).
            assert _keyholder_children() == []


async def test_start_fails_cleanly_with_a_bad_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    with pytest.raises(ValueError):
        async with KeyholderSigner.start(bad):
            pass
    assert _keyholder_children() == []


async def test_start_fails_when_the_key_holder_cannot_start(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key holder that dies at once (here: its key file vanished after the gateway read it)
    makes start() fail with SigningUnavailable rather than hang."""
    real_start = keyholder._start_process

    def start_without_key(path: Path) -> object:
        return real_start(path.with_name("missing.key"))

    monkeypatch.setattr(keyholder, "_start_process", start_without_key)
    with anyio.fail_after(10), pytest.raises(SigningUnavailable):
        async with KeyholderSigner.start(key_path):
            pass
    assert _keyholder_children() == []


def test_nacl_reference_agrees(reference: GatewaySigner) -> None:
    """Sanity: the reference signer is plain Ed25519 (PyNaCl's SigningKey)."""
    msg = auth(7)
    assert (
        reference.sign_bytes(msg)
        == nacl.signing.SigningKey(bytes(reference.signing_key)).sign(msg).signature
    )


async def test_hung_key_holder_is_replaced_after_the_sign_timeout(
    key_path: Path, reference: GatewaySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key holder that stops answering (SIGSTOP) fails the waiting signatures after
    SIGN_TIMEOUT_S instead of holding their taps forever, and a new one takes over."""
    monkeypatch.setattr(keyholder, "SIGN_TIMEOUT_S", 0.3)
    with anyio.fail_after(10):
        async with KeyholderSigner.start(key_path) as signer:
            assert signer._proc is not None
            stuck = signer._proc
            os.kill(stuck.pid, signal.SIGSTOP)
            try:
                started = asyncio.get_running_loop().time()
                with pytest.raises(SigningUnavailable, match="did not answer"):
                    await signer.sign(auth(1))
                assert asyncio.get_running_loop().time() - started < 2
                assert await signer.sign(auth(2)) == reference.sign_bytes(auth(2))
                assert signer.stats()["restarts"] == 1
                assert stuck.poll() is not None  # the hung one was stopped
            finally:
                if stuck.poll() is None:
                    os.kill(stuck.pid, signal.SIGKILL)
                    stuck.wait()
