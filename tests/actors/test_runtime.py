"""ActorRegistry semantics, on asyncio, asyncio + uvloop and trio (see conftest.py)."""

from __future__ import annotations

import random
from functools import partial

import anyio
import pytest

from actors.runtime import (
    ActorRegistry,
    ActorUnavailable,
    MailboxFull,
    Overloaded,
    RegistryClosed,
)

from .helpers import Add, Boom, Crash, Get, LoadFailed, Msg, Wait, World, ask_started, wait_until

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------- activation


async def test_activates_once_per_key_under_concurrent_first_asks() -> None:
    world = World()
    results: list[int] = []
    async with world.registry() as reg:

        async def one() -> None:
            results.append(await reg.ask("card-1", Add(1)))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
        assert reg.resident == 1
        assert reg.stats()["activations"] == 1
    assert world.count("activate") == 1
    assert sorted(results) == list(range(1, 51))
    assert world.store["card-1"] == 50


async def test_activation_runs_before_first_message_and_loads_state() -> None:
    world = World(store={"c": 41})
    async with world.registry() as reg:
        assert await reg.ask("c", Add(1)) == 42
    assert [w for w, _, _ in world.log] == ["activate", "handle", "passivate"]


async def test_on_activate_failure_fails_every_queued_asker_and_removes_entry() -> None:
    world = World(fail_activation={"bad"}, activate_gate={"bad": anyio.Event()})
    out: list[object] = []
    async with world.registry() as reg:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                await tg.start(ask_started, reg, "bad", Get(), out)
            world.activate_gate.pop("bad").set()
        assert len(out) == 3
        for err in out:
            assert isinstance(err, ActorUnavailable)
            assert isinstance(err.__cause__, LoadFailed)
        assert reg.resident == 0
        assert world.count("handle") == 0
        assert reg.stats()["activation_failures"] == 1
        # the next ask tries a fresh activation
        world.fail_activation.clear()
        assert await reg.ask("bad", Add(2)) == 2
        assert world.count("activate", "bad") == 2


async def test_factory_failure_is_an_activation_failure() -> None:
    def factory(key: str) -> object:
        raise LoadFailed(key)

    reg: ActorRegistry[str, Msg, int] = ActorRegistry(factory, name="t")  # type: ignore[arg-type]
    async with reg:
        with pytest.raises(ActorUnavailable) as info:
            await reg.ask("x", Get())
        assert isinstance(info.value.__cause__, LoadFailed)
        assert reg.resident == 0


# ---------------------------------------------------------------- ordering and concurrency


