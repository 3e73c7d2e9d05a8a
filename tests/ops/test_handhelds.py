"""Enrolment codes for handheld apps, against a real Redis: one code enrolls one handheld with
the key the app made, once; an unknown, expired or spent code and a malformed key are refused;
every step is in the audit log; the CLI prints a code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from gateway.store.redis_store import RedisStore
from ops.control import audit
from ops.control.handhelds import EnrolRefused, create_code, redeem

pytestmark = pytest.mark.anyio
KEY = "ab" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def env(redis_url: str) -> AsyncIterator[tuple[Redis, RedisStore]]:
    client = Redis.from_url(redis_url)
    async with RedisStore.connect(redis_url) as store:
        yield client, store
    await client.aclose()


async def test_a_code_enrolls_one_handheld_once(env: tuple[Redis, RedisStore]) -> None:
    redis, store = env
    made = await create_code(redis, kind="taxi", operator="citytaxi", network="TAXI")
    assert len(made.code) == 19 and made.terminal_id.startswith("taxi-citytaxi-")
    assert made.code not in str(await redis.keys("*"))  # kept only as its hash
    got = await redeem(redis, store, made.code.lower(), KEY)
    assert got == {"terminal_id": made.terminal_id, "kind": "taxi", "operator": "citytaxi"}
    rec = await store.get_terminal(made.terminal_id)
    assert rec is not None and (rec.public_key_hex, rec.network) == (KEY, "TAXI")
    with pytest.raises(EnrolRefused, match="already used"):
        await redeem(redis, store, made.code, KEY)
    log = [orjson.loads(line) for line in (await audit.export(redis, "jsonl")).splitlines()]
    assert [(e["action"], e["result"]) for e in log] == [
        ("enrol_code", "done"), ("enrol_handheld", "done"),
        ("enrol_handheld", "refused: bad_code")]


async def test_refusals(env: tuple[Redis, RedisStore]) -> None:
    redis, store = env
    with pytest.raises(EnrolRefused) as bad_kind:
        await create_code(redis, kind="gate", operator="metro")
    assert bad_kind.value.code == "bad_kind"
    made = await create_code(redis, kind="taxi", operator="citytaxi")
    for key in ("AB" * 32, "ab" * 31, 5):
        with pytest.raises(EnrolRefused) as bad:
            await redeem(redis, store, made.code, key)  # type: ignore[arg-type]
        assert bad.value.code == "bad_key"
    expired = await create_code(redis, kind="taxi", operator="citytaxi", ttl_s=1)
    await redis.set("cc:enrol:x", b"")  # unrelated junk does not matter
    import anyio

    await anyio.sleep(1.2)
    with pytest.raises(EnrolRefused, match="expired"):
        await redeem(redis, store, expired.code, KEY)
    # The refusals above did not spend the good code.
    assert (await redeem(redis, store, made.code, KEY))["kind"] == "taxi"


def test_cli_prints_a_code(redis_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ops.cli", "keys", "enroll-handheld", "--kind", "taxi",
         "--operator", "citytaxi", "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("code=") and "terminal_id=taxi-citytaxi-" in run.stdout
