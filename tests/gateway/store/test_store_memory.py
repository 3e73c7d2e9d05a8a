"""MemoryStore extras the actor tests rely on: the outage switches and tap record expiry."""

from __future__ import annotations

import pytest

from actors.card_store import CardWrite, StoreUnavailable
from gateway.store.memory_store import MemoryStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def write(tap: str, expected: int = 0) -> CardWrite:
    return CardWrite(card="c", expected_version=expected, new_state=b"{}", terminal_id="t",
                     tap_id=tap, tap_record=b"r-" + tap.encode(), journal={}, seq=1,
                     tap_hash="h")


async def test_unavailable_refuses_everything_and_writes_nothing() -> None:
    store = MemoryStore()
    store.unavailable = True
    with pytest.raises(StoreUnavailable):
        await store.commit(write("a"))
    with pytest.raises(StoreUnavailable):
        await store.load_card("c")
    store.unavailable = False
    assert await store.load_card("c") is None
    assert store.commits == 0


async def test_dropped_ack_applies_the_write_and_a_retry_finds_it() -> None:
    store = MemoryStore()
    store.drop_acks = True
    with pytest.raises(StoreUnavailable):
        await store.commit(write("a"))
    store.drop_acks = False
    res = await store.commit(write("a"))
    assert (res.status, res.version, res.tap_record) == ("duplicate", 1, b"r-a")


async def test_tap_records_expire_on_the_injected_clock() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0], tap_ttl_s=60)
    assert (await store.commit(write("a"))).status == "ok"
    now[0] += 59
    assert (await store.commit(write("a", expected=1))).status == "duplicate"
    now[0] += 2
    res = await store.commit(write("a", expected=1))
    assert (res.status, res.version) == ("ok", 2)
