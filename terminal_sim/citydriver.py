"""Drives one process's share of a city schedule against the gateway.

Every simulated terminal holds one websocket (the lean client), authenticates with its own key,
and sends its scheduled taps:

* open loop (`mode="open"`, also under the ramp and spike warps): each tap at its intended wall
  time, whether or not earlier ones were answered; latency counts from the intended time, so a
  slow gateway (or a slow client) shows in the percentiles instead of lowering the offered load;
* closed loop (`mode="closed"`): each terminal sends its next tap as soon as the previous one is
  answered (after `think_s`), for `closed_s` wall seconds; latency counts from the send.

Like a real terminal it verifies every `auth` (key id, signature, terminal, tap id, card), retries
a tap answered `busy` / `unavailable` / `internal` -- or not answered in 6 s, or cut off by a
dropped connection -- with the same tap id and content, and reconnects with back-off. Mobile
terminals (buses, taxis) lose their network during scheduled outages: the connection is cut,
taps made meanwhile wait, and on reconnect everything pending is resent. Cards scheduled for
blocking are blocked through Redis at their time (`gateway.provisioning.block_card`).

What every terminal saw is kept in a compact `TapLog` (one row per scheduled tap), which the
auditor and the reports read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gateway.wire import protocol as wire
from terminal_sim.city import CityTerminal
from terminal_sim.latency import LatencyHistogram
from terminal_sim.link import LinkDriver, TerminalLink
from terminal_sim.schedule import STap
from terminal_sim.wsclient import WsClosed, WsConnection

RETRY_DELAY_S = 0.05
RETRY_MAX_S = 2.0
#: A tap with no answer for this long is sent again (protocol section 12 recommends 6 s).
RESPONSE_TIMEOUT_S = 6.0
MAX_RECONNECTS = 400
CONNECT_CONCURRENCY = 100

# TapLog.result
APPROVED, DECLINED, UNRESOLVED, FAILED = 0, 1, 2, 3
# TapLog.flags
F_OUTAGE = 1  # held back or cut off by a simulated outage
F_RETRIED = 2  # sent more than once
F_OFFLINE = 4  # decided by the terminal offline, uploaded after the outage

#: Ops a terminal decides offline (the rest wait for the network, as before): flat fares at
#: gates and validators, a tap off (its credit is the gateway's on upload), and amounts keyed
#: in at a till or a taxi handheld.
OFFLINE_OPS = frozenset({"fare", "tap_on", "tap_off", "purchase", "taxi_fare"})

#: Progress counter slots (shared with the parent's progress line).
(
    P_SENT,
    P_APPROVED,
    P_DECLINED,
    P_ERRORS,
    P_PENDING,
    P_RETRIES,
    P_RECONNECTS,
    P_OUTAGES,
    P_BLOCKS,
    P_T0_US,  # the run's start instant (time.monotonic, microseconds), once known
) = range(10)
P_SIZE = 10


@dataclass
class WorkerPlan:
    """One process's share: its terminals and everything scheduled for them."""

    index: int
    url: str
    gateway_keys: dict[str, str]
    redis_url: str | None
    terminals: list[CityTerminal]
    #: (schedule index, wall offset s, tap), by wall offset
    taps: list[tuple[int, float, STap]]
    #: (wall start s, wall end s, terminal index)
    outages: list[tuple[float, float, int]]
    #: (wall s, card)
    blocks: list[tuple[float, str]]
    run_tag: str
    mode: str = "open"
    closed_s: float = 10.0
    think_s: float = 0.0
    drain_s: float = 15.0
    #: Epoch ms of the simulated day's midnight: a tap's scheduled `terminal_time` minus the
    #: true simulated time is that terminal's clock error, which is added to the real clock
    #: when the tap is sent (the gateway refuses a terminal_time far from its own clock).
    sim_midnight_ms: int = 0


