"""Open-loop websocket load generator (fixed arrival rate, coordinated-omission free).

Message ``i`` is *intended* to be sent at ``t0 + i / rate``, round-robin over the
connections. The scheduler sends every due message as soon as it runs; when the
loop is late it sends immediately and never skips, and the reply latency is always
measured from the intended time, so client or server stalls show up in the
percentiles instead of silently lowering the offered load.

Per message three things are recorded (deferred: raw floats in the hot path, HDR
histograms built after the run):

* ``latency``  -- reply arrival - intended send time (the headline figure);
* ``service``  -- reply arrival - actual write (what a closed-loop tool would report);
* ``send_lag`` -- how late the scheduler handled the message (client health).

A connection holds at most ``max_inflight`` unanswered messages; further due
messages wait in its ``backlog`` (counted) and go out as replies free slots; their
latency still counts from the intended time.

Client saturation: the client's CPU time (``time.process_time``) over the sending
window, as a fraction of one core, and the send lag p99 are checked against
``cpu_threshold`` / ``lag_threshold_ms``; if either is exceeded the result says
``client_cpu_bound=True`` and the figures measure the client, not the server.

Scheduling granularity: asyncio timers (uvloop's especially) tick in milliseconds, and
the scheduler never busy-waits, so messages are sent up to ~1 ms late (send lag
p50 ~0.5 ms); that lateness is honestly included in ``latency``; ``service`` excludes it.

Several processes: :func:`run_multiprocess` gives worker ``k`` of ``n`` the global
indices ``k, k+n, k+2n, ...`` (so the merged schedule is exactly the single-process
one) and a common start instant on ``time.monotonic`` (CLOCK_MONOTONIC, system-wide
on Linux); each worker runs its own uvloop with its own connections, and the parent
merges counters and histograms.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import multiprocessing
import os
import queue
import time
from array import array
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from terminal_sim.latency import LatencyHistogram
from terminal_sim.wsclient import WsClosed, WsConnection, connect

__all__ = [
    "JsonSeqMessages",
    "LoadResult",
    "LoadSpec",
    "MakeMessage",
    "ReplyKey",
    "Target",
    "open_connections",
    "run_load",
    "run_multiprocess",
    "run_open_loop",
]

MakeMessage = Callable[[int], tuple[Hashable, bytes]]
ReplyKey = Callable[[bytes], Hashable]


@dataclass(frozen=True)
class LoadSpec:
    """What to send. ``make_message``/``reply_key`` must be picklable for multi-process runs.

    ``rate`` is the TOTAL target rate (msgs/s) over all connections and processes;
    ``round(rate * duration)`` messages are sent. Keys must be unique among one
    connection's outstanding messages. ``warmup`` seconds at the start are sent and
    counted but not recorded in the histograms.
    """

    rate: float
    duration: float
    make_message: MakeMessage
    reply_key: ReplyKey
    max_inflight: int = 64
    warmup: float = 0.0
    drain_timeout: float = 5.0
    tick: float = 0.001
    max_batch: int = 256
    cpu_threshold: float = 0.9
    lag_threshold_ms: float = 5.0

    @property
    def total_messages(self) -> int:
        return round(self.rate * self.duration)


#: Called once per process on its freshly opened connections, before the run starts: e.g. to
#: authenticate them. Arguments: the connections, this process's slot, the number of slots.
Prepare = Callable[[Sequence[WsConnection], int, int], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """Where to connect: ``connections`` websockets to ``ws://host:port{path}``; ``prepare``
    (picklable, for multi-process runs) readies them before the load starts."""

    host: str
    port: int
    path: str = "/"
    connections: int = 100
    connect_concurrency: int = 64
    prepare: Prepare | None = None


@dataclass
class LoadResult:
    """Outcome of one run (or the merge of several processes' runs)."""

    target_rate: float
    duration: float
    processes: int
    connections: int
    sent: int
    received: int
    errors: int  # due messages not sent: the connection was already closed
    lost: int  # sent or backlogged, never answered (drain timeout or connection closed)
    unmatched: int  # replies whose key matched no outstanding message
    backlogged: int  # messages that had to wait for a free in-flight slot
    max_backlog: int
    closed_connections: int
    window_s: float  # max(scheduled span = duration, t0 .. last reply)
    achieved_rate: float  # received / window_s
    latency: LatencyHistogram
    service: LatencyHistogram
    send_lag: LatencyHistogram
    cpu_utils: list[float]  # per process: CPU seconds / wall seconds over the send window
    client_cpu_bound: bool
    saturation: list[str] = field(default_factory=list)

    @property
    def cpu_util(self) -> float:
        """The busiest client process's CPU use, as a fraction of one core."""
        return max(self.cpu_utils, default=0.0)

    def summary(self) -> dict[str, Any]:
        """Flat dict of counters, latency percentiles (ms) and client-saturation verdict."""
        lat = self.latency
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "processes": self.processes,
            "connections": self.connections,
            "sent": self.sent,
            "received": self.received,
            "errors": self.errors,
            "lost": self.lost,
            "unmatched": self.unmatched,
            "backlogged": self.backlogged,
            "max_backlog": self.max_backlog,
            "closed_connections": self.closed_connections,
            "p50_ms": lat.p50_ms(),
            "p99_ms": lat.p99_ms(),
            "p99.9_ms": lat.p999_ms(),
            "max_ms": lat.max_ms(),
            "service_p50_ms": self.service.p50_ms(),
            "service_p99_ms": self.service.p99_ms(),
            "send_lag_p50_ms": self.send_lag.p50_ms(),
            "send_lag_p99_ms": self.send_lag.p99_ms(),
            "client_cpu": round(self.cpu_util, 3),
            "client_cpu_bound": self.client_cpu_bound,
            "saturation": list(self.saturation),
        }

    @classmethod
    def merge(cls, parts: Sequence[LoadResult], spec: LoadSpec | None = None) -> LoadResult:
        """Combine concurrent runs (one per process) into one result."""
        if not parts:
            raise ValueError("nothing to merge")
        received = sum(p.received for p in parts)
        window = max(p.window_s for p in parts)
        saturation = [f"process {i}: {why}" for i, p in enumerate(parts) for why in p.saturation]
        return cls(
            target_rate=spec.rate if spec is not None else sum(p.target_rate for p in parts),
            duration=max(p.duration for p in parts),
            processes=sum(p.processes for p in parts),
            connections=sum(p.connections for p in parts),
            sent=sum(p.sent for p in parts),
            received=received,
            errors=sum(p.errors for p in parts),
            lost=sum(p.lost for p in parts),
            unmatched=sum(p.unmatched for p in parts),
            backlogged=sum(p.backlogged for p in parts),
            max_backlog=max(p.max_backlog for p in parts),
            closed_connections=sum(p.closed_connections for p in parts),
            window_s=window,
            achieved_rate=received / window if window > 0 else 0.0,
            latency=LatencyHistogram.merged(p.latency for p in parts),
            service=LatencyHistogram.merged(p.service for p in parts),
            send_lag=LatencyHistogram.merged(p.send_lag for p in parts),
            cpu_utils=[u for p in parts for u in p.cpu_utils],
            client_cpu_bound=any(p.client_cpu_bound for p in parts),
            saturation=saturation,
        )


