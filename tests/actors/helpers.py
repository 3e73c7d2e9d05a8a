"""A test actor: a durable counter whose every step is recorded, with hooks to block or fail."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
import anyio.lowlevel

from actors.runtime import ActorRegistry


class Boom(Exception):
    """What a crashing handler raises."""


class LoadFailed(Exception):
    """What a failing on_activate raises."""


@dataclass(frozen=True)
class Add:
    n: int


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class Crash:
    """Corrupt the in-memory value, then raise."""


@dataclass(frozen=True)
class Wait:
    """Signal `entered`, wait for `gate`, then return the value (or raise Boom if crash)."""

    entered: anyio.Event
    gate: anyio.Event
    crash: bool = False


Msg = Add | Get | Crash | Wait


@dataclass
class World:
    """Shared between the test and every actor instance: the "store" and an event log."""

    store: dict[str, int] = field(default_factory=dict)
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (what, key, instance)
    fail_activation: set[str] = field(default_factory=set)
    activate_gate: dict[str, anyio.Event] = field(default_factory=dict)
    passivate_gate: dict[str, tuple[anyio.Event, anyio.Event]] = field(default_factory=dict)
    inside: set[str] = field(default_factory=set)
    overlaps: int = 0
    handled: list[tuple[str, Msg]] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)  # the task id of every handle call
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def factory(self, key: str) -> CounterActor:
        return CounterActor(key, self, next(self._ids))

    def count(self, what: str, key: str | None = None) -> int:
        return sum(1 for w, k, _ in self.log if w == what and (key is None or k == key))

    def registry(self, **kw: object) -> ActorRegistry[str, Msg, int]:
        kw.setdefault("inline", INLINE[0])
        return ActorRegistry(self.factory, name="test", **kw)  # type: ignore[arg-type]


#: Whether World.registry() builds registries with inline handling (set per test by the
#: `inline_mode` fixture in conftest.py, so every semantic test runs in both modes).
INLINE = [False]


class CounterActor:
    def __init__(self, key: str, world: World, instance: int) -> None:
        self.key = key
        self.world = world
        self.instance = instance
        self.value = 0

    def _enter(self, what: str) -> None:
        if self.key in self.world.inside:
            self.world.overlaps += 1
        self.world.inside.add(self.key)
        self.world.log.append((what, self.key, self.instance))

    def _exit(self) -> None:
        self.world.inside.discard(self.key)

    async def on_activate(self) -> None:
        self._enter("activate")
        try:
            await anyio.lowlevel.checkpoint()
            gate = self.world.activate_gate.get(self.key)
            if gate is not None:
                await gate.wait()
            if self.key in self.world.fail_activation:
                raise LoadFailed(self.key)
            self.value = self.world.store.get(self.key, 0)
        finally:
            self._exit()

    async def handle(self, msg: Msg) -> int:
        self._enter("handle")
        try:
            self.world.handled.append((self.key, msg))
            self.world.tasks.append(anyio.get_current_task().id)
            await anyio.lowlevel.checkpoint()
            if isinstance(msg, Add):
                self.value += msg.n
                self.world.store[self.key] = self.value
            elif isinstance(msg, Crash):
                self.value = -1000
                raise Boom(self.key)
            elif isinstance(msg, Wait):
                msg.entered.set()
                await msg.gate.wait()
                if msg.crash:
                    raise Boom(self.key)
            return self.value
        finally:
            self._exit()

    async def on_passivate(self) -> None:
        self._enter("passivate")
        try:
            gate = self.world.passivate_gate.get(self.key)
            if gate is not None:
                gate[0].set()
                await gate[1].wait()
        finally:
            self._exit()


def task_count() -> int:
    """Tasks alive in the event loop (the test's own, the registry's, any workers)."""
    return len(anyio.get_running_tasks())


async def wait_until(cond: Callable[[], bool], limit_s: float = 2.0) -> None:
    """Poll (tests only) until ``cond()`` holds; fail after ``limit_s``."""
    with anyio.fail_after(limit_s):
        while not cond():  # noqa: ASYNC110 - polling state the runtime does not signal
            await anyio.sleep(0.001)


async def ask_started(
    reg: ActorRegistry[str, Msg, int],
    key: str,
    msg: Msg,
    out: list[object],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ask_timeout: float | None = None,
) -> None:
    """For ``await tg.start(...)``: when start returns, the message is already in the mailbox
    (ask enqueues synchronously before its first await). The reply or the error lands in
    ``out`` at the position of this call (replies can arrive in any order under trio)."""
    index = len(out)
    out.append(None)
    task_status.started()
    try:
        out[index] = await reg.ask(key, msg, timeout=ask_timeout)
    except Exception as exc:
        out[index] = exc