@dataclass
class TapLog:
    """One row per tap this process sent: what the terminal ended up with."""

    idx: array[int] = field(default_factory=lambda: array("q"))
    result: array[int] = field(default_factory=lambda: array("b"))
    reason: array[int] = field(default_factory=lambda: array("h"))
    amount: array[int] = field(default_factory=lambda: array("q"))
    balance: array[int] = field(default_factory=lambda: array("q"))
    gateway_time: array[int] = field(default_factory=lambda: array("q"))
    #: wall ms from the start of the run when the answer came (-1: none)
    done_ms: array[int] = field(default_factory=lambda: array("q"))
    latency_us: array[int] = field(default_factory=lambda: array("q"))
    flags: array[int] = field(default_factory=lambda: array("b"))
    reasons: list[str] = field(default_factory=list)
    #: schedule index -> detail of auths whose (unsigned) detail reports cap progress
    details: dict[int, dict[str, Any]] = field(default_factory=dict)

    def reason_index(self, reason: str) -> int:
        try:
            return self.reasons.index(reason)
        except ValueError:
            self.reasons.append(reason)
            return len(self.reasons) - 1

    def add(
        self,
        idx: int,
        result: int,
        reason: str,
        amount: int,
        balance: int,
        gateway_time: int,
        done_ms: int,
        latency_us: int,
        flags: int,
    ) -> None:
        self.idx.append(idx)
        self.result.append(result)
        self.reason.append(self.reason_index(reason))
        self.amount.append(amount)
        self.balance.append(balance)
        self.gateway_time.append(gateway_time)
        self.done_ms.append(done_ms)
        self.latency_us.append(latency_us)
        self.flags.append(flags)

    def __len__(self) -> int:
        return len(self.idx)

    def rows(self) -> Any:
        for i in range(len(self.idx)):
            yield (
                self.idx[i],
                self.result[i],
                self.reasons[self.reason[i]],
                self.amount[i],
                self.balance[i],
                self.gateway_time[i],
                self.done_ms[i],
                self.latency_us[i],
                self.flags[i],
            )


@dataclass
class WorkerResult:
    index: int
    taps_sent: int = 0
    approved: int = 0
    declined: int = 0
    errors: int = 0
    signature_failures: int = 0
    retries: int = 0
    reconnects: int = 0
    outages: int = 0
    #: taps decided offline, those approved offline, and what those approvals the gateway then
    #: declined were worth (the first-ride risk the journal calls uncollected)
    offline_taps: int = 0
    offline_approved: int = 0
    offline_uncollected: int = 0
    #: answers to a tap already answered (the gateway answered both attempts of a resent tap)
    late_answers: int = 0
    blocks_done: list[str] = field(default_factory=list)
    error_codes: dict[str, int] = field(default_factory=dict)
    declines: dict[str, int] = field(default_factory=dict)
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    log: TapLog = field(default_factory=TapLog)


@dataclass(slots=True)
class Pending:
    idx: int
    tap_id: str
    card: str
    op: str
    fields: dict[str, object]
    terminal_time: int
    intended: float
    sent_at: float = 0.0
    attempts: int = 0
    flags: int = 0