# ---------------------------------------------------------------------- message helpers


@dataclass(frozen=True)
class JsonSeqMessages:
    """Picklable ``make_message``/``reply_key`` pair for echo-style targets.

    Messages are ~``size`` bytes of tap-like JSON whose first field is ``"seq"``, so
    the key is read back from an echoed reply without a JSON parse.
    """

    size: int = 300

    def make(self, i: int) -> tuple[Hashable, bytes]:
        head = b'{"seq":%d,"type":"tap","card":"04A1B2C3D4E5F6","terminal":"bus-0042",' % i
        body = b'"line":"31","stop":1187,"ts":1718000000123,"fare":"adult","sig":"'
        pad = max(0, self.size - len(head) - len(body) - 2)
        return i, head + body + b"A" * pad + b'"}'

    def key(self, payload: bytes) -> Hashable:
        return int(payload[7 : payload.index(b",", 7)])


# ---------------------------------------------------------------------- the driver


class _Run:
    """Mutable state of one run in one process (plain attributes: hot path)."""

    def __init__(self, spec: LoadSpec) -> None:
        self.reply_key = spec.reply_key
        self.max_inflight = spec.max_inflight
        self.sent = 0
        self.received = 0
        self.errors = 0
        self.lost = 0
        self.unmatched = 0
        self.backlogged = 0
        self.max_backlog = 0
        self.closed = 0
        self.outstanding = 0
        self.schedule_done = False
        self.last_reply = 0.0
        self.lat = array("d")
        self.svc = array("d")
        self.lag = array("d")
        self.done = asyncio.Event()

    def check_done(self) -> None:
        if self.schedule_done and self.outstanding <= 0:
            self.done.set()


