"""A small keyed actor runtime on anyio (runs on asyncio/uvloop and on trio).

An :class:`ActorRegistry` holds *virtual actors*: one per key, activated on the first
:meth:`~ActorRegistry.ask` for that key and passivated when idle or when room is needed.

* **Idle actors cost no task** — a resident actor with nothing to do is just its instance in a
  ``key -> instance`` table: no task, event, mailbox or record of the runtime's own, so the
  garbage collector sees one object per idle actor (the instance, plus what it holds). An actor
  that gets a message is put on a *ready queue* served by a pool of *worker tasks* shared by all
  actors; a worker handles the actor's messages until its mailbox is empty, puts it back in the
  idle table and serves the next ready actor (letting other tasks run every 32 actors). While
  actors wait, one more worker is always woken or started, so a handler that blocks never holds
  up other keys; a worker without work for ``linger_s`` ends. So the pool follows the number of
  handlers in progress, not the number of actors, and a message pays for no task spawn while a
  worker is idle. Handlers run in a worker's context (``contextvars``), not the asker's.
* **Mailbox** — a bounded FIFO (``collections.deque``, made when a message finds the actor
  idle). ``ask`` never waits for room: a full mailbox raises :class:`MailboxFull` at once and
  the message is not queued.
* **One message at a time** — an actor is served by at most one worker at a time;
  ``on_activate``, every ``handle`` and ``on_passivate`` run one after the other, never
  overlapping. Different keys run concurrently.
* **Activation** — the factory builds the instance and ``on_activate`` runs in a worker before
  the first message. If either raises, every queued asker gets :class:`ActorUnavailable`
  (``__cause__`` is the original error) and the entry is removed; the next ask starts afresh.
  An idle actor keeps its instance: its next message is handled without activating again.
* **Supervision** — if ``handle`` raises, that asker gets the exception and the instance is thrown
  away *without* ``on_passivate`` (its state may be corrupt); a fresh instance is built and
  activated before the next message. More than ``max_restarts`` crashes within
  ``restart_window_s`` stops the actor: queued askers get :class:`ActorUnavailable`, the entry is
  removed, and a later ask activates it afresh. Cancellation is never a crash.
* **Passivation** — one reaper task (waking every ``idle_timeout_s / 4``, at most every 10 ms)
  passivates actors idle (nothing handled or queued) for ``idle_timeout_s`` — at the latest one
  reaper interval later. When an activation would exceed ``max_resident`` the least recently
  used idle actor is passivated first; if none is idle, ``ask`` raises :class:`Overloaded`.
  Idle actors are passivated by at most 32 passivation tasks taking them in turn (so reaping or
  shutting down 50 000 actors spawns no task per actor); an actor that is being served is
  passivated by its worker once its mailbox is empty. A message that arrives for an actor being
  passivated is never lost: if ``on_passivate`` has not started yet the passivation is aborted,
  otherwise the message waits for it and a fresh instance is then activated to handle it.
* **Inline handling** (``inline=True``) — an ask that finds its actor idle, or not resident at
  all, runs ``on_activate`` (if needed) and ``handle`` in the asker's own task instead of handing
  the message to a worker: no mailbox, no event, no task switch. The actor is marked busy
  meanwhile, so other asks for it queue in its mailbox as usual and a worker serves them (and
  any passivation) once the inline ``handle`` returns; one message at a time still holds. The
  price: an inline ``handle`` runs in the asker's context and is not bounded by the ask's
  ``timeout`` (the handler must bound its own waits), the registry's shutdown cannot cancel it
  (its asker's scope can), and if the asker is cancelled during it the instance is dropped
  without ``on_passivate`` (its state may be half-updated) and a fresh one is activated next
  time. Crashes and activation failures count and restart exactly as for a worker.
* **Timeouts** — ``ask(..., timeout=)`` raises the builtin :class:`TimeoutError`. One timer task
  serves all deadlines (a cancel scope per ask would cost more than the rest of ``ask``), so a
  timeout fires up to 5 ms late. A timed-out message not yet started is skipped; one already
  in ``handle`` completes and its reply is dropped.
* **Shutdown** — leaving ``async with registry`` refuses new asks (:class:`RegistryClosed`), lets
  every actor drain its mailbox and calls ``on_passivate`` on each, waiting at most
  ``shutdown_timeout_s`` (shielded from an outer cancellation), then cancels what is left;
  askers whose message was not handled get :class:`RegistryClosed`. If the enclosing scope is
  cancelled, the workers are cancelled too: handlers in progress are interrupted (no
  ``on_passivate`` for those instances), messages not started get :class:`RegistryClosed`, and
  every other instance is still passivated, shielded, until ``shutdown_timeout_s`` has passed.

Time comes from :func:`anyio.current_time` / :func:`anyio.sleep`, so trio's ``MockClock`` drives
it in tests. Cost: an idle actor is its instance plus about 150 bytes of table entries; an actor
with messages also has a small record and a mailbox until they are handled; one task per
handler in progress (plus idle workers for ``linger_s``); one ``anyio.Event`` per ask and one
per worker wake-up.
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
import anyio.lowlevel
from anyio.abc import TaskGroup

from actors.incidents import IncidentLog

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

#: The reaper never wakes more often than this (seconds).
_MIN_REAP_INTERVAL_S = 0.01
#: Ask timeouts fire up to this late: the timer task batches expiries instead of waking once
#: per ask (and a cancel scope per ask would cost more than the rest of ``ask`` together).
_TIMER_RESOLUTION_S = 0.005
#: The linger sweeper (ending idle workers) never wakes more often than this (seconds).
_MIN_LINGER_SWEEP_S = 0.005
#: A worker lets other tasks run after serving this many actors in a row without a break.
_WORKER_BATCH = 32
#: At most this many tasks passivate idle actors (idle timeout, LRU eviction, shutdown).
_PASSIVATION_WORKERS = 32


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
    """What the registry drives. The registry never runs two of these at once for one actor."""

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
    """An actor with work: messages, or a passivation in progress. Idle actors have none.

    A slot is owned by one party at a time — the ready queue, the worker serving it, or the
    passivation task that made it — and only the owner calls the instance.
    """

    __slots__ = (
        "actor",
        "counted",
        "crash_times",
        "key",
        "mailbox",
        "passivating",
        "stop_requested",
    )

    def __init__(self, key: K, actor: Actor[M, R] | None) -> None:
        self.key = key
        self.actor = actor  # an activated instance, or None
        self.mailbox: deque[_Envelope[M, R]] = deque()
        self.stop_requested = False  # passivate once the mailbox is empty
        self.passivating = False  # on_passivate is running
        self.counted = True  # counted against max_resident (False once asked to stop)
        self.crash_times: deque[float] | None = None


class _Worker:
    """A worker task's parking spot while it waits for work."""

    __slots__ = ("expired", "since", "wake")

    def __init__(self) -> None:
        self.wake: anyio.Event | None = None
        self.since = 0  # linger tick at which it became idle
        self.expired = False  # woken to end, not for work