class CityConn(TerminalLink[CityTerminal, Pending, "CityDriver"]):
    """One simulated city terminal: its connection, sequence numbers and unanswered taps
    (`terminal_sim.link`), plus its outages, its response timeouts and, in closed loop, the
    taps it has not sent yet."""

    max_reconnects = MAX_RECONNECTS

    def __init__(self, t: CityTerminal, driver: CityDriver) -> None:
        super().__init__(t, driver)
        self.offline_until = 0.0
        self.queue: deque[Pending] = deque()  # closed loop: taps not sent yet
        # Offline taps held for upload: how many, and the amount approved in them.
        self.offline_held = 0
        self.offline_held_total = 0

    def _decided(self, tap: Pending, msg: dict[str, Any]) -> None:
        if tap.flags & F_OFFLINE:
            self.offline_held -= 1
            amount = int(tap.fields[wire.OFFLINE_AMOUNT])  # type: ignore[call-overload]
            if tap.fields[wire.OFFLINE_RESULT] == wire.RESULT_APPROVED:
                self.offline_held_total -= amount
                if msg["result"] != wire.RESULT_APPROVED:
                    self.driver.result.offline_uncollected += amount
        self.driver.decided(self, tap, msg)

    def _failed(self, tap: Pending, code: str) -> None:
        self.driver.failed(self, tap, code)

    def _retry_delay(self, tap: Pending) -> float:
        backoff: float = RETRY_DELAY_S * 2 ** min(tap.attempts, 6)
        return min(RETRY_MAX_S, backoff)

    def _rejected(self, tap: Pending, code: str) -> None:
        if code == wire.SEQ_OUT_OF_ORDER:
            # Our counter is behind the gateway's: reconnect (welcome.last_seq) and resend.
            self.driver.result.retries += 1
            if self.conn is not None:
                self.conn.abort()
            return
        super()._rejected(tap, code)

    def _unknown_auth(self, msg: dict[str, Any]) -> None:
        self.driver.result.late_answers += 1  # to an attempt resent after a timeout: answered

    def _held(self, tap: Pending) -> None:
        if self._offline():
            tap.flags |= F_OUTAGE
            if tap.attempts == 0:
                self._decide_offline(tap)

    def _wants_offline_policy(self) -> bool:
        return True

    def _decide_offline(self, tap: Pending) -> None:
        """Decide a never-sent tap here, by the signed policy and deny list, and sign it: it
        is uploaded as an offline tap when the network is back (docs/protocol.md)."""
        policy = self.offline_policy
        if policy is None or tap.op not in OFFLINE_OPS:
            return
        if tap.op in ("fare", "tap_on"):
            network = str(tap.fields.get("network") or self.t.network)
            fare = dict(policy.fares).get(network)
            if fare is None:
                return  # no flat fare to charge: wait for the network
            amount = fare
        elif tap.op == "tap_off":
            amount = 0
        else:
            amount = int(tap.fields.get("amount", 0))  # type: ignore[call-overload]
        approve = (
            tap.card not in self.deny
            and amount <= policy.max_tap_amount
            and self.offline_held < policy.max_queue_taps
            and self.offline_held_total + amount <= policy.max_queue_total
        )
        result = wire.RESULT_APPROVED if approve else wire.RESULT_DECLINED
        signed = wire.offline_tap_bytes(
            self.t.terminal_id, tap.tap_id, tap.card, tap.op, tap.terminal_time, result, amount
        )
        tap.fields[wire.OFFLINE_RESULT] = result
        tap.fields[wire.OFFLINE_AMOUNT] = amount
        tap.fields[wire.OFFLINE_SIG] = self.t.signing_key.sign(signed).signature.hex()
        tap.flags |= F_OFFLINE
        self.offline_held += 1
        r = self.driver.result
        r.offline_taps += 1
        if approve:
            self.offline_held_total += amount
            r.offline_approved += 1

    def _sending(self, tap: Pending, now: float) -> None:
        if tap.attempts > 1:
            tap.flags |= F_RETRIED
        tap.sent_at = now

    def _before_adopt(self, conn: WsConnection) -> None:
        if self._offline() or self.driver.stopping:
            conn.abort()  # the network went away while we were shaking hands
            raise ConnectionError("offline")

    def _offline(self) -> bool:
        return time.monotonic() < self.offline_until

    def _reconnect_wait(self, delay: float) -> float:
        return max(delay, self.offline_until - time.monotonic())

    def resend_overdue(self, now: float) -> None:
        if not self.ready:
            return
        for tap in list(self.pending.values()):
            if tap.sent_at and now - tap.sent_at > RESPONSE_TIMEOUT_S:
                self.driver.result.retries += 1
                self._send(tap)

    def go_offline(self, until: float) -> None:
        self.offline_until = max(self.offline_until, until)
        for tap in self.pending.values():
            tap.flags |= F_OUTAGE
        if self.conn is not None:
            self.conn.abort()  # -> _on_close -> reconnect after the outage
        elif not self.reconnecting:
            self._start_reconnect()

    def _on_close(self, code: int | None, reason: str) -> None:
        if self._offline():
            for tap in self.pending.values():
                tap.flags |= F_OUTAGE
        super()._on_close(code, reason)


