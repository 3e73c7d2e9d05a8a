"""The embedded Redis launcher: a server left running on a data folder (its gateway was killed
with SIGKILL) is stopped before a new one starts there, so two servers never share an AOF."""

from __future__ import annotations

from pathlib import Path

import redis

from gateway.redis_server import RedisServer


def test_stale_server_on_the_same_folder_is_stopped_first(tmp_path: Path) -> None:
    first = RedisServer(tmp_path / "redis").start()
    assert first._proc is not None
    stale = first._proc
    client = redis.Redis.from_url(first.url)
    client.set("k", "kept")
    client.close()
    first._proc = None  # forgotten, as by a gateway killed with SIGKILL
    second = RedisServer(tmp_path / "redis").start()
    try:
        assert stale.wait(timeout=10) == 0  # shut down cleanly (SIGTERM), not killed
        client = redis.Redis.from_url(second.url)
        assert client.get("k") == b"kept"  # the AOF was finished and is read by the new one
        client.close()
    finally:
        second.stop()


def test_local_url_is_a_private_unix_socket_to_the_same_data(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path / "r") as server:
        assert server.local_url.startswith("unix://")
        assert (server.socket_path.stat().st_mode & 0o777) == 0o700
        over_tcp = redis.Redis.from_url(server.url)
        over_unix = redis.Redis.from_url(server.local_url)
        try:
            over_tcp.set("k", "v")
            assert over_unix.get("k") == b"v"
        finally:
            over_tcp.close()
            over_unix.close()


def test_too_long_a_socket_path_falls_back_to_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    with RedisServer(data_dir=deep) as server:
        assert server.local_url == server.url
        client = redis.Redis.from_url(server.local_url)
        try:
            assert client.ping()
        finally:
            client.close()
