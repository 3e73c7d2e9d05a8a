"""`citycard chaos`: kill -9 the gateway and Redis at random moments under load, restart them,
and audit the money after every round.

It starts its own Redis (AOF, as `citycard serve` runs it) and gateway (a child process), enrolls
a seeded fleet, and runs rounds. In each round a fresh open-loop `TapDriver` taps for a while
(new tap ids, same terminals and cards) while a seeded schedule kills the gateway or Redis with
SIGKILL at random moments and restarts it at once (Redis reloads its AOF; the gateway meanwhile
answers `unavailable`). After the round's drain the simulator's auditor compares what every
terminal was told, from the signed answers it kept, with the journal and the balances in Redis:

- lost: a tap a terminal saw decided that is not journaled;
- doubled: a tap journaled more than once (decided or not);
- balance_errors: a card whose balance is not its opening minus the approved charges.

Each round's openings are the balances the previous round's audit found right. It ends with
one line, `taps=N approved=N gateway_kills=N redis_kills=N lost=N doubled=N balance_errors=N`,
and exits 1 when any of the last three is not 0 (or the auditor found anything else).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

import orjson

from gateway.provisioning import gateway_keys
from gateway.store.redis_server import RedisServer, free_port
from gateway.store.redis_store import RedisStore
from terminal_sim.auditor import Auditor, AuditReport, Seen
from terminal_sim.driver import DriverResult, TapDriver
from terminal_sim.fleet import SimTerminal, make_cards, make_fleet
from terminal_sim.run import provision_fleet, start_gateway_process, stop_process

#: Kills per round (each round is audited before the next starts).
ROUND_KILLS: Final = 10
#: A kill comes this long (uniform, seconds) after the previous restart.
GAP_S: Final = (0.2, 1.2)
#: What a restart is assumed to take when sizing a round's load (seconds).
RESTART_ALLOWANCE_S: Final = 1.5
#: After a round's load: how long terminals may keep retrying unanswered taps.
DRAIN_S: Final = 30.0
#: Longest a round may take before the run is abandoned as hung.
ROUND_TIMEOUT_S: Final = 600.0


@dataclass
class ChaosTotals:
    taps: int = 0
    approved: int = 0
    declined: int = 0
    unresolved: int = 0
    gateway_kills: int = 0
    redis_kills: int = 0
    lost: int = 0
    doubled: int = 0
    balance_errors: int = 0
    other_differences: int = 0
    signature_failures: int = 0
    reconnects: int = 0
    rounds: int = 0
    #: tracebacks in the gateway processes' output (a transient fault should log none)
    gateway_tracebacks: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.doubled
            or self.balance_errors
            or self.other_differences
            or self.signature_failures
        )

    def line(self) -> str:
        return (
            f"taps={self.taps} approved={self.approved} gateway_kills={self.gateway_kills} "
            f"redis_kills={self.redis_kills} lost={self.lost} doubled={self.doubled} "
            f"balance_errors={self.balance_errors}"
        )

    def add_audit(self, report: AuditReport) -> None:
        for d in report.differences:
            if d.check == "journal entries of a decided tap" and d.actual == 0:
                self.lost += 1
            elif d.check.startswith("journal entries of"):
                self.doubled += 1
            elif d.check == "balance":
                self.balance_errors += 1
            else:
                self.other_differences += 1
        if len(self.examples) < 20:
            self.examples.extend(report.lines(20 - len(self.examples)))


def kill_schedule(gateway_kills: int, redis_kills: int, seed: int) -> list[str]:
    """The order of the kills: `gateway` and `redis`, shuffled by `seed`."""
    kinds = ["gateway"] * gateway_kills + ["redis"] * redis_kills
    random.Random(seed).shuffle(kinds)
    return kinds


@dataclass
class _Processes:
    """The gateway and Redis this run kills and restarts."""

    redis: RedisServer
    data_dir: Path
    port: int
    gateway: subprocess.Popen[str] | None = None

    def start_gateway(self) -> None:
        self.gateway = start_gateway_process(
            self.port, self.redis.url, self.data_dir, log=self.log_path
        )

    @property
    def log_path(self) -> Path:
        return self.data_dir / "gateway.log"

    def tracebacks(self) -> int:
        """Tracebacks the gateway processes logged so far."""
        if not self.log_path.exists():
            return 0
        with self.log_path.open(errors="replace") as f:
            return sum(line.startswith("Traceback") for line in f)

    def kill(self, kind: str) -> None:
        if kind == "gateway":
            assert self.gateway is not None
            self.gateway.kill()  # SIGKILL
            self.gateway.wait(10)
            self.start_gateway()
        else:
            self.redis.kill()
            self.redis.start(until_loaded=False)

    def stop(self) -> None:
        if self.gateway is not None:
            stop_process(self.gateway)
        self.redis.stop()


async def _balances(redis_url: str, cards: list[str]) -> dict[str, int]:
    async with RedisStore.connect(redis_url) as store:
        out: dict[str, int] = {}
        for card in cards:
            rec = await store.load_card(card)
            assert rec is not None, "a provisioned card is missing"
            out[card] = int(orjson.loads(rec.state)["balance"])
        return out


async def _audit(
    redis_url: str, auditor: Auditor, result: DriverResult, operators: dict[str, str]
) -> AuditReport:
    for terminal, tap, card, res, reason, amount, balance, gt in result.outcomes:
        auditor.saw(
            Seen(terminal, tap, card, res, reason, amount, balance, gt, operators[terminal])
        )
    async with RedisStore.connect(redis_url) as store:
        return await auditor.check(store)


def run_chaos(
    *,
    gateway_kills: int,
    redis_kills: int,
    seed: int,
    terminals: int = 30,
    cards: int = 200,
    rate: float = 150.0,
    round_kills: int = ROUND_KILLS,
    data_dir: Path | None = None,
    out: TextIO = sys.stdout,
) -> ChaosTotals:
    """Run the whole schedule; one progress line per round on `out` (a text stream)."""
    totals = ChaosTotals()
    schedule = kill_schedule(gateway_kills, redis_kills, seed)
    rng = random.Random(seed + 1)
    fleet, card_ids = make_fleet(terminals, seed), make_cards(cards, seed)
    operators = {t.terminal_id: t.operator for t in fleet}
    with tempfile.TemporaryDirectory(prefix="citycard-chaos-") as tmp:
        base = data_dir or Path(tmp)
        redis = RedisServer(data_dir=base / "redis").start()
        procs = _Processes(redis, base, free_port())
        try:
            asyncio.run(provision_fleet(redis.url, terminals, cards, seed))
            procs.start_gateway()
            keys = gateway_keys(redis.url)
            rounds = [schedule[i : i + round_kills] for i in range(0, len(schedule), round_kills)]
            for n, kills in enumerate(rounds or [[]], start=1):
                gaps = [rng.uniform(*GAP_S) for _ in kills]
                _run_round(
                    n, kills, gaps, procs, keys, fleet, card_ids, operators, rate, seed, totals
                )
                print(
                    f"[round {n}/{len(rounds)}] {totals.line()} reconnects={totals.reconnects} "
                    f"unresolved={totals.unresolved} other={totals.other_differences}",
                    file=out,
                    flush=True,
                )
        finally:
            procs.stop()
            totals.gateway_tracebacks = procs.tracebacks()
    return totals


def _run_round(
    n: int,
    kills: list[str],
    gaps: list[float],
    procs: _Processes,
    keys: dict[str, str],
    fleet: list[SimTerminal],
    card_ids: list[str],
    operators: dict[str, str],
    rate: float,
    seed: int,
    totals: ChaosTotals,
) -> None:
    procs.redis.wait_until_loaded()
    openings = asyncio.run(_balances(procs.redis.url, card_ids))
    prefix = f"c{seed}r{n}"
    duration = sum(gaps) + RESTART_ALLOWANCE_S * len(kills) + 1.0
    driver = TapDriver(
        f"ws://127.0.0.1:{procs.port}/",
        fleet,
        card_ids,
        keys,
        rate=rate,
        duration=duration,
        seed=seed * 100_003 + n,
        drain_s=DRAIN_S,
        keep_approved=True,
        tap_prefix=prefix,
    )
    box: dict[str, DriverResult] = {}
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            box["r"] = asyncio.run(driver.run())
        except BaseException as exc:  # reported below, with the round it ended
            failure.append(exc)

    runner = threading.Thread(target=drive, daemon=True)
    runner.start()
    for kind, gap in zip(kills, gaps, strict=True):
        time.sleep(gap)
        procs.kill(kind)
        if kind == "gateway":
            totals.gateway_kills += 1
        else:
            totals.redis_kills += 1
    runner.join(ROUND_TIMEOUT_S)
    if failure:
        raise RuntimeError(f"round {n}: the load failed: {failure[0]!r}") from failure[0]
    if runner.is_alive() or "r" not in box:
        raise RuntimeError(f"round {n}: the load did not finish within {ROUND_TIMEOUT_S} s")
    result = box["r"]
    procs.redis.wait_until_loaded()
    auditor = Auditor(seed, openings, tap_prefix=prefix)
    report = asyncio.run(_audit(procs.redis.url, auditor, result, operators))
    totals.rounds += 1
    totals.taps += result.taps_sent
    totals.approved += result.approved
    totals.declined += result.declined
    totals.unresolved += result.errors
    totals.signature_failures += result.signature_failures
    totals.reconnects += result.reconnects
    totals.add_audit(report)


def add_chaos_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "chaos",
        help="kill -9 the gateway and Redis at random moments under load, and audit the money",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--gateway-kills", type=int, default=10)
    p.add_argument("--redis-kills", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--terminals", type=int, default=30)
    p.add_argument("--cards", type=int, default=200)
    p.add_argument("--rate", type=float, default=150.0, help="taps per second (open loop)")
    p.add_argument("--round-kills", type=int, default=ROUND_KILLS, help="kills per audited round")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where Redis and the gateway keep their files (default: a temporary "
        "directory, removed at the end)",
    )
    p.set_defaults(func=chaos_command)


def chaos_command(args: argparse.Namespace) -> int:
    if args.gateway_kills < 0 or args.redis_kills < 0 or args.round_kills < 1:
        print("kills must be >= 0 and --round-kills >= 1", file=sys.stderr)
        return 2
    totals = run_chaos(
        gateway_kills=args.gateway_kills,
        redis_kills=args.redis_kills,
        seed=args.seed,
        terminals=args.terminals,
        cards=args.cards,
        rate=args.rate,
        round_kills=args.round_kills,
        data_dir=args.data_dir,
    )
    for line in totals.examples:
        print(line)
    print(
        f"rounds={totals.rounds} declined={totals.declined} unresolved={totals.unresolved} "
        f"reconnects={totals.reconnects} signature_failures={totals.signature_failures} "
        f"other_differences={totals.other_differences} "
        f"gateway_tracebacks={totals.gateway_tracebacks}"
    )
    print(totals.line())
    return 0 if totals.ok else 1