class CityDriver(LinkDriver[WorkerResult]):
    def __init__(self, plan: WorkerPlan, progress: Any = None) -> None:
        super().__init__(plan.url, plan.gateway_keys, WorkerResult(plan.index))
        self.plan = plan
        self.conns = {t.index: CityConn(t, self) for t in plan.terminals}
        self.sending = True
        self.t0 = 0.0
        self.progress = progress  # a sequence of P_SIZE ints (multiprocessing.Array) or None

    def decided(self, term: CityConn, tap: Pending, msg: dict[str, Any]) -> None:
        r = self.result
        now = time.monotonic()
        approved = msg["result"] == wire.RESULT_APPROVED
        if approved:
            r.approved += 1
        else:
            r.declined += 1
            r.declines[msg["reason"]] = r.declines.get(msg["reason"], 0) + 1
        r.log.add(
            tap.idx,
            APPROVED if approved else DECLINED,
            msg["reason"],
            msg["amount"],
            msg["balance"],
            msg["gateway_time"],
            round((now - self.t0) * 1000),
            round((now - tap.intended) * 1e6),
            tap.flags,
        )
        detail = msg.get("detail")
        if isinstance(detail, dict) and any(k in detail for k in ("caps", "cap", "cap_progress")):
            r.log.details[tap.idx] = detail
        self._next(term)

    def failed(self, term: CityConn, tap: Pending, code: str) -> None:
        self.result.errors += 1
        self.result.log.add(tap.idx, FAILED, code, 0, 0, 0, -1, 0, tap.flags)
        self._next(term)

    def _next(self, term: CityConn) -> None:
        if self.plan.mode != "closed" or not self.sending or not term.queue:
            return
        tap = term.queue.popleft()
        if self.plan.think_s > 0:
            asyncio.get_running_loop().call_later(self.plan.think_s, self._closed_send, term, tap)
        else:
            self._closed_send(term, tap)

    def _closed_send(self, term: CityConn, tap: Pending) -> None:
        if not self.sending:
            term.queue.appendleft(tap)
            return
        tap.intended = time.monotonic()
        self.result.taps_sent += 1
        term.tap(tap)

    def _pending(self, idx: int, tap: STap, intended: float) -> Pending:
        return Pending(
            idx=idx,
            tap_id=f"{self.plan.run_tag}-{idx}",
            card=tap.card,
            op=tap.op,
            fields=dict(tap.fields),
            terminal_time=time.time_ns() // 1_000_000
            + tap.terminal_time
            - (self.plan.sim_midnight_ms + tap.t_ms),
            intended=intended,
        )

    async def _housekeeping(self) -> None:
        while not self.stopping:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for c in self.conns.values():
                c.heartbeat_if_quiet(now)
                c.resend_overdue(now)
            self._report()

    def _report(self) -> None:
        p = self.progress
        if p is None:
            return
        r = self.result
        p[P_SENT] = r.taps_sent
        p[P_APPROVED] = r.approved
        p[P_DECLINED] = r.declined
        p[P_ERRORS] = r.errors
        p[P_PENDING] = sum(len(c.pending) for c in self.conns.values())
        p[P_RETRIES] = r.retries
        p[P_RECONNECTS] = r.reconnects
        p[P_OUTAGES] = r.outages
        p[P_BLOCKS] = len(r.blocks_done)
        p[P_T0_US] = round(self.t0 * 1e6)

    async def connect_all(self) -> None:
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(c: CityConn) -> None:
            async with sem:
                for attempt in range(20):
                    try:
                        await c.open()
                        return
                    except (OSError, ConnectionError, TimeoutError, WsClosed):
                        await asyncio.sleep(0.1 * (attempt + 1))
                await c.open()

        await asyncio.gather(*(one(c) for c in self.conns.values()))

    async def _outage(self, start: float, end: float, terminal: int) -> None:
        await asyncio.sleep(max(0.0, self.t0 + start - time.monotonic()))
        if self.stopping:
            return
        self.result.outages += 1
        # At least 50 ms of real silence: the gateway must see the connection die.
        self.conns[terminal].go_offline(self.t0 + max(end, start + 0.05))

    async def _blocks(self) -> None:
        if not self.plan.blocks:
            return
        import redis.asyncio as aredis

        from gateway.provisioning import block_card

        assert self.plan.redis_url is not None, "blocking cards needs the gateway's Redis"
        client = aredis.Redis.from_url(self.plan.redis_url)
        try:
            for at, card in self.plan.blocks:
                await asyncio.sleep(max(0.0, self.t0 + at - time.monotonic()))
                if self.stopping:
                    return
                if await block_card(client, card):
                    self.result.blocks_done.append(card)
        finally:
            await client.aclose()

    async def run(self, start_at: float | None = None) -> WorkerResult:
        """Connect everything, wait for `start_at` (a time.monotonic() instant shared by all
        processes) and play the plan."""
        try:
            await self.connect_all()
        except BaseException:
            await self.stop_tasks([c.conn for c in self.conns.values()])
            raise
        return await self.play(start_at)

    async def play(self, start_at: float | None = None) -> WorkerResult:
        """Play the plan on connected terminals, from `start_at` (default: now)."""
        try:
            return await self._play(start_at)
        finally:
            await self.stop_tasks([c.conn for c in self.conns.values()])

    async def _play(self, start_at: float | None) -> WorkerResult:
        self.t0 = start_at if start_at is not None else time.monotonic() + 0.05
        self._report()
        self.spawn(self._housekeeping())
        for start, end, term in self.plan.outages:
            self.spawn(self._outage(start, end, term))
        blocker = asyncio.get_running_loop().create_task(self._blocks())
        self._tasks.add(blocker)
        blocker.add_done_callback(self._tasks.discard)
        await asyncio.sleep(max(0.0, self.t0 - time.monotonic()))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if self.plan.mode == "closed":
            await self._run_closed()
        else:
            await self._run_open()
        self.result.wall_s = time.perf_counter() - wall0
        self.result.cpu_s = time.process_time() - cpu0
        # Drain: wait for answers (and for outages that are still going on) before giving up.
        last_outage = max((self.t0 + e for _, e, _ in self.plan.outages), default=0.0)
        deadline = max(time.monotonic(), last_outage) + self.plan.drain_s
        while time.monotonic() < deadline and any(c.pending for c in self.conns.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(blocker, timeout=max(1.0, deadline - time.monotonic()))
        self.stopping = True
        for c in self.conns.values():
            for tap in c.pending.values():
                self.result.errors += 1
                self.result.log.add(tap.idx, UNRESOLVED, "unresolved", 0, 0, 0, -1, 0, tap.flags)
            c.pending.clear()
        self._report()
        return self.result

    async def _run_open(self) -> None:
        clock = time.monotonic
        r = self.result
        taps = self.plan.taps
        i, n = 0, len(taps)
        while i < n:
            now = clock()
            due = self.t0 + taps[i][1]
            if due > now:
                await asyncio.sleep(due - now)
                now = clock()
            # Send everything due by now: the arrival rate holds even when the loop runs late.
            while i < n and self.t0 + taps[i][1] <= now:
                idx, off, tap = taps[i]
                intended = self.t0 + off
                r.send_lag.record_s(now - intended)
                r.taps_sent += 1
                self.conns[tap.terminal].tap(self._pending(idx, tap, intended))
                i += 1
        self.sending = False

    async def _run_closed(self) -> None:
        for idx, _, tap in self.plan.taps:
            self.conns[tap.terminal].queue.append(self._pending(idx, tap, 0.0))
        for c in self.conns.values():
            if c.queue:
                self._closed_send(c, c.queue.popleft())
        await asyncio.sleep(max(0.0, self.t0 + self.plan.closed_s - time.monotonic()))
        self.sending = False


def run_worker(
    plan: WorkerPlan, progress: Any = None, start_at: float | None = None
) -> WorkerResult:
    """Run a plan on a fresh event loop (uvloop when installed)."""
    coro = CityDriver(plan, progress).run(start_at)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)
