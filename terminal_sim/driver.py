"""Open-loop tap driver: simulated terminals on the lean websocket client, sending taps at a fixed
arrival rate and measuring each answer from the tap's INTENDED send time.

Each terminal authenticates (hello → challenge → proof → welcome), then taps. Every `auth` is
verified (key id known, signature valid, terminal and tap id match). A tap answered `busy`,
`unavailable` or `internal`, or left unanswered when the connection drops, is retried with the
same tap id and content (and a new seq) after reconnecting, as real terminals must. What every
terminal saw approved is kept for auditors.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.wire import protocol as wire
from terminal_sim.fleet import PURCHASE_AMOUNTS, TOPUP_AMOUNT, SimTerminal
from terminal_sim.latency import LatencyHistogram
from terminal_sim.link import LinkDriver, TerminalLink

#: Retry delay after `busy` / `unavailable` / `internal`, seconds.
RETRY_DELAY_S = 0.05
#: Reconnect attempts per terminal before it gives up (with a growing delay up to 1 s).
MAX_RECONNECTS = 200
#: Connections opened at once while the fleet comes up.
CONNECT_CONCURRENCY = 100


@dataclass(slots=True)
class PendingTap:
    tap_id: str
    card: str
    op: str
    fields: dict[str, object]
    terminal_time: int
    intended: float
    attempts: int = 0


@dataclass
class DriverResult:
    taps_sent: int = 0
    approved: int = 0
    declined: int = 0
    #: taps that ended without a decision (after retries and the drain period)
    errors: int = 0
    signature_failures: int = 0
    retries: int = 0
    reconnects: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)
    declines: dict[str, int] = field(default_factory=dict)
    hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    #: (terminal_id, tap_id) -> (card, amount) of every tap a terminal saw approved
    approved_taps: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    #: with keep_approved: every outcome a terminal saw, for the auditor: (terminal_id, tap_id,
    #: card, result, reason, amount, balance, gateway_time); result "unresolved" for a tap that
    #: never got an answer
    outcomes: list[tuple[str, str, str, str, str, int, int, int]] = field(default_factory=list)

    def merge(self, other: DriverResult) -> None:
        for name in (
            "taps_sent",
            "approved",
            "declined",
            "errors",
            "signature_failures",
            "retries",
            "reconnects",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for src, dst in ((other.error_codes, self.error_codes), (other.declines, self.declines)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
        self.hist.merge(other.hist)
        self.send_lag.merge(other.send_lag)
        self.wall_s = max(self.wall_s, other.wall_s)
        self.cpu_s += other.cpu_s
        self.approved_taps.update(other.approved_taps)
        self.outcomes.extend(other.outcomes)


class SimTerminalConn(TerminalLink[SimTerminal, PendingTap, "TapDriver"]):
    """One simulated terminal of the fleet: its connection, sequence numbers and unanswered
    taps (`terminal_sim.link`); a retryable error is retried after a fixed delay unless the
    driver is stopping."""

    max_reconnects = MAX_RECONNECTS

    def _decided(self, tap: PendingTap, msg: dict[str, Any]) -> None:
        self.driver.decided(self, tap, msg)

    def _failed(self, tap: PendingTap, code: str) -> None:
        d = self.driver
        d.result.errors += 1
        if d.keep_approved:
            d.result.outcomes.append(
                (self.t.terminal_id, tap.tap_id, tap.card, "failed", code, 0, 0, 0)
            )

    def _retry_delay(self, tap: PendingTap) -> float:
        return RETRY_DELAY_S

    def _may_retry(self) -> bool:
        return not self.driver.stopping


class TapDriver(LinkDriver[DriverResult]):
    """Drives `terminals` at `rate` taps/s for `duration` s against the gateway at `url`."""

    def __init__(
        self,
        url: str,
        terminals: list[SimTerminal],
        cards: list[str],
        gateway_keys: dict[str, str],
        *,
        rate: float,
        duration: float,
        seed: int,
        drain_s: float = 10.0,
        keep_approved: bool = False,
        tap_prefix: str = "",
    ) -> None:
        super().__init__(url, gateway_keys, DriverResult())
        self.terminals = [SimTerminalConn(t, self) for t in terminals]
        self.cards = cards
        self.rate, self.duration, self.drain_s = rate, duration, drain_s
        self.rng = random.Random(seed)
        self.keep_approved = keep_approved
        self.tap_prefix = tap_prefix or f"s{seed}"

    def decided(self, term: SimTerminalConn, tap: PendingTap, msg: dict[str, Any]) -> None:
        r = self.result
        r.hist.record_s(time.monotonic() - tap.intended)
        if self.keep_approved:
            r.outcomes.append(
                (
                    term.t.terminal_id,
                    tap.tap_id,
                    tap.card,
                    msg["result"],
                    msg["reason"],
                    msg["amount"],
                    msg["balance"],
                    msg["gateway_time"],
                )
            )
        if msg["result"] == wire.RESULT_APPROVED:
            r.approved += 1
            if self.keep_approved:
                r.approved_taps[(term.t.terminal_id, tap.tap_id)] = (tap.card, msg["amount"])
        else:
            r.declined += 1
            r.declines[msg["reason"]] = r.declines.get(msg["reason"], 0) + 1

    async def _heartbeats(self) -> None:
        while not self.stopping:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for t in self.terminals:
                t.heartbeat_if_quiet(now)

    async def connect_all(self) -> None:
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(t: SimTerminalConn) -> BaseException | None:
            async with sem:
                try:
                    await t.open()
                except t.reconnect_errors as exc:
                    return exc
                return None

        failed = await asyncio.gather(*(one(t) for t in self.terminals))
        errors = [e for e in failed if e is not None]
        if errors and len(errors) == len(self.terminals):
            raise errors[0]  # the gateway is not there at all
        # Some were refused (e.g. `unavailable` while Redis restarts): they keep trying, and
        # their taps wait for them.
        for t, err in zip(self.terminals, failed, strict=True):
            if err is not None:
                t._start_reconnect()

    def _make_tap(self, i: int, term: SimTerminalConn, intended: float) -> PendingTap:
        rng = self.rng
        card = self.cards[rng.randrange(len(self.cards))]
        fields: dict[str, object] = {}
        op = term.t.op
        if op == "purchase":
            fields["amount"] = rng.choice(PURCHASE_AMOUNTS)
        elif op == "topup":
            fields["amount"] = TOPUP_AMOUNT
        return PendingTap(
            tap_id=f"{self.tap_prefix}-{i}",
            card=card,
            op=op,
            fields=fields,
            terminal_time=time.time_ns() // 1_000_000,
            intended=intended,
        )

    async def run(self) -> DriverResult:
        try:
            return await self._run()
        finally:
            await self.stop_tasks([t.conn for t in self.terminals])

    async def _run(self) -> DriverResult:
        # time.monotonic, not loop.time(): uvloop's clock ticks in whole milliseconds.
        clock = time.monotonic
        await self.connect_all()
        self.spawn(self._heartbeats())
        total = int(self.rate * self.duration)
        n = len(self.terminals)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        t0 = clock() + 0.05
        i = 0
        while i < total:
            now = clock()
            due = t0 + i / self.rate
            if due > now:
                await asyncio.sleep(due - now)
                now = clock()
            # Send everything due by now: the arrival rate holds even when the loop runs late.
            while i < total and t0 + i / self.rate <= now:
                intended = t0 + i / self.rate
                term = self.terminals[i % n]
                self.result.send_lag.record_s(now - intended)
                term.tap(self._make_tap(i, term, intended))
                i += 1
        self.result.taps_sent = total
        send_wall = time.perf_counter() - wall0
        send_cpu = time.process_time() - cpu0
        deadline = clock() + self.drain_s
        while clock() < deadline and any(t.pending for t in self.terminals):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.stopping = True
        self.result.errors += sum(len(t.pending) for t in self.terminals)
        if self.keep_approved:
            for t in self.terminals:
                for tap in t.pending.values():
                    self.result.outcomes.append(
                        (t.t.terminal_id, tap.tap_id, tap.card, "unresolved", "", 0, 0, 0)
                    )
        self.result.wall_s = send_wall
        self.result.cpu_s = send_cpu
        return self.result