class _Conn:
    """One connection's bookkeeping; its bound ``on_message`` is the websocket callback."""

    __slots__ = ("alive", "backlog", "pending", "run", "ws")

    def __init__(self, ws: WsConnection, run: _Run) -> None:
        self.ws = ws
        self.run = run
        self.alive = not ws.closed
        # key -> (intended time, actual send time, record in histograms?)
        self.pending: dict[Hashable, tuple[float, float, bool]] = {}
        self.backlog: collections.deque[tuple[Hashable, bytes, float, bool]] = collections.deque()
        ws.on_message = self.on_message
        ws.on_close = self.on_close

    def on_message(self, payload: bytes) -> None:
        now = time.monotonic()
        run = self.run
        try:
            key = run.reply_key(payload)
        except Exception:
            run.unmatched += 1
            return
        entry = self.pending.pop(key, None)
        if entry is None:
            run.unmatched += 1
            return
        intended, sent_at, record = entry
        run.received += 1
        run.last_reply = now
        if record:
            run.lat.append(now - intended)
            run.svc.append(now - sent_at)
        if self.backlog:
            bkey, data, bintended, brecord = self.backlog.popleft()
            self.pending[bkey] = (bintended, now, brecord)
            try:
                self.ws.send_text(data)
            except WsClosed:
                del self.pending[bkey]
                run.lost += 1
                run.outstanding -= 1
            else:
                run.sent += 1
        run.outstanding -= 1
        if run.outstanding <= 0:
            run.check_done()

    def on_close(self, code: int | None, reason: str) -> None:
        run = self.run
        self.alive = False
        run.closed += 1
        dropped = len(self.pending) + len(self.backlog)
        self.pending.clear()
        self.backlog.clear()
        run.lost += dropped
        run.outstanding -= dropped
        run.check_done()