async def test_fifo_one_message_at_a_time() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg, anyio.create_task_group() as tg:
        await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
        await entered.wait()
        for i in range(1, 21):
            await tg.start(ask_started, reg, "k", Add(i), out)
        gate.set()
    assert world.overlaps == 0
    adds = [m.n for k, m in world.handled if isinstance(m, Add)]
    assert adds == list(range(1, 21))
    # replies in mailbox order: running totals
    assert out == [0, *[i * (i + 1) // 2 for i in range(1, 21)]]


async def test_different_keys_run_concurrently() -> None:
    world = World()
    a_in, b_in, gate = anyio.Event(), anyio.Event(), anyio.Event()
    async with world.registry() as reg:
        out: list[object] = []
        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                await tg.start(ask_started, reg, "a", Wait(a_in, gate), out)
                await tg.start(ask_started, reg, "b", Wait(b_in, gate), out)
                await a_in.wait()
                await b_in.wait()  # both handlers are inside handle() at once
                gate.set()
        assert out == [0, 0]


# ---------------------------------------------------------------- backpressure and timeouts


async def test_mailbox_full_raised_immediately_and_message_not_queued() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry(mailbox_size=2) as reg:
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
            await entered.wait()  # in progress: not counted in the mailbox
            await tg.start(ask_started, reg, "k", Add(1), out)
            await tg.start(ask_started, reg, "k", Add(2), out)
            with pytest.raises(MailboxFull):
                await reg.ask("k", Add(100))
            gate.set()
        assert out == [0, 1, 3]
        assert reg.stats()["mailbox_full"] == 1
        assert world.store["k"] == 3


async def test_ask_timeout_raises_builtin_timeout_error_and_skips_unstarted_message() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg:
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
            await entered.wait()
            with pytest.raises(TimeoutError):
                await reg.ask("k", Add(5), timeout=0.02)
            gate.set()
        assert await reg.ask("k", Get()) == 0  # the timed-out Add never ran
        stats = reg.stats()
        assert stats["timeouts"] == 1
        assert stats["abandoned"] == 1


async def test_short_timeout_fires_while_a_longer_one_is_pending() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg, anyio.create_task_group() as tg:
        await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
        await entered.wait()
        await tg.start(partial(ask_started, ask_timeout=30), reg, "k", Add(1), out)
        with anyio.fail_after(1), pytest.raises(TimeoutError):
            await reg.ask("k", Add(2), timeout=0.05)
        gate.set()
    assert out == [0, 1]  # the long timeout did not fire; the timed-out Add(2) was skipped
    assert world.store["k"] == 1


# Inline, the handler runs in the asker's task and the ask's timeout does not bound it.
@pytest.mark.workers_only
async def test_timed_out_message_already_started_still_completes() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    async with world.registry() as reg:
        with pytest.raises(TimeoutError):
            await reg.ask("k", Wait(entered, gate), timeout=0.02)
        assert entered.is_set()
        gate.set()
        assert await reg.ask("k", Add(1)) == 1
    assert world.overlaps == 0


async def test_cancelled_asker_abandons_queued_message() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg:
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
            await entered.wait()
            with anyio.move_on_after(0.01):
                await reg.ask("k", Add(7))
            gate.set()
        assert await reg.ask("k", Get()) == 0
        assert reg.stats()["abandoned"] == 1


async def test_overloaded_when_max_resident_reached_and_none_idle() -> None:
    world = World()
    gate = anyio.Event()
    out: list[object] = []
    async with world.registry(max_resident=2) as reg:
        async with anyio.create_task_group() as tg:
            for key in ("a", "b"):
                entered = anyio.Event()
                await tg.start(ask_started, reg, key, Wait(entered, gate), out)
                await entered.wait()
            with pytest.raises(Overloaded):
                await reg.ask("c", Get())
            with pytest.raises(MailboxFull):  # Overloaded is a MailboxFull
                await reg.ask("c", Get())
            gate.set()
        assert reg.stats()["overloaded"] == 2
        assert await reg.ask("c", Add(1)) == 1  # now a and b are idle: one is evicted


# ---------------------------------------------------------------- supervision


async def test_crash_gives_caller_the_exception_and_restart_reloads_state() -> None:
    world = World()
    async with world.registry() as reg:
        assert await reg.ask("k", Add(5)) == 5
        with pytest.raises(Boom):
            await reg.ask("k", Crash())  # leaves value = -1000 in the dead instance
        assert await reg.ask("k", Get()) == 5  # fresh instance, reloaded from the store
        stats = reg.stats()
        assert (stats["crashes"], stats["restarts"], stats["activations"]) == (1, 1, 2)
    # on_passivate only for the second instance, never for the crashed one
    assert [(w, i) for w, _, i in world.log if w != "handle"] == [
        ("activate", 0),
        ("activate", 1),
        ("passivate", 1),
    ]


async def test_crash_does_not_fail_queued_messages() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg, anyio.create_task_group() as tg:
        await tg.start(ask_started, reg, "k", Wait(entered, gate, crash=True), out)
        await entered.wait()
        await tg.start(ask_started, reg, "k", Add(3), out)
        gate.set()
    assert isinstance(out[0], Boom)
    assert out[1] == 3


async def test_too_many_restarts_stops_actor_then_fresh_activation() -> None:
    world = World()
    async with world.registry(max_restarts=2, restart_window_s=60) as reg:
        for _ in range(2):
            with pytest.raises(Boom):
                await reg.ask("k", Crash())
        # third crash within the window: stopped; the queued asker gets ActorUnavailable
        entered, gate = anyio.Event(), anyio.Event()
        out: list[object] = []
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Wait(entered, gate, crash=True), out)
            await entered.wait()
            await tg.start(ask_started, reg, "k", Add(1), out)
            gate.set()
        assert isinstance(out[0], Boom)
        assert isinstance(out[1], ActorUnavailable)
        assert isinstance(out[1].__cause__, Boom)
        assert reg.resident == 0
        stats = reg.stats()
        assert (stats["crashes"], stats["restarts"], stats["stops"]) == (3, 2, 1)
        # a later ask activates afresh, with a fresh crash budget
        assert await reg.ask("k", Add(1)) == 1
        with pytest.raises(Boom):
            await reg.ask("k", Crash())
        assert await reg.ask("k", Get()) == 1
    assert world.count("passivate") == 1


async def test_crashes_outside_the_window_do_not_stop() -> None:
    world = World()
    async with world.registry(max_restarts=1, restart_window_s=0.03) as reg:
        for _ in range(4):
            with pytest.raises(Boom):
                await reg.ask("k", Crash())
            await anyio.sleep(0.05)
        assert reg.stats()["stops"] == 0
        assert await reg.ask("k", Get()) == 0


# ---------------------------------------------------------------- passivation


async def test_idle_actor_is_passivated() -> None:
    world = World()
    async with world.registry(idle_timeout_s=0.04) as reg:
        await reg.ask("k", Add(1))
        assert reg.resident == 1
        await wait_until(lambda: reg.resident == 0)
        assert world.count("passivate", "k") == 1
        assert reg.stats()["passivations"] == 1
        assert await reg.ask("k", Get()) == 1  # reactivated from the store
        assert world.count("activate", "k") == 2


async def test_busy_actor_is_not_passivated() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry(idle_timeout_s=0.02) as reg, anyio.create_task_group() as tg:
        await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
        await anyio.sleep(0.1)
        assert reg.resident == 1
        assert world.count("passivate") == 0
        gate.set()


async def test_lru_actor_is_passivated_at_max_resident() -> None:
    world = World()
    async with world.registry(max_resident=3) as reg:
        for key in ("a", "b", "c"):
            await reg.ask(key, Add(1))
        await reg.ask("a", Get())  # b is now the least recently used
        await reg.ask("d", Add(1))
        await wait_until(lambda: reg.resident == 3)
        assert world.count("passivate") == 1
        assert world.count("passivate", "b") == 1
        assert reg.stats()["evictions"] == 1
        assert await reg.ask("b", Get()) == 1  # back from the store; evicts c
        await wait_until(lambda: world.count("passivate", "c") == 1)
        assert reg.resident == 3


async def test_message_during_on_passivate_waits_then_activates_fresh_instance() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    world.passivate_gate["k"] = (entered, gate)
    async with world.registry(idle_timeout_s=0.02) as reg:
        assert await reg.ask("k", Add(4)) == 4
        await entered.wait()  # the reaper started passivating k
        out: list[object] = []
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Add(1), out)
            await anyio.sleep(0.01)
            assert out == [None]  # waits for on_passivate; not handled by the old instance
            del world.passivate_gate["k"]
            gate.set()
        assert out == [5]
        assert world.overlaps == 0
        assert [(w, i) for w, _, i in world.log][:4] == [
            ("activate", 0),
            ("handle", 0),
            ("passivate", 0),
            ("activate", 1),
        ]


