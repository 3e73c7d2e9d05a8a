"""Native pytest-trio tests: the runtime under trio directly, time driven by trio's MockClock."""

from __future__ import annotations

import anyio
import pytest
import trio
import trio.testing

from actors.runtime import ActorUnavailable

from .helpers import Add, Boom, Crash, Get, Wait, World, ask_started, task_count


@pytest.mark.trio
async def test_default_idle_timeout_with_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    world = World()
    async with world.registry() as reg:  # idle_timeout_s=300, reaper every 75 s
        await reg.ask("k", Add(1))
        await trio.sleep(299)
        assert reg.resident == 1
        await trio.sleep(1 + 300 / 4 + 1)  # at most idle_timeout + one reaper interval
        assert reg.resident == 0
        assert world.count("passivate", "k") == 1
        assert await reg.ask("k", Get()) == 1


@pytest.mark.trio
async def test_restart_window_with_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    world = World()
    async with world.registry(max_restarts=1, restart_window_s=60) as reg:
        await reg.ask("k", Add(3))
        for _ in range(3):  # one crash a minute: always restarted
            with pytest.raises(Boom):
                await reg.ask("k", Crash())
            await trio.sleep(61)
        assert reg.stats()["stops"] == 0
        with pytest.raises(Boom):
            await reg.ask("k", Crash())
        await trio.sleep(30)
        with pytest.raises(Boom):  # second crash inside 60 s: stopped
            await reg.ask("k", Crash())
        assert reg.stats()["stops"] == 1
        assert reg.resident == 0
        assert await reg.ask("k", Get()) == 3  # fresh activation from the store


@pytest.mark.trio
async def test_many_keys_in_a_nursery() -> None:
    world = World(fail_activation={"k13"})
    results: dict[str, object] = {}
    async with world.registry(mailbox_size=8) as reg:

        async def client(key: str) -> None:
            try:
                for _ in range(10):
                    results[key] = await reg.ask(key, Add(1))
            except ActorUnavailable as exc:
                results[key] = exc

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(client, f"k{i}")
        assert reg.resident == 99
    assert world.overlaps == 0
    assert world.count("passivate") == 99
    assert isinstance(results.pop("k13"), ActorUnavailable)
    assert set(results.values()) == {10}


@pytest.mark.trio
async def test_timeout_precision_with_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg, trio.open_nursery() as nursery:
        await nursery.start(ask_started, reg, "k", Wait(entered, gate), out)
        await entered.wait()
        for timeout in (2.0, 0.5, 10.0):
            start = trio.current_time()
            with pytest.raises(TimeoutError):
                await reg.ask("k", Get(), timeout=timeout)
            late = trio.current_time() - start - timeout
            assert 0 <= late <= 0.005 + 1e-9
        gate.set()
    assert out == [0]
    assert reg.stats()["timeouts"] == 3
    assert reg.stats()["abandoned"] == 3


@pytest.mark.workers_only  # about the worker pool
@pytest.mark.trio
async def test_worker_linger_with_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    world = World()
    async with world.registry(linger_s=2.0) as reg:  # sweeper every 1 s: lingers 1..2 s
        baseline = task_count()
        await reg.ask("k", Add(1))
        await trio.sleep(0.9)
        assert task_count() == baseline + 1  # the worker lingers
        await reg.ask("k", Add(1))  # served by the same worker: its linger starts again
        await trio.sleep(0.9)
        assert task_count() == baseline + 1
        await trio.sleep(1.2)
        assert task_count() == baseline  # idle for 2.1 s: ended
        assert reg.resident == 1
        assert await reg.ask("k", Get()) == 2  # a new worker; the instance was kept
    assert world.count("activate") == 1
