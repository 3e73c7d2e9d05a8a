"""Idle actors hold no task: the worker pool, lingering workers, task-less passivation, GC cost.

Run on asyncio, asyncio + uvloop and trio (see conftest.py).
"""

from __future__ import annotations

import gc
import math
import random

import anyio
import anyio.lowlevel
import pytest

from actors.runtime import ActorRegistry, Overloaded, RegistryClosed

from .helpers import (
    Add,
    Boom,
    Crash,
    Get,
    Msg,
    Wait,
    World,
    ask_started,
    task_count,
    wait_until,
)

pytestmark = pytest.mark.anyio
#: About the worker pool itself: not repeated with inline handling (see conftest.py).
WORKER_POOL_TESTS = True


async def test_idle_actor_has_no_task_after_linger() -> None:
    world = World()
    async with world.registry(linger_s=0.05) as reg:
        baseline = task_count()  # the registry's own: reaper, timer, linger sweeper
        for key in ("a", "b", "c"):
            assert await reg.ask(key, Add(1)) == 1
        # The reply is sent after the actor was put back: no slot, no mailbox, no task of its
        # own. Only the worker that served it is still there, lingering.
        assert reg._active == {}
        assert list(reg._idle) == ["a", "b", "c"]
        assert task_count() == baseline + 1
        await wait_until(lambda: task_count() == baseline)
        assert reg.resident == 3
        assert world.count("passivate") == 0


async def test_message_to_taskless_resident_actor_is_handled_without_reactivation() -> None:
    world = World()
    async with world.registry(linger_s=0.02) as reg:
        baseline = task_count()
        assert await reg.ask("k", Add(5)) == 5
        await wait_until(lambda: task_count() == baseline)  # no task left at all
        assert await reg.ask("k", Add(1)) == 6  # same instance, state kept
        assert await reg.ask("k", Get()) == 6
        assert world.count("activate") == 1
        assert reg.stats()["activations"] == 1
        assert {i for w, _, i in world.log if w == "handle"} == {0}


async def test_linger_keeps_the_same_worker_for_bursts() -> None:
    world = World()
    async with world.registry(linger_s=10) as reg:
        baseline = task_count()
        for i in range(20):  # gaps shorter than the linger: the same worker serves all
            await reg.ask(f"k{i % 3}", Add(1))
            await anyio.sleep(0.002)
        assert len(set(world.tasks)) == 1
        assert task_count() == baseline + 1
    assert world.count("activate") == 3


async def test_zero_linger_ends_the_worker_at_once() -> None:
    world = World()
    async with world.registry(linger_s=0) as reg:
        baseline = task_count()
        assert await reg.ask("k", Add(1)) == 1
        await wait_until(lambda: task_count() == baseline)
        assert await reg.ask("k", Add(1)) == 2
        assert world.count("activate") == 1


async def test_linger_s_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        World().registry(linger_s=-1)
    with pytest.raises(ValueError):
        World().registry(linger_s=math.nan)


async def test_blocked_handlers_never_hold_up_other_keys() -> None:
    """Workers are added while every other one is busy: 100 handlers blocked at once."""
    world = World()
    gate = anyio.Event()
    entered = [anyio.Event() for _ in range(100)]
    out: list[object] = []
    async with world.registry() as reg:
        baseline = task_count()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for i, ev in enumerate(entered):
                    await tg.start(ask_started, reg, f"k{i}", Wait(ev, gate), out)
                for ev in entered:
                    await ev.wait()  # all 100 inside handle at the same time
                assert task_count() >= baseline + 100
                gate.set()
    assert out == [0] * 100
    assert world.overlaps == 0


async def test_passivation_of_taskless_actor_calls_on_passivate_once() -> None:
    world = World()
    async with world.registry(idle_timeout_s=0.02, linger_s=0.01) as reg:
        baseline = task_count()
        for key in ("a", "b"):
            await reg.ask(key, Add(1))
        await wait_until(lambda: reg.resident == 0)
        assert world.count("passivate", "a") == 1
        assert world.count("passivate", "b") == 1
        assert reg.stats()["passivations"] == 2
        await wait_until(lambda: task_count() == baseline)  # passivation tasks are gone too
        assert await reg.ask("a", Get()) == 1  # reactivated from the store
    assert world.overlaps == 0


async def test_message_to_queued_taskless_actor_during_on_passivate() -> None:
    """The idle actor's on_passivate runs in a passivation task; a message waits for it and
    a fresh instance handles it, never overlapping the old one."""
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    world.passivate_gate["k"] = (entered, gate)
    async with world.registry(idle_timeout_s=0.02, linger_s=0.01) as reg:
        assert await reg.ask("k", Add(4)) == 4
        await entered.wait()
        out: list[object] = []
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Add(1), out)
            await anyio.sleep(0.02)
            assert out == [None]
            del world.passivate_gate["k"]
            gate.set()
        assert out == [5]
    assert world.overlaps == 0
    assert world.count("passivate", "k") == 2  # the first instance, then the fresh one
    assert world.count("activate", "k") == 2


