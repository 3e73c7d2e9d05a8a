"""A small keyed actor runtime on anyio (runs on asyncio/uvloop and on trio).

An :class:`ActorRegistry` holds *virtual actors*: one per key, activated on the first
:meth:`~ActorRegistry.ask` for that key and passivated when idle or when room is needed.

* **Mailbox** — a bounded FIFO (``collections.deque`` + an ``anyio.Event`` that wakes the actor's
  task). ``ask`` never waits for room: a full mailbox raises :class:`MailboxFull` at once and the
  message is not queued.
* **One message at a time** — each resident actor has its own task in the registry's task group;
  ``on_activate``, every ``handle`` and ``on_passivate`` run there, in order, never overlapping.
  Different keys run concurrently.
* **Activation** — the factory builds the instance and ``on_activate`` runs in the actor's task
  before the first message. If either raises, every queued asker gets :class:`ActorUnavailable`
  (``__cause__`` is the original error) and the entry is removed; the next ask starts afresh.
* **Supervision** — if ``handle`` raises, that asker gets the exception and the instance is thrown
  away *without* ``on_passivate`` (its state may be corrupt); a fresh instance is built and
  activated before the next message. More than ``max_restarts`` crashes within
  ``restart_window_s`` stops the actor: queued askers get :class:`ActorUnavailable`, the entry is
  removed, and a later ask activates it afresh. Cancellation is never a crash.
* **Passivation** — one reaper task (waking every ``idle_timeout_s / 4``, at most every 10 ms)
  passivates actors idle (nothing handled or queued) for ``idle_timeout_s`` — at the latest one
  reaper interval later. When an activation would exceed ``max_resident`` the least recently
  used idle actor is passivated first; if none of the 128 least recently used actors is idle,
  ``ask`` raises :class:`Overloaded`. A message that arrives for an actor being passivated is
  never lost: if ``on_passivate`` has not started yet the passivation is aborted, otherwise the
  message waits for it and a fresh instance is then activated to handle it.
* **Timeouts** — ``ask(..., timeout=)`` raises the builtin :class:`TimeoutError`. One timer task
  serves all deadlines (a cancel scope per ask would cost more than the rest of ``ask``), so a
  timeout fires up to 5 ms late. A timed-out message not yet started is skipped; one already
  in ``handle`` completes and its reply is dropped.
* **Shutdown** — leaving ``async with registry`` refuses new asks (:class:`RegistryClosed`), lets
  every actor drain its mailbox and calls ``on_passivate`` on each, waiting at most
  ``shutdown_timeout_s`` (shielded from an outer cancellation), then cancels what is left;
  askers whose message was not handled get :class:`RegistryClosed`. If the enclosing scope is
  cancelled, the actor tasks are cancelled too: handlers in progress are interrupted (no
  ``on_passivate`` for those instances) and idle instances are still passivated, shielded.

Time comes from :func:`anyio.current_time` / :func:`anyio.sleep`, so trio's ``MockClock`` drives
it in tests. Cost: one task per resident actor (about 6 KB each on asyncio, most of it anyio's
and asyncio's task and event objects), two ``anyio.Event`` per ask.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from heapq import heappop, heappush
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import anyio
from anyio.abc import TaskGroup

__all__ = [
    "Actor",
    "ActorError",
    "ActorRegistry",
    "ActorUnavailable",
    "MailboxFull",
    "Overloaded",
    "RegistryClosed",
]

_log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
M = TypeVar("M")
R = TypeVar("R")
M_contra = TypeVar("M_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)

#: How many least-recently-used entries an activation looks at to find an idle victim when
#: ``max_resident`` is reached (keeps an overloaded registry O(1) per ask).
_EVICTION_SCAN = 128  # named in the module docstring
#: The reaper never wakes more often than this (seconds).
_MIN_REAP_INTERVAL_S = 0.01
#: Ask timeouts fire up to this late: the timer task batches expiries instead of waking once
#: per ask (and a cancel scope per ask would cost more than the rest of ``ask`` together).
_TIMER_RESOLUTION_S = 0.005


class ActorError(Exception):
    """Base class of the runtime's own errors."""


class MailboxFull(ActorError):
    """The actor's mailbox is at its bound; the message was not queued. Refuse, do not retry hot."""