async def run_open_loop(
    conns: Sequence[WsConnection],
    spec: LoadSpec,
    *,
    start_at: float | None = None,
    slot: int = 0,
    slots: int = 1,
) -> LoadResult:
    """Drive ``conns`` open-loop per ``spec``; return counters and histograms.

    ``start_at`` is the intended time of message 0 on ``time.monotonic`` (default: now
    + 50 ms). ``slot``/``slots`` select this process's share of the global schedule
    (indices ``slot, slot+slots, ...``). Installs ``on_message``/``on_close`` on the
    connections for the duration of the run.
    """
    if spec.rate <= 0 or spec.duration <= 0:
        raise ValueError("rate and duration must be positive")
    if not conns:
        raise ValueError("no connections")
    run = _Run(spec)
    states = [_Conn(ws, run) for ws in conns]
    nconn = len(states)
    make = spec.make_message
    max_inflight = spec.max_inflight
    inv_rate = 1.0 / spec.rate
    total = spec.total_messages
    warmup_until = spec.warmup
    mono = time.monotonic
    sleep = asyncio.sleep
    lag = run.lag

    t0 = mono() + 0.05 if start_at is None else start_at
    delay = t0 - mono()
    if delay > 0:
        await sleep(delay)
    cpu0 = time.process_time()
    wall0 = mono()

    i = slot  # global message index
    j = 0  # local message index (round-robin position)
    try:
        while i < total:
            batch = 0
            while i < total and batch < spec.max_batch:
                intended = t0 + i * inv_rate
                now = mono()
                if intended > now:
                    break
                st = states[j % nconn]
                j += 1
                key, data = make(i)
                record = i * inv_rate >= warmup_until
                i += slots
                batch += 1
                lag.append(now - intended)
                if not st.alive:
                    run.errors += 1
                    continue
                run.outstanding += 1
                if len(st.pending) >= max_inflight:
                    st.backlog.append((key, data, intended, record))
                    run.backlogged += 1
                    if len(st.backlog) > run.max_backlog:
                        run.max_backlog = len(st.backlog)
                    continue
                st.pending[key] = (intended, now, record)
                try:
                    st.ws.send_text(data)
                except WsClosed:
                    del st.pending[key]
                    run.outstanding -= 1
                    run.errors += 1
                else:
                    run.sent += 1
            if i >= total:
                break
            delay = t0 + i * inv_rate - mono()
            await sleep(max(delay, spec.tick) if delay > 0 else 0)
        send_end = mono()
        cpu_send = time.process_time() - cpu0
        run.schedule_done = True
        run.check_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.done.wait(), spec.drain_timeout)
    finally:
        for st in states:
            if st.ws.on_message == st.on_message:
                st.ws.on_message = None
            if st.ws.on_close == st.on_close:
                st.ws.on_close = None
    lost_at_end = sum(len(st.pending) + len(st.backlog) for st in states)

    latency, service, send_lag = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    latency.record_many_s(run.lat)
    service.record_many_s(run.svc)
    send_lag.record_many_s(lag)

    window = max(total * inv_rate, run.last_reply - t0, 1e-9)  # scheduled span, or longer
    send_wall = max(send_end - wall0, 1e-9)
    cpu_util = cpu_send / send_wall
    reasons: list[str] = []
    if send_wall >= 0.2 and cpu_util > spec.cpu_threshold:
        reasons.append(
            f"client CPU {cpu_util:.0%} of a core > {spec.cpu_threshold:.0%} during sending"
        )
    if send_lag.p99_ms() > spec.lag_threshold_ms:
        reasons.append(
            f"send lag p99 {send_lag.p99_ms():.2f} ms > {spec.lag_threshold_ms:.2f} ms "
            "(client event loop late: overloaded, or starved of CPU by other processes)"
        )
    return LoadResult(
        target_rate=spec.rate / slots,
        duration=spec.duration,
        processes=1,
        connections=nconn,
        sent=run.sent,
        received=run.received,
        errors=run.errors,
        lost=run.lost + lost_at_end,
        unmatched=run.unmatched,
        backlogged=run.backlogged,
        max_backlog=run.max_backlog,
        closed_connections=run.closed,
        window_s=window,
        achieved_rate=run.received / window,
        latency=latency,
        service=service,
        send_lag=send_lag,
        cpu_utils=[cpu_util],
        client_cpu_bound=bool(reasons),
        saturation=reasons,
    )


# ---------------------------------------------------------------------- connections