async def test_message_after_stop_request_aborts_passivation() -> None:
    world = World()
    async with world.registry() as reg:
        await reg.ask("k", Add(1))
        # What the reaper / LRU eviction do to an idle actor, then an ask before the
        # passivation task takes it.
        reg._stop_idle("k")
        assert reg._live == 0
        assert await reg.ask("k", Add(1)) == 2
        await anyio.sleep(0.01)  # let the passivation task run (nothing left for it)
        assert world.count("passivate") == 0
        assert world.count("activate") == 1
        assert reg.resident == 1
        assert reg._live == 1


async def test_message_after_stop_request_on_busy_actor_aborts_passivation() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry() as reg:
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
            await entered.wait()
            reg._request_stop(reg._active["k"])  # passivate once the mailbox is empty...
            await tg.start(ask_started, reg, "k", Add(2), out)  # ...but a message came
            gate.set()
        assert out == [0, 2]
        assert world.count("passivate") == 0
        assert world.count("activate") == 1
        assert reg.resident == 1
        assert reg._live == 1


async def test_eviction_race_loses_no_message() -> None:
    """Asks for freshly evicted keys, racing their passivation, on a tiny registry."""
    world = World()
    rng = random.Random(1234)
    keys = [f"k{i}" for i in range(6)]
    expected: dict[str, int] = dict.fromkeys(keys, 0)
    errors: list[BaseException] = []
    async with world.registry(max_resident=3, idle_timeout_s=0.005) as reg:

        async def client(n: int) -> None:
            for _ in range(60):
                key = rng.choice(keys)
                try:
                    await reg.ask(key, Add(1))
                except Overloaded:
                    continue  # refused, not queued
                except BaseException as exc:  # pragma: no cover - a failure
                    errors.append(exc)
                    raise
                expected[key] += 1
                if rng.random() < 0.3:
                    await anyio.sleep(rng.random() * 0.004)

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(client, n)
    assert errors == []
    assert world.overlaps == 0
    assert {k: world.store.get(k, 0) for k in keys} == expected
    stats = reg.stats()
    assert stats["messages"] == sum(expected.values())
    assert stats["passivations"] == stats["activations"]
    assert stats["evictions"] > 0