def _unavailable(msg: str, cause: BaseException | None) -> ActorUnavailable:
    err = ActorUnavailable(msg)
    err.__cause__ = cause
    return err


class ActorRegistry(Generic[K, M, R]):
    """Keyed actors activated on demand, with bounded mailboxes, supervision and passivation.

    Use as ``async with ActorRegistry(factory, name="cards") as reg: await reg.ask(key, msg)``.

    :param factory: builds a fresh (not yet activated) actor for a key. Called in a worker
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
    :param linger_s: how long a worker task with nothing to do waits for work before it ends —
        between half of it and all of it, 5 ms resolution (default 1 s). Longer keeps the
        workers of a bursty load (no task spawn per burst); 0 ends a worker as soon as the
        ready queue is empty.
    :param expected_errors: activation failures of these types are logged (once per incident)
        without a traceback: the trouble of a dependency, such as storage being unavailable.
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
        linger_s: float = 1.0,
        inline: bool = False,
        expected_errors: tuple[type[Exception], ...] = (),
    ) -> None:
        if mailbox_size < 1:
            raise ValueError("mailbox_size must be >= 1")
        if max_resident < 1:
            raise ValueError("max_resident must be >= 1")
        if idle_timeout_s <= 0 or restart_window_s <= 0 or shutdown_timeout_s < 0:
            raise ValueError("timeouts must be positive")
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if not linger_s >= 0:  # also refuses NaN
            raise ValueError("linger_s must be >= 0")
        self._factory = factory
        self.name = name
        self._mailbox_size = mailbox_size
        self._max_resident = max_resident
        self._idle_timeout_s = idle_timeout_s
        self._max_restarts = max_restarts
        self._restart_window_s = restart_window_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._linger_s = linger_s
        self._inline = inline

        # Actors with work: ready, being served, or being passivated.
        self._active: dict[K, _Slot[K, M, R]] = {}
        # Idle actors: key -> instance (None after a crash: restarted lazily), least recently
        # used first, and the reaper tick at which each became idle (ints: an idle actor is no
        # GC-tracked object but its instance).
        self._idle: OrderedDict[K, Actor[M, R] | None] = OrderedDict()
        self._idle_since: dict[K, int] = {}
        # Idle actors to passivate (no longer counted in _live), first come first served.
        self._doomed: OrderedDict[K, Actor[M, R]] = OrderedDict()
        self._crash_log: dict[K, deque[float]] = {}  # recent crash times of idle/doomed actors
        self._live = 0  # idle actors + slots with counted=True
        # Workers: actors waiting for one, idle workers (longest idle first), and how many
        # workers were started or woken and have not looked at the ready queue yet.
        self._ready: deque[_Slot[K, M, R]] = deque()
        self._idle_workers: deque[_Worker] = deque()
        self._waking = 0
        self._linger_tick = 0
        self._passivators = 0  # tasks passivating doomed actors
        self._tg: TaskGroup | None = None
        self._closed = True
        self._used = False
        self._drained: anyio.Event | None = None
        self._shutdown_deadline: float | None = None
        # Ask deadlines: a heap of [deadline, seq, envelope or None once answered].
        self._deadlines: list[list[Any]] = []
        self._seq = itertools.count()
        self._timer_at = math.inf  # when the timer task next wakes by itself
        self._timer_wake: anyio.Event | None = None
        self._tick = 0  # reaper ticks so far: a clock that costs nothing to read per message
        self._new_event: Callable[[], anyio.Event] = anyio.Event

        self._n_activations = 0
        self._n_activation_failures = 0
        # Failed activations are logged per incident (a Redis restart fails them all), never
        # with their key (card keys are personal data).
        self._activation_log = IncidentLog(_log, f"{name}: actor activation")
        # Activation failures of these kinds (e.g. storage unavailable) are logged without a
        # traceback: they are the dependency's trouble, not a bug here.
        self._expected_errors = expected_errors
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
        if self._linger_s > 0:
            tg.start_soon(self._linger_sweeper, name=f"{self.name}:linger")
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
            # Passivations shielded from an outer cancellation end at this deadline too.
            with anyio.CancelScope(shield=True, deadline=self._get_shutdown_deadline()):
                for slot in list(self._active.values()):
                    self._request_stop(slot)
                for key in list(self._idle):
                    self._stop_idle(key)
                if self.resident:
                    self._drained = anyio.Event()
                    await self._drained.wait()
        finally:
            self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    # ------------------------------------------------------------------ public API

    @property
    def resident(self) -> int:
        """Actors in memory, including any whose passivation is in progress."""
        return len(self._active) + len(self._idle) + len(self._doomed)

    @property
    def mailbox_depth(self) -> int:
        """Messages waiting in mailboxes now (only actors with work have one)."""
        return sum(len(slot.mailbox) for slot in self._active.values())

    @property
    def busy(self) -> int:
        """Actors with work now: messages waiting or being handled, or a passivation."""
        return len(self._active)

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
            "resident": self.resident,
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
        slot = self._active.get(key)
        if slot is None:
            if self._inline:
                if key in self._idle:
                    actor = self._idle[key]
                    if actor is not None:
                        return await self._handle_inline(key, actor, msg)
                elif key not in self._doomed:
                    return await self._activate_inline(key, msg)
            slot = self._start(key)
        else:
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

    async def _handle_inline(self, key: K, actor: Actor[M, R], msg: M) -> R:
        """``handle`` an idle actor's message in the asker's task (``inline=True``)."""
        del self._idle[key]
        del self._idle_since[key]
        # A slot marks the actor busy: asks meanwhile queue in its mailbox.
        slot: _Slot[K, M, R] = _Slot(key, actor)
        if self._crash_log:
            slot.crash_times = self._crash_log.pop(key, None)
        self._active[key] = slot
        return await self._run_inline(slot, actor, msg)

    async def _activate_inline(self, key: K, msg: M) -> R:
        """Build and activate a new actor in the asker's task, then handle ``msg`` there."""
        self._admit()
        slot: _Slot[K, M, R] = _Slot(key, None)
        if self._crash_log:
            slot.crash_times = self._crash_log.pop(key, None)
        self._active[key] = slot
        try:
            actor = self._factory(key)
            await actor.on_activate()
        except Exception as exc:
            self._n_activation_failures += 1
            self._activation_log.failed(
                exc, traceback=not isinstance(exc, self._expected_errors)
            )
            self._remove(slot)
            text = f"{self.name}: activation of {key!r} failed"
            while slot.mailbox:
                self._fail(slot.mailbox.popleft(), _unavailable(text, exc))
            raise _unavailable(text, exc) from exc
        except BaseException:
            # Cancelled while activating: nothing is active; a worker serves what queued.
            if slot.mailbox:
                self._schedule(slot)
            else:
                self._remove(slot)
            raise
        slot.actor = actor
        self._n_activations += 1
        self._activation_log.succeeded()
        return await self._run_inline(slot, actor, msg)

    async def _run_inline(self, slot: _Slot[K, M, R], actor: Actor[M, R], msg: M) -> R:
        self._n_messages += 1
        try:
            result = await actor.handle(msg)
        except Exception as exc:
            self._n_crashes += 1
            slot.actor = None  # dropped without on_passivate: may be corrupt
            if self._crashed_too_often(slot):
                self._stop_crashed(slot, exc)
            else:
                self._n_restarts += 1  # lazily: a fresh instance for the next message
                self._after_inline(slot)
            raise
        except BaseException:
            slot.actor = None  # interrupted mid-handle: its state may be half-updated
            self._after_inline(slot)
            raise
        self._after_inline(slot)
        return result

    def _after_inline(self, slot: _Slot[K, M, R]) -> None:
        """Hand an actor whose inline ``handle`` ended to a worker if it has more to do."""
        if slot.mailbox or slot.stop_requested:
            self._schedule(slot)
        else:
            self._park(slot)

    def _stop_crashed(self, slot: _Slot[K, M, R], exc: Exception) -> None:
        """Too many crashes: forget the actor; queued askers get ActorUnavailable."""
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
        mailbox = slot.mailbox
        while mailbox:
            self._fail(mailbox.popleft(), _unavailable(text, exc))

    def _start(self, key: K) -> _Slot[K, M, R]:
        """A slot on the ready queue for an actor without one: idle, doomed or new."""
        idle = self._idle
        actor: Actor[M, R] | None
        if key in idle:
            actor = idle.pop(key)
            del self._idle_since[key]
        elif key in self._doomed:  # not taken by a passivation task yet: abort it
            self._admit()
            actor = self._doomed.pop(key)
        else:
            self._admit()
            actor = None
        slot = _Slot(key, actor)
        if self._crash_log:
            slot.crash_times = self._crash_log.pop(key, None)
        self._active[key] = slot
        self._schedule(slot)
        return slot

    def _schedule(self, slot: _Slot[K, M, R]) -> None:
        """Queue an actor for a worker (one is woken or started unless one is on its way)."""
        self._ready.append(slot)
        if self._waking == 0:
            self._wake_worker()

    def _wake_worker(self) -> None:
        self._waking += 1
        idle_workers = self._idle_workers
        if idle_workers:
            worker = idle_workers.pop()  # the most recently idle: the others may expire
            wake = worker.wake
            assert wake is not None
            worker.wake = None
            wake.set()
        else:
            assert self._tg is not None
            self._tg.start_soon(self._worker, name=f"{self.name}:worker")

    def _admit(self) -> None:
        """Count one more live actor, evicting the LRU idle one if at the bound."""
        if self._live >= self._max_resident:
            if self._idle:
                self._n_evictions += 1
                self._stop_idle(next(iter(self._idle)))
            else:
                self._n_overloaded += 1
                raise Overloaded(f"{self.name}: {self._max_resident} actors resident and none idle")
        self._live += 1

    def _request_stop(self, slot: _Slot[K, M, R]) -> None:
        """Passivate an actor with work once its mailbox is empty (done by its worker)."""
        if not slot.stop_requested:
            slot.stop_requested = True
            if slot.counted:
                slot.counted = False
                self._live -= 1

    def _stop_idle(self, key: K) -> None:
        """Passivate an idle actor: doom it, for a passivation task to take."""
        actor = self._idle.pop(key)
        del self._idle_since[key]
        self._live -= 1
        if actor is None:  # crashed, not restarted: nothing to passivate
            if self._crash_log:
                self._crash_log.pop(key, None)
            self._check_drained()
            return
        self._doomed[key] = actor
        if self._passivators < _PASSIVATION_WORKERS:
            self._passivators += 1
            assert self._tg is not None
            self._tg.start_soon(self._passivator, name=f"{self.name}:passivator")

    def _park(self, slot: _Slot[K, M, R]) -> None:
        """Nothing left to do: keep the actor as a bare idle instance."""
        key = slot.key
        del self._active[key]
        self._idle[key] = slot.actor
        self._idle_since[key] = self._tick
        times = slot.crash_times
        if times:
            horizon = anyio.current_time() - self._restart_window_s
            while times and times[0] <= horizon:
                times.popleft()
            if times:
                self._crash_log[key] = times

    def _remove(self, slot: _Slot[K, M, R]) -> None:
        if self._active.get(slot.key) is slot:
            del self._active[slot.key]
            if slot.counted:
                slot.counted = False
                self._live -= 1
            self._check_drained()

    def _check_drained(self) -> None:
        if self._drained is not None and not self.resident:
            self._drained.set()

    def _drop(self, slot: _Slot[K, M, R], env: _Envelope[M, R] | None) -> None:
        """Forget an actor after a cancellation (shutdown) or an unexpected error."""
        self._remove(slot)
        closed = f"registry {self.name!r} shut down"
        if env is not None:
            self._fail(env, RegistryClosed(closed))
        mailbox = slot.mailbox
        while mailbox:
            self._fail(mailbox.popleft(), RegistryClosed(closed))

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

    def _get_shutdown_deadline(self) -> float:
        if self._shutdown_deadline is None:
            self._shutdown_deadline = anyio.current_time() + self._shutdown_timeout_s
        return self._shutdown_deadline

    def _shutdown_shield(self) -> anyio.CancelScope:
        """Shield a passivation from the shutdown's cancellation, up to the shutdown deadline."""
        return anyio.CancelScope(shield=True, deadline=self._get_shutdown_deadline())

    async def _passivate(self, actor: Actor[M, R], key: K) -> None:
        try:
            await actor.on_passivate()
        except Exception:
            self._n_passivation_failures += 1
            _log.exception("%s: on_passivate of %r failed", self.name, key)
        self._n_passivations += 1

    # ------------------------------------------------------------------ tasks

    async def _worker(self) -> None:
        """A worker task: serves ready actors, one after the other, then waits for more."""
        ready = self._ready
        me = _Worker()
        try:
            while True:
                self._waking -= 1  # started or woken for work
                served = 0
                while ready:
                    slot = ready.popleft()
                    if ready and self._waking == 0:
                        self._wake_worker()  # in case this handler blocks
                    await self._serve(slot)
                    served += 1
                    if served == _WORKER_BATCH:
                        served = 0
                        await anyio.lowlevel.checkpoint()
                if self._linger_s <= 0:
                    return
                wake = me.wake = self._new_event()
                me.since = self._linger_tick
                self._idle_workers.append(me)
                await wake.wait()
                if me.expired:
                    return
        except anyio.get_cancelled_exc_class():
            # Shutdown: messages not started get RegistryClosed, instances are passivated.
            if me.wake is not None:  # cancelled while idle
                me.wake = None
                self._idle_workers.remove(me)
            while ready:
                slot = ready.popleft()
                await self._abort(slot)
            raise

    async def _serve(self, slot: _Slot[K, M, R]) -> None:
        """Activation, messages, restarts, passivation — until the mailbox is empty."""
        mailbox = slot.mailbox
        env: _Envelope[M, R] | None = None  # the message being activated for or handled
        try:
            while True:
                if mailbox:
                    env = mailbox.popleft()
                    if env.abandoned:
                        self._n_abandoned += 1
                        env = None
                        continue
                    actor = slot.actor
                    if actor is None:
                        try:
                            actor = self._factory(slot.key)
                            await actor.on_activate()
                        except Exception as exc:
                            self._n_activation_failures += 1
                            self._activation_log.failed(
                exc, traceback=not isinstance(exc, self._expected_errors)
            )
                            self._remove(slot)
                            text = f"{self.name}: activation of {slot.key!r} failed"
                            self._fail(env, _unavailable(text, exc))
                            env = None
                            while mailbox:
                                self._fail(mailbox.popleft(), _unavailable(text, exc))
                            return
                        slot.actor = actor
                        self._n_activations += 1
                        self._activation_log.succeeded()
                        if env.abandoned:  # the asker gave up while we were activating
                            self._n_abandoned += 1
                            env = None
                            continue
                    self._n_messages += 1
                    try:
                        result = await actor.handle(env.msg)
                    except Exception as exc:
                        self._n_crashes += 1
                        slot.actor = None  # dropped without on_passivate: may be corrupt
                        self._fail(env, exc)
                        env = None
                        if self._crashed_too_often(slot):
                            self._stop_crashed(slot, exc)
                            return
                        self._n_restarts += 1  # lazily: a fresh instance for the next message
                        continue
                    env.result = result
                    env.done.set()
                    env = None
                elif slot.stop_requested:
                    idle = slot.actor
                    if idle is not None:
                        slot.actor = None
                        slot.passivating = True
                        if self._closed:  # shutdown: survive an outer cancellation
                            with self._shutdown_shield():
                                await self._passivate(idle, slot.key)
                        else:
                            await self._passivate(idle, slot.key)
                        slot.passivating = False
                    if mailbox:  # a message arrived during on_passivate: start afresh
                        slot.stop_requested = self._closed
                        continue
                    self._remove(slot)
                    return
                else:
                    self._park(slot)
                    return
        finally:
            if self._active.get(slot.key) is slot:  # cancelled (shutdown) or unexpected error
                self._drop(slot, env)

    async def _abort(self, slot: _Slot[K, M, R]) -> None:
        """Shutdown under cancellation, for a slot no task owns: passivate, fail the rest."""
        idle = slot.actor
        if idle is not None:
            slot.actor = None
            slot.passivating = True
            with self._shutdown_shield():
                await self._passivate(idle, slot.key)
        self._drop(slot, None)

    async def _passivator(self) -> None:
        """A passivation task: ``on_passivate`` for doomed actors, one at a time."""
        doomed = self._doomed
        cancelled: BaseException | None = None
        try:
            while doomed:
                key, idle = doomed.popitem(last=False)
                # A slot for the time of on_passivate: a message that comes meanwhile waits.
                slot: _Slot[K, M, R] = _Slot(key, None)
                if self._crash_log:
                    slot.crash_times = self._crash_log.pop(key, None)
                slot.stop_requested = True
                slot.counted = False
                slot.passivating = True
                self._active[key] = slot
                try:
                    if self._closed or cancelled is not None:
                        with self._shutdown_shield():
                            await self._passivate(idle, slot.key)
                    else:
                        await self._passivate(idle, slot.key)
                except anyio.get_cancelled_exc_class() as exc:
                    # Shutdown: this instance is dropped; passivate the rest, shielded.
                    cancelled = exc
                    self._drop(slot, None)
                    continue
                slot.passivating = False
                if slot.mailbox:  # messages came during on_passivate: a fresh instance
                    slot.stop_requested = self._closed
                    self._schedule(slot)
                else:
                    self._remove(slot)
            if cancelled is not None:
                raise cancelled
        finally:
            self._passivators -= 1

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

    async def _linger_sweeper(self) -> None:
        """End worker tasks idle long enough (one task for the whole registry).

        Idleness is measured in sweeper ticks, ``linger_s / 2`` apart: a worker that became
        idle during tick ``t`` is ended at tick ``t + 2`` if it got no work meanwhile.
        """
        interval = max(self._linger_s / 2, _MIN_LINGER_SWEEP_S)
        idle_workers = self._idle_workers
        while True:
            await anyio.sleep(interval)
            self._linger_tick += 1
            horizon = self._linger_tick - 2
            while idle_workers and idle_workers[0].since <= horizon:
                worker = idle_workers.popleft()
                wake = worker.wake
                assert wake is not None
                worker.wake = None
                worker.expired = True
                wake.set()

    async def _reaper(self) -> None:
        """Passivate actors idle for ``idle_timeout_s`` (one task for the whole registry).

        Idleness is measured in reaper ticks (at least ``interval`` apart), so an actor is
        passivated between ``idle_timeout_s`` and ``idle_timeout_s + interval`` after its mailbox
        drained, later only if the loop is late.
        """
        interval = max(self._idle_timeout_s / 4, _MIN_REAP_INTERVAL_S)
        # Drained during tick e, idle >= (k - e - 1) * interval at tick k.
        idle_ticks = math.ceil(self._idle_timeout_s / interval) + 1
        idle, idle_since = self._idle, self._idle_since
        while True:
            await anyio.sleep(interval)
            self._tick += 1
            horizon = self._tick - idle_ticks
            keys: list[K] = []
            for key in idle:  # least recently used first, so idle_since is ascending
                if idle_since[key] > horizon:
                    break
                keys.append(key)
            for key in keys:
                self._stop_idle(key)