async def test_passivation_races_handle_without_overlap_or_loss() -> None:
    """Idle passivation (task-less actors), LRU eviction and messages racing on a few keys."""
    world = World()
    rng = random.Random(99)
    keys = [f"k{i}" for i in range(8)]
    expected = dict.fromkeys(keys, 0)
    async with world.registry(max_resident=5, idle_timeout_s=0.01, linger_s=0.005) as reg:

        async def client() -> None:
            for _ in range(80):
                key = rng.choice(keys)
                try:
                    await reg.ask(key, Add(1))
                except RegistryClosed:  # pragma: no cover - not expected before exit
                    raise
                except Exception:  # Overloaded: refused, not queued
                    continue
                expected[key] += 1
                await anyio.sleep(rng.random() * 0.01)

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(client)
    assert world.overlaps == 0
    assert {k: world.store.get(k, 0) for k in keys} == expected
    stats = reg.stats()
    assert stats["passivations"] == stats["activations"]  # each instance exactly once
    assert stats["passivations"] > len(keys)  # the idle timeout did passivate actors
    per_instance: dict[int, int] = {}
    for what, _, instance in world.log:
        if what == "passivate":
            per_instance[instance] = per_instance.get(instance, 0) + 1
    assert set(per_instance.values()) == {1}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_chaos_keeps_every_invariant(seed: int) -> None:
    """Crashes, timeouts, cancelled askers, idle passivation and LRU eviction at once, with
    activation and passivation that suspend: no overlap, no instance used after on_passivate or
    after a crash, on_passivate at most once per instance, every ask answered."""
    world = World()
    for i in range(6):
        done = anyio.Event()
        done.set()
        world.passivate_gate[f"k{i}"] = (anyio.Event(), done)  # on_passivate suspends once
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(6)]
    answered = 0
    async with world.registry(
        max_resident=4, idle_timeout_s=0.01, linger_s=0.005, max_restarts=1000
    ) as reg:

        async def client() -> None:
            nonlocal answered
            for _ in range(60):
                key = rng.choice(keys)
                roll = rng.random()
                msg: Msg = Crash() if roll < 0.1 else Add(1)
                try:
                    if roll > 0.9:
                        with anyio.move_on_after(rng.random() * 0.002):
                            await reg.ask(key, msg)
                    else:
                        await reg.ask(
                            key, msg, timeout=rng.random() * 0.004 if roll > 0.8 else None
                        )
                except (Boom, TimeoutError, Overloaded):
                    pass
                answered += 1
                if rng.random() < 0.5:
                    await anyio.sleep(rng.random() * 0.015)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(client)
    assert answered == 8 * 60
    assert world.overlaps == 0
    finished: set[int] = set()  # passivated or crashed instances
    passivated = 0
    handled = iter(world.handled)
    for what, _, instance in world.log:
        assert instance not in finished, (what, instance)
        if what == "passivate":
            passivated += 1
            finished.add(instance)
        elif what == "handle" and isinstance(next(handled)[1], Crash):
            finished.add(instance)
    stats = reg.stats()
    assert stats["passivations"] == passivated
    assert stats["passivations"] + stats["crashes"] == stats["activations"]
    assert stats["evictions"] > 0 and stats["crashes"] > 0
    assert reg.resident == 0


async def test_shutdown_under_outer_cancellation_passivates_idle_actors_shielded() -> None:
    """on_passivate that awaits still completes for idle (task-less) actors."""
    world = World()
    for key in ("a", "b"):
        ev = anyio.Event()
        ev.set()
        world.passivate_gate[key] = (anyio.Event(), ev)  # on_passivate waits: a checkpoint
    with anyio.CancelScope() as scope:
        async with world.registry() as reg:
            await reg.ask("a", Add(1))
            await reg.ask("b", Add(1))
            scope.cancel()
            await anyio.sleep(1)
    assert scope.cancelled_caught
    assert world.count("passivate") == 2
    assert reg.resident == 0


async def test_shutdown_passivates_many_idle_actors_with_a_few_tasks() -> None:
    world = World()
    peak = 0

    async def watch(baseline: int) -> None:
        nonlocal peak
        while True:
            peak = max(peak, task_count() - baseline)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as outer:
        async with world.registry() as reg:
            baseline = task_count()
            for i in range(300):
                await reg.ask(f"k{i}", Add(1))
            outer.start_soon(watch, baseline)
            await anyio.lowlevel.checkpoint()
        outer.cancel_scope.cancel()
    assert world.count("passivate") == 300
    assert reg.resident == 0
    assert 0 < peak <= 32 + 2  # passivation tasks + the lingering worker + the watcher


class Tiny:
    """An actor that is a single GC-tracked object."""

    __slots__ = ("n",)

    def __init__(self, key: int) -> None:
        self.n = 0

    async def on_activate(self) -> None:
        pass

    async def handle(self, msg: int) -> int:
        self.n += msg
        return self.n

    async def on_passivate(self) -> None:
        pass


async def test_idle_actor_is_a_single_gc_tracked_object() -> None:
    n = 2000
    reg: ActorRegistry[int, int, int] = ActorRegistry(
        Tiny, name="gc", linger_s=0, max_resident=10 * n
    )
    async with reg:
        await reg.ask(-1, 1)  # warm up (first-use allocations)
        gc.collect()
        before = len(gc.get_objects())
        for key in range(n):
            await reg.ask(key, 1)
        await anyio.sleep(0.01)
        gc.collect()
        per_actor = (len(gc.get_objects()) - before) / n
        assert reg.resident == n + 1
        assert per_actor < 1.05, per_actor  # the instance; the runtime adds nothing tracked


async def test_stats_keys_unchanged() -> None:
    world = World()
    async with world.registry(linger_s=0.01) as reg:
        await reg.ask("k", Add(1))
        stats = reg.stats()
    assert list(stats) == [
        "resident",
        "activations",
        "activation_failures",
        "passivations",
        "passivation_failures",
        "evictions",
        "restarts",
        "crashes",
        "stops",
        "messages",
        "mailbox_full",
        "overloaded",
        "timeouts",
        "abandoned",
    ]