class Overloaded(MailboxFull):
    """``max_resident`` is reached and no idle actor can be passivated to make room.

    A subclass of :class:`MailboxFull` (the message was not queued), so callers that refuse on a
    full mailbox refuse on this too.
    """


class ActorUnavailable(ActorError):
    """Activation failed or the actor was stopped after too many restarts.

    ``__cause__`` holds the underlying error. The next ask for the key tries a fresh activation.
    """


class RegistryClosed(ActorError):
    """The registry is not running (not entered yet, or shutting down); message not handled."""


class Actor(Protocol[M_contra, R_co]):
    """What the registry drives. All three methods run in the actor's own task."""

    async def on_activate(self) -> None:
        """Load state (e.g. from Redis) before the first message. May raise."""

    async def handle(self, msg: M_contra, /) -> R_co:
        """Handle one message; never called concurrently for one actor."""
        ...

    async def on_passivate(self) -> None:
        """Flush / release before the instance is dropped; state is already durable."""


class _Envelope(Generic[M, R]):
    """A message plus its one-shot reply slot."""

    __slots__ = ("abandoned", "done", "error", "msg", "result")

    def __init__(self, msg: M, done: anyio.Event) -> None:
        self.msg = msg
        self.done = done
        self.result: R | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the asker stopped waiting; skip it if not started yet


class _Slot(Generic[K, M, R]):
    """Registry-side state of one resident actor (the instance lives in its task)."""

    __slots__ = (
        "counted",
        "crash_times",
        "key",
        "last_active",
        "mailbox",
        "passivating",
        "stop_requested",
        "wake",
    )

    def __init__(self, key: K) -> None:
        self.key = key
        self.mailbox: deque[_Envelope[M, R]] = deque()
        self.wake: anyio.Event | None = None  # set while the task is idle, waiting for mail
        self.stop_requested = False  # passivate once the mailbox is empty
        self.passivating = False  # on_passivate is running
        self.counted = True  # counted against max_resident (False once asked to stop)
        self.last_active = 0  # reaper tick at which the mailbox last drained
        self.crash_times: deque[float] | None = None


def _unavailable(msg: str, cause: BaseException | None) -> ActorUnavailable:
    err = ActorUnavailable(msg)
    err.__cause__ = cause
    return err


