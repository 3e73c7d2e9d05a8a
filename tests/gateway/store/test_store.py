"""The `Store` contract, run against MemoryStore (asyncio and trio) and RedisStore (asyncio, real
Redis). Redis-only behaviour (batching, TTLs, NOSCRIPT, outages) is in test_store_redis.py."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import anyio
import pytest

from actors.card_store import CardWrite
from gateway.store.interface import (
    JOURNAL_READ_MAX,
    NUM_SHARDS,
    RECENT_TAPS_PER_TERMINAL,
    Store,
    TerminalProgress,
    TerminalRecord,
    parse_journal_id,
    shard_of,
)
from gateway.store.memory_store import MemoryStore
from gateway.store.redis_store import RedisStore

KINDS = ["memory-asyncio", "memory-trio", "redis-asyncio"]


@pytest.fixture(params=KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend(store_kind: str) -> str:
    return store_kind.split("-")[1]


@pytest.fixture
async def store(store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if store_kind.startswith("memory"):
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    async with RedisStore.connect(url) as s:
        yield s


pytestmark = pytest.mark.anyio


def write(
    card: str = "card-1",
    *,
    expected: int = 0,
    state: bytes | None = b'{"balance":100}',
    terminal: str = "term-1",
    tap: str = "tap-1",
    seq: int = 1,
    record: bytes | None = None,
    tap_hash: str = "h1",
) -> CardWrite:
    return CardWrite(
        card=card,
        expected_version=expected,
        new_state=state,
        terminal_id=terminal,
        tap_id=tap,
        tap_record=record if record is not None else f"rec:{tap}".encode(),
        journal={"amount": 250, "result": "approved"},
        seq=seq,
        tap_hash=tap_hash,
    )


async def journal_all(store: Store) -> list[tuple[str, dict[str, str]]]:
    await anyio.sleep(0.003)  # RedisStore withholds entries of the server's current millisecond
    return await store.read_journal(count=JOURNAL_READ_MAX)


async def test_commit_creates_and_bumps_version(store: Store) -> None:
    assert await store.load_card("card-1") is None
    res = await store.commit(write(expected=0, state=b'{"v":1}', tap="a"))
    assert (res.status, res.version, res.tap_record) == ("ok", 1, None)
    res = await store.commit(write(expected=1, state=b'{"v":2}', tap="b", seq=2))
    assert (res.status, res.version) == ("ok", 2)
    rec = await store.load_card("card-1")
    assert rec is not None
    assert (rec.card, rec.state, rec.version) == ("card-1", b'{"v":2}', 2)


async def test_put_card_sets_state_bumps_version_and_journals(store: Store) -> None:
    await store.put_card("card-9", b'{"balance":500}')
    await store.put_card("card-9", b'{"balance":700}')
    rec = await store.load_card("card-9")
    assert rec is not None and (rec.state, rec.version) == (b'{"balance":700}', 2)
    entries = [f for _, f in await journal_all(store)]
    assert entries == [
        {"op": "put_card", "card": "card-9", "ver": "1", "state": '{"balance":500}'},
        {"op": "put_card", "card": "card-9", "ver": "2", "state": '{"balance":700}'},
    ]
    res = await store.commit(write("card-9", expected=2, tap="t"))
    assert (res.status, res.version) == ("ok", 3)


async def test_decline_records_tap_and_journal_but_keeps_version(store: Store) -> None:
    await store.put_card("card-1", b'{"balance":0}')
    res = await store.commit(write(expected=1, state=None, tap="d1", record=b"declined"))
    assert (res.status, res.version) == ("ok", 1)
    rec = await store.load_card("card-1")
    assert rec is not None and (rec.state, rec.version) == (b'{"balance":0}', 1)
    again = await store.commit(write(expected=1, state=None, tap="d1"))
    assert (again.status, again.tap_record) == ("duplicate", b"declined")
    commits = [f for _, f in await journal_all(store) if f["op"] == "commit"]
    assert commits == [
        {
            "op": "commit",
            "card": "card-1",
            "ver": "1",
            "terminal": "term-1",
            "tap": "d1",
            "amount": "250",
            "result": "approved",
        }
    ]


async def test_decline_of_unknown_card_writes_no_card(store: Store) -> None:
    res = await store.commit(write("ghost", expected=0, state=None, tap="g1"))
    assert (res.status, res.version) == ("ok", 0)
    assert await store.load_card("ghost") is None
    assert [c async for c in store.all_cards()] == []


async def test_duplicate_returns_original_and_writes_nothing(store: Store) -> None:
    first = await store.commit(write(expected=0, state=b'{"v":1}', tap="x", record=b"orig"))
    assert first.status == "ok"
    before = await journal_all(store)
    # Same (terminal, tap id), different content and a version that would otherwise conflict.
    dup = await store.commit(write(expected=7, state=b'{"v":99}', tap="x", record=b"other"))
    assert (dup.status, dup.version, dup.tap_record) == ("duplicate", 1, b"orig")
    rec = await store.load_card("card-1")
    assert rec is not None and (rec.state, rec.version) == (b'{"v":1}', 1)
    assert await journal_all(store) == before
    # The same tap id from another terminal is a different tap.
    other = await store.commit(write(expected=1, tap="x", terminal="term-2"))
    assert (other.status, other.version) == ("ok", 2)


async def test_conflict_on_stale_version_writes_nothing(store: Store) -> None:
    await store.commit(write(expected=0, state=b'{"v":1}', tap="a"))
    await store.commit(write(expected=1, state=b'{"v":2}', tap="b"))
    before = await journal_all(store)
    res = await store.commit(write(expected=1, state=b'{"v":"stale"}', tap="c"))
    assert (res.status, res.version, res.tap_record) == ("conflict", 2, None)
    assert await store.commit(write(expected=5, state=None, tap="c")) == res  # decline too
    assert await journal_all(store) == before
    rec = await store.load_card("card-1")
    assert rec is not None and (rec.state, rec.version) == (b'{"v":2}', 2)
    # Nothing was recorded for tap c: the retry on the current version goes through.
    retry = await store.commit(write(expected=2, state=b'{"v":3}', tap="c"))
    assert (retry.status, retry.version) == ("ok", 3)


async def test_journal_fields_reserved_for_the_store_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        CardWrite(
            card="c",
            expected_version=0,
            new_state=None,
            terminal_id="t",
            tap_id="x",
            tap_record=b"",
            journal={"card": "other"},
            seq=1,
            tap_hash="h",
        )


async def test_terminal_record_round_trip(store: Store) -> None:
    assert await store.get_terminal("gate-7") is None
    rec = TerminalRecord(
        terminal_id="gate-7",
        public_key_hex="ab" * 32,
        kind="gate",
        operator="metro",
        network="rail",
        location="Central",
        status="active",
    )
    await store.put_terminal(rec)
    assert await store.get_terminal("gate-7") == rec
    # Progress must not disturb the record, nor the record the progress.
    await store.commit(write(terminal="gate-7", tap="p", seq=12))
    revoked = dataclasses.replace(rec, status="revoked")
    await store.put_terminal(revoked)
    assert await store.get_terminal("gate-7") == revoked
    assert (await store.terminal_progress("gate-7")).last_seq == 12


async def test_terminal_progress_max_seq_and_recent_newest_first(store: Store) -> None:
    assert await store.terminal_progress("term-1") == TerminalProgress(0, ())
    await store.commit(write("c1", tap="t5", seq=5, tap_hash="h5"))
    await store.commit(write("c2", tap="t3", seq=3, tap_hash="h3"))  # late: seq stays 5
    await store.commit(write("c2", tap="t3", seq=3, tap_hash="h3"))  # duplicate, not repeated
    await store.commit(write("c3", tap="t7", seq=7, tap_hash="h7"))
    prog = await store.terminal_progress("term-1")
    assert prog.last_seq == 7
    assert prog.recent == (("t7", "c3", "h7"), ("t3", "c2", "h3"), ("t5", "c1", "h5"))
    assert await store.terminal_progress("term-2") == TerminalProgress(0, ())


@pytest.mark.slow
async def test_terminal_recent_list_is_trimmed(store: Store) -> None:
    n = RECENT_TAPS_PER_TERMINAL + 10

    async def one(i: int) -> None:
        res = await store.commit(write(f"card-{i}", tap=f"tap-{i}", seq=i + 1))
        assert res.status == "ok"

    for start in range(0, n, 1000):  # concurrently, in a few waves
        async with anyio.create_task_group() as tg:
            for i in range(start, min(n, start + 1000)):
                tg.start_soon(one, i)
    prog = await store.terminal_progress("term-1")
    assert prog.last_seq == n
    assert len(prog.recent) == RECENT_TAPS_PER_TERMINAL
    assert len({tap for tap, _, _ in prog.recent}) == RECENT_TAPS_PER_TERMINAL


async def test_journal_reads_across_shards_in_pages(store: Store) -> None:
    cards = [f"card-{i}" for i in range(200)]
    assert len({shard_of(c) for c in cards}) > NUM_SHARDS // 2
    for round_ in range(2):
        async with anyio.create_task_group() as tg:
            for i, card in enumerate(cards):
                tg.start_soon(store.commit, write(card, expected=round_, tap=f"t{round_}-{i}"))
    everything = await journal_all(store)
    assert len(everything) == 2 * len(cards)
    positions = [parse_journal_id(jid) for jid, _ in everything]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    for jid, fields in everything:
        assert shard_of(fields["card"]) == parse_journal_id(jid)[2]
    # Per card, its two entries come in version order.
    versions: dict[str, list[str]] = {}
    for _, fields in everything:
        versions.setdefault(fields["card"], []).append(fields["ver"])
    assert all(v == ["1", "2"] for v in versions.values())

    pages: list[tuple[str, dict[str, str]]] = []
    cursor: str | None = None
    while True:
        page = await store.read_journal(count=37, after=cursor)
        if not page:
            break
        assert len(page) <= 37
        pages.extend(page)
        cursor = page[-1][0]
    assert pages == everything
    assert await store.read_journal(count=0) == []
    with pytest.raises(ValueError):
        await store.read_journal(count=JOURNAL_READ_MAX + 1)


async def test_all_cards(store: Store) -> None:
    for i in range(30):
        await store.put_card(f"card:{i}", b"{}")  # ':' is allowed in card ids
    await store.commit(write("card:3", expected=1, tap="z"))
    got = {r.card: r.version async for r in store.all_cards()}
    assert got == {f"card:{i}": (2 if i == 3 else 1) for i in range(30)}
