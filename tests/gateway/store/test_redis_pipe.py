"""`gateway.store.redis_pipe.RedisPipe` against a real Redis: replies in order per batch, error
replies as values, database selection and AUTH, outages, stalls and the URL forms it understands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import hiredis
import pytest
import redis

from gateway.store.redis_pipe import (
    MAX_BATCHES_IN_FLIGHT,
    Endpoint,
    PipeError,
    RedisPipe,
    resp_command,
)
from gateway.store.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the pipe is an asyncio.Protocol


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def url_with_db(url: str, db: int) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


def new_pipe(url: str, *, timeout: float = 1.0, connect_timeout: float = 1.0) -> RedisPipe:
    return RedisPipe(url, timeout=timeout, connect_timeout=connect_timeout)


async def wait_until(cond: Callable[[], object], interval: float = 0.01) -> None:
    """Poll until `cond()` holds (bound the wait with the caller's `fail_after`)."""
    while not cond():  # noqa: ASYNC110 - polls state nothing signals
        await asyncio.sleep(interval)


# -- replies ----------------------------------------------------------------------------------


async def test_replies_come_back_in_order(redis_url: str) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            replies = await pipe.round_trip(
                [
                    resp_command(b"SET", b"k", b"v"),
                    resp_command(b"GET", b"k"),
                    resp_command(b"INCR", b"n"),
                    resp_command(b"INCR", b"n"),
                    resp_command(b"GET", b"missing"),
                    resp_command(b"RPUSH", b"l", b"a", b"b"),
                    resp_command(b"LRANGE", b"l", b"0", b"-1"),
                ]
            )
            assert replies == [b"OK", b"v", 1, 2, None, 2, [b"a", b"b"]]
            assert pipe.connected
            # The same connection serves the next batch.
            assert await pipe.round_trip([resp_command(b"GET", b"n")]) == [b"2"]
    finally:
        pipe.close()
    assert not pipe.connected


async def test_empty_batch_needs_no_connection() -> None:
    pipe = new_pipe("redis://127.0.0.1:1/0")  # nothing listens there
    assert await pipe.round_trip([]) == []
    assert not pipe.connected


async def test_binary_safe_arguments_and_large_replies(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB, with \r\n and NUL inside: many reads
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            key = b"k\r\n\x00 \xff"
            assert await pipe.round_trip(
                [resp_command(b"SET", key, big), resp_command(b"GET", key)]
            ) == [b"OK", big]
        assert sync_redis.get(key) == big
    finally:
        pipe.close()


async def test_a_large_batch_in_one_write(redis_url: str) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            replies = await pipe.round_trip([resp_command(b"INCR", b"c")] * 20_000)
        assert replies == list(range(1, 20_001))
    finally:
        pipe.close()


async def test_concurrent_round_trips_keep_their_own_replies(redis_url: str) -> None:
    pipe = new_pipe(redis_url)

    async def one(i: int) -> None:
        for j in range(5):
            key = b"key-%d" % i
            replies = await pipe.round_trip(
                [
                    resp_command(b"SET", key, b"%d-%d" % (i, j)),
                    resp_command(b"GET", key),
                    resp_command(b"INCR", b"count-%d" % i),
                ]
            )
            assert replies == [b"OK", b"%d-%d" % (i, j), j + 1]
            if j % 2:
                await asyncio.sleep(0)

    try:
        with anyio.fail_after(2):
            await asyncio.gather(*(one(i) for i in range(60)))
    finally:
        pipe.close()


async def test_concurrent_first_round_trips_share_one_connection(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            replies = await asyncio.gather(
                *(pipe.round_trip([resp_command(b"CLIENT", b"ID")]) for _ in range(20))
            )
        assert len({r[0] for r in replies}) == 1
    finally:
        pipe.close()


async def test_error_replies_are_values(redis_url: str) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            replies = await pipe.round_trip(
                [
                    resp_command(b"SET", b"s", b"not a number"),
                    resp_command(b"INCR", b"s"),
                    resp_command(b"GET", b"s"),
                    resp_command(b"LPUSH", b"s", b"x"),  # WRONGTYPE
                    resp_command(b"NOSUCHCOMMAND"),
                    resp_command(b"INCR", b"n"),
                ]
            )
            assert replies[0] == b"OK"
            assert isinstance(replies[1], hiredis.ReplyError)
            assert "not an integer" in str(replies[1])
            assert replies[2] == b"not a number"
            assert isinstance(replies[3], hiredis.ReplyError)
            assert str(replies[3]).startswith("WRONGTYPE")
            assert isinstance(replies[4], hiredis.ReplyError)
            assert replies[5] == 1
            # The connection is unharmed.
            assert await pipe.round_trip([resp_command(b"INCR", b"n")]) == [2]
            assert pipe.connected
    finally:
        pipe.close()


async def test_cancelled_round_trip_leaves_the_connection_usable(redis_url: str) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            await pipe.round_trip([resp_command(b"PING")])
            slow = asyncio.create_task(pipe.round_trip([resp_command(b"BLPOP", b"empty", b"0.3")]))
            await asyncio.sleep(0.05)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            # Queued behind the cancelled batch: gets its own reply, not the BLPOP's.
            assert await pipe.round_trip(
                [resp_command(b"SET", b"a", b"1"), resp_command(b"GET", b"a")]
            ) == [b"OK", b"1"]
            assert pipe.connected
    finally:
        pipe.close()


async def test_batches_in_flight_are_bounded(redis_url: str) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            await pipe.round_trip([resp_command(b"PING")])  # connected
            n = MAX_BATCHES_IN_FLIGHT + 10
            results = await asyncio.gather(
                *(pipe.round_trip([resp_command(b"INCR", b"c")]) for _ in range(n)),
                return_exceptions=True,
            )
            ok = [r for r in results if isinstance(r, list)]
            refused = [r for r in results if isinstance(r, PipeError)]
            assert len(ok) == MAX_BATCHES_IN_FLIGHT and len(refused) == 10
            assert sorted(r[0] for r in ok) == list(range(1, MAX_BATCHES_IN_FLIGHT + 1))
            # Refusing more did not break the connection.
            assert await pipe.round_trip([resp_command(b"GET", b"c")]) == [
                b"%d" % MAX_BATCHES_IN_FLIGHT
            ]
    finally:
        pipe.close()


async def test_close_fails_waiting_batches(redis_url: str) -> None:
    pipe = new_pipe(redis_url)
    with anyio.fail_after(2):
        await pipe.round_trip([resp_command(b"PING")])
        slow = asyncio.create_task(pipe.round_trip([resp_command(b"BLPOP", b"empty", b"1")]))
        await asyncio.sleep(0.05)
        pipe.close()
        with pytest.raises(PipeError):
            await slow
        assert not pipe.connected
        # A closed pipe connects again when asked.
        assert await pipe.round_trip([resp_command(b"PING")]) == [b"PONG"]
        pipe.close()


# -- database and AUTH ------------------------------------------------------------------------


async def test_url_database_is_selected(redis_url: str) -> None:
    pipe = new_pipe(url_with_db(redis_url, 3))
    db3 = redis.Redis.from_url(url_with_db(redis_url, 3))
    db0 = redis.Redis.from_url(url_with_db(redis_url, 0))
    try:
        with anyio.fail_after(2):
            assert await pipe.round_trip([resp_command(b"SET", b"where", b"db3")]) == [b"OK"]
        assert db3.get(b"where") == b"db3"
        assert db0.get(b"where") is None
        # Still db 3 after a reconnection.
        pipe.close()
        with anyio.fail_after(2):
            assert await pipe.round_trip([resp_command(b"GET", b"where")]) == [b"db3"]
    finally:
        pipe.close()
        db3.close()
        db0.close()


async def test_database_out_of_range_is_refused(redis_url: str) -> None:
    pipe = new_pipe(url_with_db(redis_url, 999))
    with anyio.fail_after(2), pytest.raises(PipeError, match="setup refused"):
        await pipe.round_trip([resp_command(b"PING")])
    assert not pipe.connected


async def test_username_and_password(redis_url: str, sync_redis: redis.Redis) -> None:
    sync_redis.acl_setuser(
        "pipe-tester", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"]
    )
    host_port = redis_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        pipe = new_pipe(f"redis://pipe-tester:s3cret@{host_port}/2")
        try:
            with anyio.fail_after(2):
                assert await pipe.round_trip(
                    [resp_command(b"ACL", b"WHOAMI"), resp_command(b"SET", b"x", b"1")]
                ) == [b"pipe-tester", b"OK"]
        finally:
            pipe.close()
        db2 = redis.Redis.from_url(url_with_db(redis_url, 2))
        assert db2.get(b"x") == b"1"
        db2.close()

        for bad in (
            f"redis://pipe-tester:wrong@{host_port}/0",
            f"redis://:only-a-password@{host_port}/0",  # the default user has no password
        ):
            pipe = new_pipe(bad)
            with anyio.fail_after(2), pytest.raises(PipeError, match="setup refused"):
                await pipe.round_trip([resp_command(b"PING")])
            assert not pipe.connected
    finally:
        sync_redis.acl_deluser("pipe-tester")


# -- outages and stalls -----------------------------------------------------------------------


async def test_redis_down_then_back(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path).start()
    try:
        pipe = new_pipe(server.url, timeout=0.5, connect_timeout=0.5)
        with anyio.fail_after(2):
            assert await pipe.round_trip([resp_command(b"SET", b"a", b"1")]) == [b"OK"]
        server.kill()
        with anyio.fail_after(3):
            # The broken connection, then refused connections: PipeError each time.
            for _ in range(3):
                with pytest.raises(PipeError):
                    await pipe.round_trip([resp_command(b"GET", b"a")])
            assert not pipe.connected
        # Back on the same port: the pipe connects again by itself.
        server = RedisServer(data_dir=tmp_path, port=server.port).start()
        with anyio.fail_after(2):
            assert await pipe.round_trip([resp_command(b"PING")]) == [b"PONG"]
            assert pipe.connected
        pipe.close()
    finally:
        server.stop()


async def test_in_flight_batches_fail_when_the_server_dies(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path).start()
    try:
        pipe = new_pipe(server.url, timeout=2.0, connect_timeout=0.5)
        with anyio.fail_after(3):
            await pipe.round_trip([resp_command(b"PING")])
            blocked = [
                asyncio.create_task(pipe.round_trip([resp_command(b"BLPOP", b"q", b"5")]))
                for _ in range(3)
            ]
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            server.kill()
            results = await asyncio.gather(*blocked, return_exceptions=True)
            assert all(isinstance(r, PipeError) for r in results)
            assert time.monotonic() - t0 < 1  # at once, not after the timeout
        pipe.close()
    finally:
        server.stop()


async def test_connection_closed_by_the_server_is_replaced(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    pipe = new_pipe(redis_url)
    try:
        with anyio.fail_after(2):
            [first_id] = await pipe.round_trip([resp_command(b"CLIENT", b"ID")])
            sync_redis.client_kill_filter(_id=str(first_id))
            await wait_until(lambda: not pipe.connected)
            [second_id] = await pipe.round_trip([resp_command(b"CLIENT", b"ID")])
            assert second_id != first_id
    finally:
        pipe.close()


async def test_nothing_listening_is_a_pipe_error() -> None:
    from gateway.store.redis_server import free_port

    pipe = new_pipe(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    with anyio.fail_after(2), pytest.raises(PipeError, match="cannot connect"):
        await pipe.round_trip([resp_command(b"PING")])


@pytest.mark.slow
async def test_stalled_redis_times_out_and_reconnects(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    pipe = new_pipe(redis_url, timeout=0.3)
    try:
        with anyio.fail_after(2):
            await pipe.round_trip([resp_command(b"PING")])
            sync_redis.client_pause(1000)  # every client stalls
            paused_at = time.monotonic()
            results = await asyncio.gather(
                pipe.round_trip([resp_command(b"INCR", b"a")]),
                pipe.round_trip([resp_command(b"INCR", b"b")]),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - paused_at
            # Both batches on the stalled connection fail, about when the timeout says.
            assert all(isinstance(r, PipeError) for r in results), results
            assert 0.25 <= elapsed < 0.8
            assert not pipe.connected
            await asyncio.sleep(1.05 - elapsed)  # the pause is over
            # A fresh connection; the stalled INCRs may or may not have run.
            replies = await pipe.round_trip(
                [resp_command(b"INCR", b"a"), resp_command(b"INCR", b"b")]
            )
            assert replies[0] in (1, 2) and replies[1] in (1, 2)
    finally:
        pipe.close()


async def test_setup_timeout_does_not_leak_the_connection(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    def connections() -> int:
        return len(sync_redis.client_list())

    before = connections()
    pipe = new_pipe(url_with_db(redis_url, 3), timeout=0.3, connect_timeout=0.2)
    with anyio.fail_after(2):
        sync_redis.client_pause(500)  # SELECT gets no reply within connect_timeout
        with pytest.raises(PipeError):
            await pipe.round_trip([resp_command(b"PING")])
        await asyncio.sleep(0.5)  # the pause is over
        pipe.close()
        with anyio.move_on_after(0.5):  # the server notices closed connections soon
            await wait_until(lambda: connections() <= before, interval=0.02)
    assert connections() == before


# -- URLs -------------------------------------------------------------------------------------


def test_endpoint_from_tcp_url() -> None:
    ep = Endpoint.from_url("redis://user:pw@host:1234/2")
    assert ep == Endpoint(
        host="host", port=1234, path=None, tls=False, username="user", password="pw", db=2
    )
    assert ep.setup_commands() == [
        resp_command(b"AUTH", b"user", b"pw"),
        resp_command(b"SELECT", b"2"),
    ]
    assert ep.setup_commands()[0] == b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$2\r\npw\r\n"


def test_endpoint_from_unix_url() -> None:
    ep = Endpoint.from_url("unix:///path?db=1")
    assert (ep.host, ep.path, ep.tls, ep.db) == (None, "/path", False, 1)
    assert (ep.username, ep.password) == (None, None)
    assert ep.setup_commands() == [resp_command(b"SELECT", b"1")]

    ep = Endpoint.from_url("unix:///run/redis.sock?password=x")
    assert (ep.path, ep.password, ep.db) == ("/run/redis.sock", "x", 0)
    assert ep.setup_commands() == [resp_command(b"AUTH", b"x")]


def test_endpoint_from_tls_url() -> None:
    ep = Endpoint.from_url("rediss://:secret@cache.example:6380")
    assert ep == Endpoint(
        host="cache.example",
        port=6380,
        path=None,
        tls=True,
        username=None,
        password="secret",
        db=0,
    )
    assert ep.setup_commands() == [resp_command(b"AUTH", b"secret")]
    assert Endpoint.from_url("rediss://cache.example").tls
    assert Endpoint.from_url("rediss://cache.example").port == 6379


def test_endpoint_defaults() -> None:
    ep = Endpoint.from_url("redis://localhost")
    assert ep == Endpoint(
        host="localhost", port=6379, path=None, tls=False, username=None, password=None, db=0
    )
    assert ep.setup_commands() == []
    assert Endpoint.from_url("redis://localhost/0").setup_commands() == []
    assert Endpoint.from_url("redis://h?db=5").db == 5
    # Percent-encoded credentials are decoded.
    assert Endpoint.from_url("redis://u%40x:p%3Aw@h/0").setup_commands() == [
        resp_command(b"AUTH", b"u@x", b"p:w")
    ]


def test_resp_command_encoding() -> None:
    assert resp_command(b"GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert resp_command(b"SET", b"", b"\r\n") == b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\n\r\n\r\n"
    assert resp_command() == b"*0\r\n"
