"""Shared fixtures: a real redis-server for the whole session, flushed per test; the
hypothesis profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from gateway.store.redis_server import RedisServer

# Property tests count examples, not milliseconds: a loaded CI machine (or a benchmark running
# beside the suite) must not turn a slow example into a failure.
settings.register_profile("citycard", deadline=None)
settings.load_profile("citycard")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, emptied before each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