async def open_connections(target: Target, n: int | None = None) -> list[WsConnection]:
    """Open ``n`` (default ``target.connections``) websockets, a bounded number at a time."""
    count = target.connections if n is None else n
    sem = asyncio.Semaphore(max(1, target.connect_concurrency))

    async def one() -> WsConnection:
        async with sem:
            return await connect(target.host, target.port, target.path)

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    conns = [r for r in results if isinstance(r, WsConnection)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await close_connections(conns)
        raise errors[0]
    return conns


async def close_connections(conns: Sequence[WsConnection], close_timeout: float = 2.0) -> None:
    """Closing handshake on every connection, concurrently."""
    await asyncio.gather(
        *(c.close(close_timeout=close_timeout) for c in conns), return_exceptions=True
    )


async def run_load(
    target: Target,
    spec: LoadSpec,
    *,
    start_at: float | None = None,
    slot: int = 0,
    slots: int = 1,
    connections: int | None = None,
) -> LoadResult:
    """Connect, run :func:`run_open_loop`, close. The one-process building block."""
    conns = await open_connections(target, connections)
    try:
        if target.prepare is not None:
            await target.prepare(conns, slot, slots)
        return await run_open_loop(conns, spec, start_at=start_at, slot=slot, slots=slots)
    finally:
        await close_connections(conns)


# ---------------------------------------------------------------------- multi-process


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _worker(
    target: Target,
    spec: LoadSpec,
    slot: int,
    slots: int,
    n_conns: int,
    ready_q: Any,
    start_q: Any,
    result_q: Any,
    affinity: frozenset[int] | None,
) -> None:
    if affinity:
        os.sched_setaffinity(0, affinity)

    async def main() -> LoadResult:
        conns = await open_connections(target, n_conns)
        try:
            if target.prepare is not None:
                await target.prepare(conns, slot, slots)
            ready_q.put(("ready", slot, None))
            loop = asyncio.get_running_loop()
            start_at: float = await loop.run_in_executor(None, start_q.get)
            gc.collect()
            gc.freeze()  # the long-lived setup objects need no more GC scanning
            return await run_open_loop(conns, spec, start_at=start_at, slot=slot, slots=slots)
        finally:
            await close_connections(conns)

    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            result = runner.run(main())
    except BaseException as exc:
        ready_q.put(("error", slot, repr(exc)))
        result_q.put(("error", slot, repr(exc)))
        raise
    result_q.put(("ok", slot, result))


def run_multiprocess(
    n_procs: int,
    target: Target,
    spec: LoadSpec,
    *,
    start_method: str = "spawn",
    setup_timeout: float = 60.0,
    affinity: Iterable[int] | None = None,
) -> LoadResult:
    """Run ``spec`` from ``n_procs`` worker processes and merge their results.

    ``spec.rate`` and ``target.connections`` are split across the workers; each has
    its own uvloop. Every worker connects first, then all start on the same instant.
    ``affinity`` restricts the workers to these CPUs (Linux ``sched_setaffinity``).
    """
    if n_procs < 1:
        raise ValueError("n_procs must be >= 1")
    if target.connections < n_procs:
        raise ValueError("need at least one connection per process")
    cpus = frozenset(affinity) if affinity is not None else None
    ctx: Any = multiprocessing.get_context(start_method)  # typeshed: BaseContext lacks Process
    ready_q = ctx.Queue()
    start_q = ctx.Queue()
    result_q = ctx.Queue()
    base, extra = divmod(target.connections, n_procs)
    procs = [
        ctx.Process(
            target=_worker,
            args=(target, spec, k, n_procs, base + (k < extra), ready_q, start_q, result_q, cpus),
            daemon=True,
            name=f"loadgen-{k}",
        )
        for k in range(n_procs)
    ]
    for p in procs:
        p.start()

    def collect(q: Any, timeout: float, what: str) -> list[tuple[str, int, Any]]:
        """``n_procs`` messages from ``q``; fail fast if a worker dies without one."""
        got: list[tuple[str, int, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < n_procs:
            try:
                status, slot, info = q.get(timeout=0.2)
            except queue.Empty:
                seen = {slot for _, slot, _ in got}
                dead = [
                    p.name for k, p in enumerate(procs) if p.exitcode is not None and k not in seen
                ]
                if dead and q.empty():
                    raise RuntimeError(f"load worker(s) {dead} exited during {what}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"load workers timed out during {what}") from None
                continue
            if status not in ("ready", "ok"):
                raise RuntimeError(f"load worker {slot} failed during {what}: {info}")
            got.append((status, slot, info))
        return got

    try:
        collect(ready_q, setup_timeout, "setup")
        start_at = time.monotonic() + 0.1
        for _ in range(n_procs):
            start_q.put(start_at)
        results = collect(result_q, spec.duration + spec.drain_timeout + setup_timeout, "run")
        parts: dict[int, LoadResult] = {slot: info for _, slot, info in results}
        for p in procs:
            p.join(timeout=10)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    return LoadResult.merge([parts[k] for k in sorted(parts)], spec)