class ActorRegistry(Generic[K, M, R]):
    """Keyed actors activated on demand, with bounded mailboxes, supervision and passivation.

    Use as ``async with ActorRegistry(factory, name="cards") as reg: await reg.ask(key, msg)``.

    :param factory: builds a fresh (not yet activated) actor for a key. Called in the actor's
        task; an exception counts as an activation failure.
    :param name: used in log messages and task names.
    :param mailbox_size: messages waiting per actor, not counting the one being handled
        (default 64).
    :param max_resident: actors held in memory, not counting ones being passivated
        (default 100 000).
    :param idle_timeout_s: an actor with no message handled or queued for this long is
        passivated (default 300 s).
    :param max_restarts: crashes tolerated per ``restart_window_s``; one more stops the actor
        (default 3).
    :param restart_window_s: the sliding window for ``max_restarts`` (default 60 s).
    :param shutdown_timeout_s: how long leaving the context waits for mailboxes to drain and
        ``on_passivate`` to finish before cancelling the rest (default 10 s).
    """

    def __init__(
        self,
        factory: Callable[[K], Actor[M, R]],
        *,
        name: str,
        mailbox_size: int = 64,
        max_resident: int = 100_000,
        idle_timeout_s: float = 300.0,
        max_restarts: int = 3,
        restart_window_s: float = 60.0,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        if mailbox_size < 1:
            raise ValueError("mailbox_size must be >= 1")
        if max_resident < 1:
            raise ValueError("max_resident must be >= 1")
        if idle_timeout_s <= 0 or restart_window_s <= 0 or shutdown_timeout_s < 0:
            raise ValueError("timeouts must be positive")
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        self._factory = factory
        self.name = name
        self._mailbox_size = mailbox_size
        self._max_resident = max_resident
        self._idle_timeout_s = idle_timeout_s
        self._max_restarts = max_restarts
        self._restart_window_s = restart_window_s
        self._shutdown_timeout_s = shutdown_timeout_s

        # Insertion order == least recently asked first (ask moves its key to the end).
        self._entries: OrderedDict[K, _Slot[K, M, R]] = OrderedDict()
        self._live = 0  # entries with counted=True
        self._tg: TaskGroup | None = None
        self._closed = True
        self._used = False
        self._drained: anyio.Event | None = None
        # Ask deadlines: a heap of [deadline, seq, envelope or None once answered].
        self._deadlines: list[list[Any]] = []
        self._seq = itertools.count()
        self._timer_at = math.inf  # when the timer task next wakes by itself
        self._timer_wake: anyio.Event | None = None
        self._tick = 0  # reaper ticks so far: a clock that costs nothing to read per message
        self._new_event: Callable[[], anyio.Event] = anyio.Event

        self._n_activations = 0
        self._n_activation_failures = 0
        self._n_passivations = 0
        self._n_passivation_failures = 0
        self._n_evictions = 0
        self._n_restarts = 0
        self._n_crashes = 0
        self._n_stops = 0
        self._n_messages = 0
        self._n_mailbox_full = 0
        self._n_overloaded = 0
        self._n_timeouts = 0
        self._n_abandoned = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._used:
            raise RuntimeError(f"registry {self.name!r} cannot be entered twice")
        self._used = True
        # The backend's concrete Event class: calling it skips anyio.Event's per-call backend
        # lookup (measurable at two events per ask).
        self._new_event = type(anyio.Event())
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._closed = False
        tg.start_soon(self._reaper, name=f"{self.name}:reaper")
        tg.start_soon(self._timer, name=f"{self.name}:timer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._closed = True
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._shutdown_timeout_s):
                for slot in self._entries.values():
                    self._request_stop(slot)
                if self._entries:
                    self._drained = anyio.Event()
                    await self._drained.wait()
        finally:
            self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    # ------------------------------------------------------------------ public API

    @property
    def resident(self) -> int:
        """Actors in memory, including any whose passivation is in progress."""
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        """Counters since the registry was created, plus the current ``resident`` gauge.

        ``activations`` counts successful ``on_activate`` calls (restarts included),
        ``messages`` counts ``handle`` calls, ``crashes`` ``handle`` calls that raised,
        ``restarts`` crashes followed by a restart, ``stops`` actors stopped after too many,
        ``passivations`` ``on_passivate`` calls (idle, LRU or shutdown), ``evictions`` those
        triggered by ``max_resident``, ``abandoned`` queued messages skipped because their
        asker had already given up (timeout or cancellation).
        """
        return {
            "resident": len(self._entries),
            "activations": self._n_activations,
            "activation_failures": self._n_activation_failures,
            "passivations": self._n_passivations,
            "passivation_failures": self._n_passivation_failures,
            "evictions": self._n_evictions,
            "restarts": self._n_restarts,
            "crashes": self._n_crashes,
            "stops": self._n_stops,
            "messages": self._n_messages,
            "mailbox_full": self._n_mailbox_full,
            "overloaded": self._n_overloaded,
            "timeouts": self._n_timeouts,
            "abandoned": self._n_abandoned,
        }

    # A per-ask deadline is the API callers want (ruff would have them wrap in fail_after).
    async def ask(
        self,
        key: K,
        msg: M,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> R:
        """Send ``msg`` to the actor for ``key`` (activating it if needed) and await its reply.

        Raises whatever ``handle`` raised, or :class:`MailboxFull` / :class:`Overloaded`
        (refused at once, not queued), :class:`ActorUnavailable`, :class:`RegistryClosed`, or
        the builtin :class:`TimeoutError` after ``timeout`` seconds.

        If the asker times out (up to 5 ms after ``timeout``) or is cancelled, a message still
        waiting in the mailbox is skipped (it keeps its mailbox place until the actor reaches
        it); one whose ``handle`` already started runs to completion and its reply is dropped.
        So after a ``TimeoutError`` the message *may or may not* have been processed, or may
        still be in progress: callers need idempotent messages (tap ids) or must reconcile.
        """
        if self._closed:
            raise RegistryClosed(f"registry {self.name!r} is not running")
        slot = self._entries.get(key)
        if slot is None:
            self._admit()
            slot = _Slot(key)
            self._entries[key] = slot
            assert self._tg is not None
            self._tg.start_soon(self._run, slot)
        else:
            self._entries.move_to_end(key)
            if len(slot.mailbox) >= self._mailbox_size:
                self._n_mailbox_full += 1
                raise MailboxFull(f"{self.name}: mailbox of {key!r} is full")
            if not slot.counted:  # being passivated: revive (or refuse)
                self._admit()
                slot.counted = True
                if not slot.passivating:
                    slot.stop_requested = False  # abort: on_passivate has not started
        env: _Envelope[M, R] = _Envelope(msg, self._new_event())
        slot.mailbox.append(env)
        wake = slot.wake
        if wake is not None:
            slot.wake = None
            wake.set()
        if timeout is None:
            try:
                await env.done.wait()
            except BaseException:  # cancelled: skip the message if not started yet
                env.abandoned = True
                raise
        else:
            pending: list[Any] = [anyio.current_time() + timeout, next(self._seq), env]
            heappush(self._deadlines, pending)
            if pending[0] + _TIMER_RESOLUTION_S < self._timer_at:
                wake = self._timer_wake
                if wake is not None:
                    self._timer_wake = None
                    wake.set()
            try:
                await env.done.wait()  # the timer task fails env with TimeoutError
            except BaseException:
                env.abandoned = True
                raise
            finally:
                pending[2] = None  # keep the heap entry small until its deadline pops it
        error = env.error
        if error is not None:
            try:
                raise error
            finally:
                env.error = error = None
        return env.result  # type: ignore[return-value]  # R may itself include None

    # ------------------------------------------------------------------ internals

    def _admit(self) -> None:
        """Count one more live actor, evicting the LRU idle one if at the bound."""
        if self._live >= self._max_resident:
            budget = _EVICTION_SCAN
            for slot in self._entries.values():
                if slot.wake is not None and not slot.stop_requested:
                    self._n_evictions += 1
                    self._request_stop(slot)
                    break
                budget -= 1
                if budget == 0:
                    break
            if self._live >= self._max_resident:
                self._n_overloaded += 1
                raise Overloaded(f"{self.name}: {self._max_resident} actors resident and none idle")
        self._live += 1

    def _request_stop(self, slot: _Slot[K, M, R]) -> None:
        if slot.stop_requested:
            return
        slot.stop_requested = True
        if slot.counted:
            slot.counted = False
            self._live -= 1
        wake = slot.wake
        if wake is not None:
            slot.wake = None
            wake.set()

    def _remove(self, slot: _Slot[K, M, R]) -> None:
        if self._entries.get(slot.key) is slot:
            del self._entries[slot.key]
            if slot.counted:
                slot.counted = False
                self._live -= 1
            if self._drained is not None and not self._entries:
                self._drained.set()

    @staticmethod
    def _fail(env: _Envelope[M, R], error: BaseException) -> None:
        if not env.done.is_set():
            env.error = error
            env.done.set()

    def _crashed_too_often(self, slot: _Slot[K, M, R]) -> bool:
        now = anyio.current_time()
        times = slot.crash_times
        if times is None:
            times = slot.crash_times = deque()
        times.append(now)
        horizon = now - self._restart_window_s
        while times and times[0] <= horizon:
            times.popleft()
        return len(times) > self._max_restarts

    async def _passivate(self, actor: Actor[M, R], key: K) -> None:
        try:
            await actor.on_passivate()
        except Exception:
            self._n_passivation_failures += 1
            _log.exception("%s: on_passivate of %r failed", self.name, key)
        self._n_passivations += 1

    async def _run(self, slot: _Slot[K, M, R]) -> None:
        """The actor's task: activation, messages, restarts, passivation."""
        mailbox = slot.mailbox
        actor: Actor[M, R] | None = None  # only ever an activated instance
        env: _Envelope[M, R] | None = None  # the message being activated for or handled
        try:
            while True:
                if mailbox:
                    env = mailbox.popleft()
                    if env.abandoned:
                        self._n_abandoned += 1
                        env = None
                        continue
                    if actor is None:
                        try:
                            fresh = self._factory(slot.key)
                            await fresh.on_activate()
                        except Exception as exc:
                            self._n_activation_failures += 1
                            _log.warning(
                                "%s: activation of %r failed", self.name, slot.key, exc_info=True
                            )
                            self._remove(slot)
                            text = f"{self.name}: activation of {slot.key!r} failed"
                            self._fail(env, _unavailable(text, exc))
                            while mailbox:
                                self._fail(mailbox.popleft(), _unavailable(text, exc))
                            return
                        actor = fresh
                        self._n_activations += 1
                        if env.abandoned:  # the asker gave up while we were activating
                            self._n_abandoned += 1
                            env = None
                            continue
                    self._n_messages += 1
                    try:
                        result = await actor.handle(env.msg)
                    except Exception as exc:
                        self._n_crashes += 1
                        actor = None  # dropped without on_passivate: its state may be corrupt
                        self._fail(env, exc)
                        env = None
                        if self._crashed_too_often(slot):
                            self._n_stops += 1
                            _log.error(
                                "%s: %r crashed more than %d times in %.0f s; stopped",
                                self.name,
                                slot.key,
                                self._max_restarts,
                                self._restart_window_s,
                                exc_info=exc,
                            )
                            self._remove(slot)
                            text = f"{self.name}: {slot.key!r} stopped after repeated crashes"
                            while mailbox:
                                self._fail(mailbox.popleft(), _unavailable(text, exc))
                            return
                        self._n_restarts += 1  # lazily: a fresh instance for the next message
                        continue
                    env.result = result
                    env.done.set()
                    env = None
                    continue

                if slot.stop_requested:
                    if actor is not None:
                        idle, actor = actor, None
                        slot.passivating = True
                        await self._passivate(idle, slot.key)
                        slot.passivating = False
                    if mailbox:  # a message arrived during on_passivate: start afresh
                        slot.stop_requested = False
                        continue
                    self._remove(slot)
                    return

                slot.last_active = self._tick
                wake = slot.wake = self._new_event()
                await wake.wait()
        except anyio.get_cancelled_exc_class():
            # Shutdown under an outer cancellation: still passivate an idle instance (one
            # cancelled inside on_activate / handle / on_passivate is dropped as is).
            if actor is not None and env is None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._shutdown_timeout_s):
                    await self._passivate(actor, slot.key)
            raise
        finally:
            # Work is only left here on cancellation (shutdown) or an unexpected error.
            self._remove(slot)
            if env is not None:
                self._fail(env, RegistryClosed(f"registry {self.name!r} shut down"))
            while mailbox:
                self._fail(mailbox.popleft(), RegistryClosed(f"registry {self.name!r} shut down"))

    async def _timer(self) -> None:
        """Fail asks whose deadline passed with TimeoutError (one task for the whole registry)."""
        heap = self._deadlines
        while True:
            now = anyio.current_time()
            while heap and heap[0][0] <= now:
                env: _Envelope[M, R] | None = heappop(heap)[2]
                if env is not None and not env.done.is_set():
                    env.abandoned = True
                    env.error = TimeoutError(f"{self.name}: no reply before the ask's timeout")
                    env.done.set()
                    self._n_timeouts += 1
            wake = self._timer_wake = self._new_event()
            if heap:
                self._timer_at = max(heap[0][0], now + _TIMER_RESOLUTION_S)
                with anyio.move_on_after(self._timer_at - now):
                    await wake.wait()
            else:
                self._timer_at = math.inf
                await wake.wait()

    async def _reaper(self) -> None:
        """Passivate actors idle for ``idle_timeout_s`` (one task for the whole registry).

        Idleness is measured in reaper ticks (at least ``interval`` apart), so an actor is
        passivated between ``idle_timeout_s`` and ``idle_timeout_s + interval`` after its mailbox
        drained, later only if the loop is late.
        """
        interval = max(self._idle_timeout_s / 4, _MIN_REAP_INTERVAL_S)
        # Drained during tick e, idle >= (k - e - 1) * interval at tick k.
        idle_ticks = math.ceil(self._idle_timeout_s / interval) + 1
        while True:
            await anyio.sleep(interval)
            self._tick += 1
            horizon = self._tick - idle_ticks
            idle: list[_Slot[K, M, R]] = []
            # Least recently asked first; stop at the first idle actor that is still fresh
            # (the order is by last ask, so this is approximate by at most one handler's run).
            for slot in self._entries.values():
                if slot.wake is None or slot.stop_requested:
                    continue  # busy, starting, or already stopping
                if slot.last_active > horizon:
                    break
                idle.append(slot)
            for slot in idle:
                self._request_stop(slot)