# ---------------------------------------------------------------- shutdown


async def test_shutdown_drains_mailboxes_and_passivates_everyone() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with anyio.create_task_group() as tg, world.registry() as reg:
        for key in ("a", "b", "c"):
            await reg.ask(key, Add(1))
        await tg.start(ask_started, reg, "d", Wait(entered, gate), out)
        await entered.wait()
        await tg.start(ask_started, reg, "d", Add(2), out)
        gate.set()
    assert out == [0, 2]
    assert sorted(k for w, k, _ in world.log if w == "passivate") == ["a", "b", "c", "d"]
    assert reg.resident == 0
    with pytest.raises(RegistryClosed):
        await reg.ask("a", Get())


async def test_shutdown_under_outer_cancellation_still_passivates() -> None:
    world = World()
    with anyio.CancelScope() as scope:
        async with world.registry() as reg:
            await reg.ask("a", Add(1))
            await reg.ask("b", Add(1))
            scope.cancel()
            await anyio.sleep(1)
    assert scope.cancelled_caught
    assert world.count("passivate") == 2


# Inline, a stuck handler runs in its asker's task: the registry's shutdown cannot cancel it.
@pytest.mark.workers_only
async def test_shutdown_timeout_cancels_stuck_handler_and_fails_its_askers() -> None:
    world = World()
    entered, never = anyio.Event(), anyio.Event()
    out: list[object] = []
    with anyio.fail_after(2):
        async with (
            anyio.create_task_group() as tg,
            world.registry(shutdown_timeout_s=0.05) as reg,
        ):
            await tg.start(ask_started, reg, "k", Wait(entered, never), out)
            await entered.wait()
            await tg.start(ask_started, reg, "k", Get(), out)
    assert len(out) == 2
    assert all(isinstance(e, RegistryClosed) for e in out)
    assert reg.resident == 0


async def test_ask_before_enter_is_refused() -> None:
    reg = World().registry()
    with pytest.raises(RegistryClosed):
        await reg.ask("k", Get())


# ---------------------------------------------------------------- stats


