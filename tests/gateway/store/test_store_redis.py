"""RedisStore specifics against a real Redis: key layout and TTLs, group commit, per-write errors,
NOSCRIPT recovery, overload, outages and shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import string
import zlib
from pathlib import Path

import anyio
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Connection

from actors.card_store import (
    RESERVED_JOURNAL_FIELDS,
    CardRecord,
    CardWrite,
    CommitResult,
    StoreError,
    StoreOverloaded,
    StoreUnavailable,
)
from gateway.store.interface import (
    JOURNAL_MAXLEN_PER_SHARD,
    RECENT_TAPS_PER_TERMINAL,
    TAP_RECORD_TTL_S,
)
from gateway.store.redis_server import RedisServer, free_port
from gateway.store.redis_store import (
    COMMIT_LUA,
    MAX_QUEUE_WAIT_S,
    PROGRESS_LUA,
    RedisStore,
    encode_write,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


@pytest.fixture
def sync_redis(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def write(
    card: str, *, expected: int = 0, tap: str = "tap-1", terminal: str = "term-1", seq: int = 1
) -> CardWrite:
    return CardWrite(
        card=card,
        expected_version=expected,
        new_state=b'{"balance":1}',
        terminal_id=terminal,
        tap_id=tap,
        tap_record=b"record-" + tap.encode(),
        journal={"amount": 1},
        seq=seq,
        tap_hash="hh",
    )


async def test_key_layout_and_tap_ttl(redis_url: str, sync_redis: redis.Redis) -> None:
    card = "card-42"
    nn = f"{zlib.crc32(card.encode()) % 64:02d}"
    async with RedisStore.connect(redis_url) as store:
        assert (await store.commit(write(card, tap="x1", terminal="gate-1", seq=9))).status == "ok"
    assert sorted(sync_redis.keys("*")) == sorted(
        [
            f"{{cc:s{nn}}}:card:{card}".encode(),
            f"{{cc:s{nn}}}:tap:gate-1/x1".encode(),
            f"{{cc:s{nn}}}:journal".encode(),
            b"{cc:t:gate-1}",
            b"{cc:t:gate-1}:recent",
        ]
    )
    assert sync_redis.hgetall(f"{{cc:s{nn}}}:card:{card}") == {
        b"state": b'{"balance":1}',
        b"ver": b"1",
    }
    assert sync_redis.get(f"{{cc:s{nn}}}:tap:gate-1/x1") == b"record-x1"
    ttl = sync_redis.ttl(f"{{cc:s{nn}}}:tap:gate-1/x1")
    assert TAP_RECORD_TTL_S - 60 < ttl <= TAP_RECORD_TTL_S
    assert sync_redis.hget(b"{cc:t:gate-1}", "last_seq") == b"9"
    assert sync_redis.lrange(b"{cc:t:gate-1}:recent", 0, -1) == [f"x1 {card} hh".encode()]


async def test_concurrent_commits_share_round_trips(redis_url: str) -> None:
    n = 600
    results: dict[int, CommitResult] = {}

    async def one(i: int) -> None:
        results[i] = await store.commit(write(f"card-{i}", tap=f"t{i}", seq=i))

    async with RedisStore.connect(redis_url, max_batch=256) as store:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        stats = store.stats
    assert all(r.status == "ok" and r.version == 1 for r in results.values())
    assert len(results) == n
    assert stats.writes == n
    assert stats.batches < n / 10
    assert stats.max_batch <= 256
    assert stats.mean_batch == n / stats.batches


async def test_concurrent_card_loads_share_round_trips(redis_url: str) -> None:
    """Card activations are group-fetched: a burst of loads costs a few round trips, not one
    pooled connection each (a pool would run dry under a burst of activations)."""
    n = 600
    async with RedisStore.connect(redis_url, max_connections=2) as store:
        for i in range(0, n, 2):
            await store.put_card(f"card-{i}", b'{"balance":%d}' % i)
        loaded: dict[int, CardRecord | None] = {}

        async def one(i: int) -> None:
            loaded[i] = await store.load_card(f"card-{i}")

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        stats = store.stats
    assert stats.loads == n and stats.load_batches < n / 10
    for i in range(n):
        rec = loaded[i]
        if i % 2:
            assert rec is None
        else:
            assert rec is not None and rec.state == b'{"balance":%d}' % i and rec.version == 1


async def test_a_failing_write_fails_alone(redis_url: str, sync_redis: redis.Redis) -> None:
    bad = "card-bad"
    sync_redis.set(f"{{cc:s{zlib.crc32(bad.encode()) % 64:02d}}}:card:{bad}", "not a hash")
    outcomes: dict[str, object] = {}

    async def one(card: str) -> None:
        try:
            outcomes[card] = await store.commit(write(card, tap=card))
        except StoreError as exc:
            outcomes[card] = exc

    async with RedisStore.connect(redis_url) as store:
        async with anyio.create_task_group() as tg:
            for card in ["card-a", "card-b", bad, "card-c"]:
                tg.start_soon(one, card)
        assert store.stats.batches < 4  # they did share a pipeline
        assert store.stats.write_errors == 1
    err = outcomes.pop(bad)
    assert type(err) is StoreError and "WRONGTYPE" in str(err)
    assert all(isinstance(r, CommitResult) and r.status == "ok" for r in outcomes.values())


async def test_noscript_after_script_flush_reloads(redis_url: str, sync_redis: redis.Redis) -> None:
    async with RedisStore.connect(redis_url) as store:
        assert (await store.commit(write("c1", tap="a"))).status == "ok"
        sync_redis.script_flush()
        results = []

        async def one(i: int) -> None:
            results.append(await store.commit(write(f"d{i}", tap=f"b{i}", seq=i)))

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
        assert [r.status for r in results] == ["ok"] * 50
        assert store.stats.script_reloads == 1
        assert (await store.commit(write("c1", expected=1, tap="c"))).version == 2


async def test_overload_refuses_instead_of_queueing(redis_url: str) -> None:
    outcomes: list[object] = []

    async def one(i: int) -> None:
        try:
            outcomes.append(await store.commit(write(f"card-{i}", tap=f"t{i}")))
        except StoreOverloaded as exc:
            outcomes.append(exc)

    async with RedisStore.connect(redis_url, max_pending=4) as store:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
        assert store.stats.overloaded > 0
    refused = [o for o in outcomes if isinstance(o, StoreOverloaded)]
    assert len(refused) == store.stats.overloaded
    assert all(
        isinstance(o, CommitResult) and o.status == "ok" for o in outcomes if o not in refused
    )
    assert issubclass(StoreOverloaded, StoreUnavailable)


async def test_exit_sends_what_is_queued_then_refuses(redis_url: str) -> None:
    async with RedisStore.connect(redis_url) as store:
        tasks = [asyncio.create_task(store.commit(write(f"c{i}", tap=f"t{i}"))) for i in range(20)]
        await asyncio.sleep(0)  # queued, not yet acknowledged
    assert [t.result().status for t in tasks] == ["ok"] * 20
    with pytest.raises(StoreUnavailable):
        await store.commit(write("late"))


async def test_body_exception_is_not_wrapped(redis_url: str) -> None:
    with pytest.raises(KeyError):
        async with RedisStore.connect(redis_url):
            raise KeyError("mine")


async def test_cancelled_caller_does_not_disturb_others(redis_url: str) -> None:
    async with RedisStore.connect(redis_url) as store:
        doomed = asyncio.create_task(store.commit(write("c-doomed", tap="d")))
        kept = asyncio.create_task(store.commit(write("c-kept", tap="k")))
        await asyncio.sleep(0)
        doomed.cancel()
        assert (await kept).status == "ok"
        # The cancelled write is either applied or not; retrying it is safe either way.
        retry = await store.commit(write("c-doomed", tap="d"))
        assert retry.status in ("ok", "duplicate") and retry.version == 1


async def test_connect_to_nothing_is_unavailable() -> None:
    with anyio.fail_after(10), pytest.raises(StoreUnavailable):
        async with RedisStore.connect(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5):
            pass


@pytest.mark.slow
async def test_redis_down_then_back(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path).start()
    # Since Redis 7 the script cache is not persisted in the AOF: a restarted server answers
    # NOSCRIPT and the store reloads its scripts once (a 6.x server would need no reload).
    assert server.version >= (7, 0, 0), server.version
    try:
        async with RedisStore.connect(server.url, socket_timeout=0.5, connect_timeout=0.5) as store:
            assert (await store.commit(write("c1", tap="a"))).status == "ok"
            server.kill()
            with anyio.fail_after(5):
                with pytest.raises(StoreUnavailable):
                    await store.commit(write("c1", expected=1, tap="b"))
                with pytest.raises(StoreUnavailable):
                    await store.commit(write("c2", tap="c"))
                for call in (
                    store.load_card("c1"),
                    store.terminal_progress("term-1"),
                    store.read_journal(count=1),
                ):
                    with pytest.raises(StoreUnavailable):
                        await call
            assert store.stats.failed_batches == 2
            # Back on the same port with the AOF: the acknowledged write survived, the scripts
            # did not (NOSCRIPT -> reload), and the connection is re-established on its own.
            server = RedisServer(data_dir=tmp_path, port=server.port).start()
            with anyio.fail_after(5):
                rec = await store.load_card("c1")
                assert rec is not None and rec.version == 1
                res = await store.commit(write("c1", expected=1, tap="b"))
            assert (res.status, res.version) == ("ok", 2)
            assert store.stats.script_reloads == 1
    finally:
        server.stop()


@pytest.mark.slow
async def test_stalled_redis_times_out_and_retry_is_safe(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    async with RedisStore.connect(redis_url, socket_timeout=0.3) as store:
        sync_redis.client_pause(1000)  # every client stalls
        with anyio.fail_after(3), pytest.raises(StoreUnavailable):
            await store.commit(write("c1", tap="a"))
        await anyio.sleep(1.0)
        # The first attempt may or may not have been applied: a retry is ok or duplicate.
        res = await store.commit(write("c1", tap="a"))
        assert res.status in ("ok", "duplicate") and res.version == 1


_ident = st.text(alphabet=string.ascii_letters + string.digits + "._:-", min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(
    card=_ident, terminal=_ident, tap=_ident, expected=st.integers(0, 2**62),
    state=st.none() | st.binary(max_size=300), record=st.binary(max_size=300),
    journal=st.dictionaries(
        _ident.filter(lambda k: k not in RESERVED_JOURNAL_FIELDS),
        st.text(max_size=40) | st.integers(-(2**62), 2**62), max_size=12),
    seq=st.integers(0, 2**62), tap_hash=st.text(alphabet="0123456789abcdef", max_size=64),
)
def test_hand_encoded_commands_match_redis_py(
    card: str, terminal: str, tap: str, expected: int, state: bytes | None, record: bytes,
    journal: dict[str, str | int], seq: int, tap_hash: str,
) -> None:
    """The hot path packs RESP itself; it must be byte for byte what redis-py would send."""
    w = CardWrite(card=card, expected_version=expected, new_state=state, terminal_id=terminal,
                  tap_id=tap, tap_record=record, journal=journal, seq=seq, tap_hash=tap_hash)
    shard = zlib.crc32(card.encode()) % 64
    commit_args: list[str | bytes | int] = [
        "EVALSHA", hashlib.sha1(COMMIT_LUA.encode()).hexdigest(), 3,
        f"{{cc:s{shard:02d}}}:card:{card}", f"{{cc:s{shard:02d}}}:tap:{terminal}/{tap}",
        f"{{cc:s{shard:02d}}}:journal", expected, "0" if state is None else "1", state or b"",
        record, TAP_RECORD_TTL_S, JOURNAL_MAXLEN_PER_SHARD, card, terminal, tap,
    ]
    for k, v in journal.items():
        commit_args += [k, v]
    progress_args: list[str | bytes | int] = [
        "EVALSHA", hashlib.sha1(PROGRESS_LUA.encode()).hexdigest(), 2,
        f"{{cc:t:{terminal}}}", f"{{cc:t:{terminal}}}:recent", seq, f"{tap} {card} {tap_hash}",
        RECENT_TAPS_PER_TERMINAL,
    ]
    pack = Connection().pack_command
    assert encode_write(w) == (b"".join(pack(*commit_args)), b"".join(pack(*progress_args)))


@pytest.mark.slow
async def test_write_queued_too_long_is_refused_unsent(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    """A write stuck behind a stalled round trip is refused once it has waited
    MAX_QUEUE_WAIT_S, without being sent: the tap ends in bounded time and was not applied."""
    async with RedisStore.connect(redis_url, socket_timeout=MAX_QUEUE_WAIT_S + 0.5) as store:
        sync_redis.client_pause(int((MAX_QUEUE_WAIT_S + 1.5) * 1000))
        first = asyncio.create_task(store.commit(write("c-first", tap="a")))
        await asyncio.sleep(0.05)  # the first batch is in flight; this one queues behind it
        queued = asyncio.create_task(store.commit(write("c-queued", tap="b")))
        with anyio.fail_after(MAX_QUEUE_WAIT_S + 3):
            results = await asyncio.gather(first, queued, return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert "not sent within" in str(results[1])
        assert store.stats.expired == 1
        await anyio.sleep(1.5)  # pause over
    shard = zlib.crc32(b"c-queued") % 64
    assert sync_redis.exists(f"{{cc:s{shard:02d}}}:tap:term-1/b") == 0
