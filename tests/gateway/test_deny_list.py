"""The deny list a gateway holds and the frames it sends: deltas when the change log reaches
back, the whole list otherwise, every frame verifiable and within the frame bound; and the
terminal-side holder that refuses forged, stale and out-of-order frames."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gateway.deny_list import DenyList
from gateway.keys.authority import GatewayAuthority, LocalSigner
from gateway.keys.signing import GatewaySigner
from gateway.wire import protocol as wire
from terminal_sim.deny_holder import DenyHolder

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


KEY = SigningKey(hashlib.sha256(b"deny list test key").digest())
SIGNER = LocalSigner(GatewaySigner(KEY))
AUTHORITY = GatewayAuthority(SIGNER, lambda: "EUR")
KEYS = {SIGNER.key_id: KEY.verify_key}


def deny_list() -> DenyList:
    return DenyList(AUTHORITY, lambda: 1_767_225_600_000)


async def sync(holder: DenyHolder, dl: DenyList) -> None:
    for frame in await dl.frames_for(holder.version):
        holder.receive(wire.decode_gateway_message(frame), KEYS)


async def test_deltas_and_snapshots() -> None:
    dl = deny_list()
    assert await dl.frames_for(0) == []
    assert dl.apply(1, "add", "c1") and dl.apply(2, "add", "c2") and dl.apply(3, "remove", "c1")
    assert not dl.apply(5, "add", "c9")  # a gap: the caller reloads
    assert dl.changes_since(1) == (["c2"], ["c1"])
    assert dl.changes_since(3) == ([], [])
    assert dl.changes_since(7) is None  # ahead of us: whole list
    fresh = DenyHolder()
    await sync(fresh, dl)
    assert (fresh.version, fresh.cards) == (3, {"c2"})
    behind = DenyHolder()
    behind.version, behind.cards = 1, {"c1"}
    frames = await dl.frames_for(1)
    assert len(frames) == 1 and wire.decode_gateway_message(frames[0])["base_version"] == 1
    await sync(behind, dl)
    assert (behind.version, behind.cards) == (3, {"c2"})
    assert await dl.frames_for(1) is frames  # signed once, cached


async def test_a_log_that_does_not_reach_back_sends_the_whole_list() -> None:
    dl = deny_list()
    dl.load(10, {"a": 4, "b": 9}, [(9, "add", "b"), (10, "remove", "c")])
    assert dl.changes_since(7) is None and dl.changes_since(8) == (["b"], ["c"])
    holder = DenyHolder()
    holder.version, holder.cards = 7, {"a", "c"}
    await sync(holder, dl)
    assert (holder.version, holder.cards) == (10, {"a", "b"})


async def test_every_frame_fits_the_frame_bound() -> None:
    dl = deny_list()
    cards = [f"{i:064d}" for i in range(wire.DENY_PART_MAX_CARDS * 3 + 1)]
    dl.load(len(cards), dict.fromkeys(cards, 1), [])
    frames = await dl.frames_for(0)
    assert len(frames) == 4
    assert all(len(f) <= wire.MAX_FRAME_BYTES for f in frames)
    assert all(len(wire.deny_bytes(wire.deny_fields_from_message(
        wire.decode_gateway_message(f)))) <= 4096 for f in frames)
    holder = DenyHolder()
    for f in reversed(frames):  # parts may arrive in any order
        holder.receive(wire.decode_gateway_message(f), KEYS)
    assert holder.cards == set(cards)


async def test_the_holder_refuses_forged_and_stale_frames() -> None:
    dl = deny_list()
    dl.apply(1, "add", "c1")
    frame = wire.decode_gateway_message((await dl.frames_for(0))[0])
    forged = {**frame, "add": ["someone-else"]}
    holder = DenyHolder()
    assert not holder.receive(forged, KEYS) and holder.bad_signatures == 1
    other_key = SigningKey(hashlib.sha256(b"another").digest())
    assert not holder.receive(frame, {SIGNER.key_id: other_key.verify_key})
    assert holder.receive(frame, KEYS) and holder.cards == {"c1"}
    dl.apply(2, "add", "c2")
    dl.apply(3, "add", "c3")
    late = wire.decode_gateway_message((await dl.frames_for(2))[0])  # base 2, holder is at 1
    assert not holder.receive(late, KEYS) and holder.stale == 1 and holder.version == 1


def test_deny_bytes_are_unambiguous() -> None:
    f = wire.DenyFields("k1", 5, 4, 1, 1, 99, ("a", "b"), ("c",))
    assert wire.deny_bytes(f) == b"citycard-deny-v1\nk1\n5\n4\n1\n1\n99\n2\na\nb\n1\nc\n"
    with pytest.raises(ValueError):
        wire.deny_bytes(wire.DenyFields("k1", 5, 4, 1, 1, 99, ("a\nb",), ()))


def test_hello_carries_the_deny_version() -> None:
    assert wire.decode_terminal_message(wire.encode_hello("t1", 7)) == wire.Hello("t1", 7)
    assert wire.decode_terminal_message(wire.encode_hello("t1")) == wire.Hello("t1", 0)
    for bad in (-1, "7", 1.5, True):
        frame = b'{"v":1,"type":"hello","terminal_id":"t1","deny_version":%s}' % (
            str(bad).lower().encode() if not isinstance(bad, str) else b'"7"'
        )
        with pytest.raises(wire.ProtocolError) as err:
            wire.decode_terminal_message(frame)
        assert err.value.code == wire.BAD_FIELD


def test_the_decoder_checks_deny_list_frames() -> None:
    ok = wire.encode_deny_list(wire.DenyFields("k1", 1, 0, 1, 1, 5, ("a",), ()), "0" * 128)
    assert wire.decode_gateway_message(ok)["add"] == ["a"]
    too_many = ok.replace(b'"add":["a"]', b'"add":[' + b",".join(
        [b'"x"'] * (wire.DENY_PART_MAX_CARDS + 1)) + b"]")
    with pytest.raises(wire.ProtocolError):
        wire.decode_gateway_message(too_many)
    with pytest.raises(wire.ProtocolError):
        wire.decode_gateway_message(ok.replace(b'"add":["a"]', b'"add":["a b"]'))


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([f"c{i}" for i in range(12)])), max_size=80
    ),
    st.data(),
)
async def test_any_history_brings_any_holder_to_the_same_list(
    changes: list[tuple[bool, str]], data: st.DataObject
) -> None:
    """Property: whatever version a terminal holds, the frames it is sent give it exactly the
    gateway's list."""
    dl = deny_list()
    history: list[set[str]] = [set()]
    for add, card in changes:
        current = set(history[-1])
        if add == (card in current):
            continue  # no change: no version
        current.symmetric_difference_update({card})
        dl.apply(len(history), "add" if add else "remove", card)
        history.append(current)
    start = data.draw(st.integers(0, len(history) - 1))
    holder = DenyHolder()
    holder.version, holder.cards = start, set(history[start])
    await sync(holder, dl)
    assert holder.cards == history[-1] == set(dl.cards)
    assert holder.version == dl.version