async def test_stats_counters() -> None:
    world = World(fail_activation={"bad"})
    async with world.registry(mailbox_size=1, idle_timeout_s=0.2) as reg:
        await reg.ask("a", Add(1))
        await reg.ask("a", Add(1))
        with pytest.raises(Boom):
            await reg.ask("a", Crash())
        with pytest.raises(ActorUnavailable):
            await reg.ask("bad", Get())
        entered, gate = anyio.Event(), anyio.Event()
        out: list[object] = []
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "b", Wait(entered, gate), out)
            await entered.wait()
            await tg.start(ask_started, reg, "b", Get(), out)
            with pytest.raises(MailboxFull):
                await reg.ask("b", Get())
            gate.set()
        await wait_until(lambda: reg.resident == 0)
        stats = reg.stats()
    assert stats == {
        "resident": 0,
        "activations": 2,  # a, b (a's restart is lazy: no message came after the crash)
        "activation_failures": 1,
        "passivations": 1,  # b; a had no live instance after its crash
        "passivation_failures": 0,
        "evictions": 0,
        "restarts": 1,
        "crashes": 1,
        "stops": 0,
        "messages": 5,
        "mailbox_full": 1,
        "overloaded": 0,
        "timeouts": 0,
        "abandoned": 0,
    }


async def test_passivation_failure_is_counted_not_raised() -> None:
    class Bad:
        async def on_activate(self) -> None:
            pass

        async def handle(self, msg: Msg) -> int:
            return 1

        async def on_passivate(self) -> None:
            raise RuntimeError("flush failed")

    reg: ActorRegistry[str, Msg, int] = ActorRegistry(lambda k: Bad(), name="t")
    async with reg:
        await reg.ask("k", Get())
    assert reg.stats()["passivation_failures"] == 1
    assert reg.stats()["passivations"] == 1


# ---------------------------------------------------------------- inline handling


async def test_inline_handles_an_idle_actor_in_the_askers_task() -> None:
    world = World()
    async with world.registry(inline=True) as reg:
        await reg.ask("k", Add(1))  # activation goes through a worker
        world.tasks.clear()
        me = anyio.get_current_task().id
        assert await reg.ask("k", Add(1)) == 2
        assert world.tasks == [me]


async def test_inline_asks_meanwhile_queue_and_are_served_in_order_after_it() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    out: list[object] = []
    async with world.registry(inline=True) as reg:
        await reg.ask("k", Add(1))
        async with anyio.create_task_group() as tg:
            await tg.start(ask_started, reg, "k", Wait(entered, gate), out)
            await entered.wait()
            for _ in range(3):
                await tg.start(ask_started, reg, "k", Add(10), out)
            gate.set()
        assert out == [1, 11, 21, 31]
        assert world.overlaps == 0


async def test_inline_cancelled_asker_drops_the_instance_without_passivating() -> None:
    world = World()
    entered, gate = anyio.Event(), anyio.Event()
    async with world.registry(inline=True) as reg:
        await reg.ask("k", Add(5))
        with anyio.move_on_after(0.05):
            await reg.ask("k", Wait(entered, gate))
        assert entered.is_set()
        # A fresh instance reloads the durable value; the interrupted one was not passivated.
        assert await reg.ask("k", Get()) == 5
        assert world.count("activate", "k") == 2
        assert world.count("passivate", "k") == 0


async def test_inline_crash_is_supervised_like_a_worker_crash() -> None:
    world = World()
    async with world.registry(inline=True, max_restarts=1) as reg:
        await reg.ask("k", Add(3))
        with pytest.raises(Boom):
            await reg.ask("k", Crash())
        assert await reg.ask("k", Get()) == 3  # restarted: state reloaded from the "store"
        with pytest.raises(Boom):
            await reg.ask("k", Crash())
        stats = reg.stats()
        assert (stats["crashes"], stats["restarts"], stats["stops"]) == (2, 1, 1)
        assert await reg.ask("k", Get()) == 3  # a later ask activates it afresh
