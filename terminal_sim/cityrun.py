"""`citycard sim --city ...`: build the city and its schedule, enroll the terminals and issue the
cards, play the schedule (in one or several processes), audit, and report.

    city   = build_city(--city, --seed, --terminals)
    sched  = build_schedule(city, population=--cards, profile, duration, start)   # pure, seeded
    warp   = simulated time -> wall time (--speed, or the speed that gives --rate; --load shape)
    plans  = one WorkerPlan per process (terminal i goes to process i % --processes)
    result = workers' TapLogs -> auditor (Redis) -> summary JSON, table, HTML

Tap ids are `<run tag>-<schedule index>`; the run tag is fresh per run so that replaying a seed
against the same Redis is a new set of taps (the gateway remembers tap ids for weeks), while
everything else about each tap is what the seed says.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import secrets
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from gateway.provisioning import enroll_terminal, gateway_keys, issue_card
from gateway.store.redis_store import RedisStore
from terminal_sim.auditor import Auditor, AuditReport, Seen
from terminal_sim.catalogue import load as load_catalogue
from terminal_sim.city import City, build_city
from terminal_sim.citydriver import (
    APPROVED,
    DECLINED,
    F_OUTAGE,
    FAILED,
    P_SIZE,
    P_T0_US,
    WorkerPlan,
    WorkerResult,
    run_worker,
)
from terminal_sim.kinds import KIND_ORDER
from terminal_sim.latency import LatencyHistogram
from terminal_sim.report import Progress, hist_summary, timeline
from terminal_sim.run import client_bottleneck
from terminal_sim.schedule import Schedule, Warp, build_schedule, parse_hhmm

PROVISION_CONCURRENCY = 64
LOADS = ("open", "ramp", "spike", "closed")


@dataclass(frozen=True)
class CitySpec:
    city: str = "ctran"
    seed: int = 1
    population: int = 20_000
    terminals: int | None = None
    speed: float = 1.0
    rate: float | None = None
    profile: str = "peak"
    duration_s: float | None = None
    start: str | None = None
    load: str = "open"
    processes: int = 1
    think_ms: float = 0.0
    drain_s: float = 15.0
    url: str = ""
    redis_url: str | None = None
    progress: bool = True
    #: the gateway's tariff file (venue, car park, product ids); None: the default tariff
    tariff: Path | None = None


def make_schedule(spec: CitySpec) -> tuple[City, Schedule]:
    city = build_city(spec.city, spec.seed, spec.terminals, catalogue=load_catalogue(spec.tariff))
    sched = build_schedule(
        city,
        seed=spec.seed,
        population=spec.population,
        profile=spec.profile,
        duration_s=spec.duration_s,
        start_s=parse_hhmm(spec.start) if spec.start else None,
    )
    return city, sched


def choose_speed(spec: CitySpec, sched: Schedule) -> float:
    """--rate R picks the speed at which the schedule offers R taps/s on average."""
    if spec.rate and sched.taps:
        natural = len(sched.taps) / (sched.duration_ms / 1000)
        return max(1e-3, spec.rate / natural)
    return spec.speed


def plans(
    spec: CitySpec,
    sched: Schedule,
    speed: float,
    url: str,
    keys: dict[str, str],
    redis_url: str | None,
    run_tag: str,
) -> list[WorkerPlan]:
    n = max(1, spec.processes)
    warp = Warp(
        sched.duration_ms, speed, "open" if spec.load in ("open", "closed") else spec.load
    ).mapper()
    city = sched.city
    out = [
        WorkerPlan(
            index=k,
            url=url,
            gateway_keys=keys,
            redis_url=redis_url,
            terminals=[t for t in city.terminals if t.index % n == k],
            taps=[],
            outages=[],
            blocks=[],
            run_tag=run_tag,
            mode="closed" if spec.load == "closed" else "open",
            closed_s=warp.wall_s,
            think_s=spec.think_ms / 1000,
            drain_s=spec.drain_s,
            sim_midnight_ms=city.midnight_ms(),
        )
        for k in range(n)
    ]
    for i, tap in enumerate(sched.taps):
        out[tap.terminal % n].taps.append((i, warp.wall(tap.t_ms - sched.start_ms), tap))
    for o in sched.outages:
        out[o.terminal % n].outages.append(
            (
                warp.wall(o.start_ms - sched.start_ms),
                warp.wall(o.end_ms - sched.start_ms),
                o.terminal,
            )
        )
    for b in sched.blocks:
        out[zlib.crc32(b.card.encode()) % n].blocks.append(
            (warp.wall(b.t_ms - sched.start_ms), b.card)
        )
    return out


async def provision(redis_url: str, sched: Schedule) -> None:
    """Enroll every terminal of the city and issue every registered card that taps (their
    opening balance and category), overwriting what an earlier run of the same seed left."""
    limiter = anyio.CapacityLimiter(PROVISION_CONCURRENCY)
    async with RedisStore.connect(redis_url) as store:

        async def term(i: int) -> None:
            t = sched.city.terminals[i]
            async with limiter:
                await enroll_terminal(
                    store,
                    t.terminal_id,
                    t.public_key_hex,
                    kind=t.kind,
                    operator=t.operator,
                    network=t.network,
                    location=t.location,
                )

        async def card(card: str, opening: int, category: str) -> None:
            async with limiter:
                await issue_card(store, card, balance=opening, category=category)

        async with anyio.create_task_group() as tg:
            for i in range(len(sched.city.terminals)):
                tg.start_soon(term, i)
            for c, h in sched.registered_cards().items():
                tg.start_soon(card, c, h.opening, h.category)


# ---------------------------------------------------------------------------- running workers


def _proc_main(
    plan: WorkerPlan, progress: Any, ready: Any, go: Any, start_at: Any, out: Any
) -> None:
    from terminal_sim.citydriver import CityDriver

    async def main() -> WorkerResult:
        d = CityDriver(plan, progress)
        await d.connect_all()
        ready.put(plan.index)
        while not go.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return await d.play(start_at.value)

    try:
        try:
            import uvloop

            result = uvloop.run(main())
        except ImportError:  # pragma: no cover
            result = asyncio.run(main())
        out.put(("ok", plan.index, result))
    except BaseException as exc:  # report, don't hang the parent
        out.put(("error", plan.index, f"{type(exc).__name__}: {exc}"))


def drive(plans_: list[WorkerPlan], counters: list[Any]) -> list[WorkerResult]:
    if len(plans_) == 1:
        return [run_worker(plans_[0], counters[0])]
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_proc_main, args=(p, counters[p.index], ready, go, start_at, out), daemon=True
        )
        for p in plans_
    ]
    for p in procs:
        p.start()
    results: dict[int, WorkerResult] = {}
    errors: list[str] = []
    try:
        waiting = len(procs)
        deadline = time.monotonic() + 300
        while waiting:
            with contextlib.suppress(Exception):
                ready.get(timeout=1.0)
                waiting -= 1
                continue
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                # a worker died while connecting: collect its error below
                break
        start_at.value = time.monotonic() + 0.2  # CLOCK_MONOTONIC is system-wide on Linux
        go.set()
        while len(results) + len(errors) < len(procs):
            try:
                status, idx, payload = out.get(timeout=5.0)
            except Exception:
                if not any(p.is_alive() for p in procs):
                    errors.append("a worker process exited without a result")
                    break
                continue
            if status == "ok":
                results[idx] = payload
            else:
                errors.append(f"worker {idx}: {payload}")
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
    if errors:
        raise RuntimeError("; ".join(errors))
    return [results[i] for i in sorted(results)]


# ---------------------------------------------------------------------------- audit + summary


def audit(
    sched: Schedule, results: list[WorkerResult], redis_url: str, run_tag: str
) -> AuditReport:
    city = sched.city
    openings = {c: h.opening for c, h in sched.registered_cards().items()}
    unknown = [c for c, h in sched.holders.items() if not h.registered]
    blocked = [c for r in results for c in r.blocks_done]
    auditor = Auditor(sched.seed, openings, tap_prefix=run_tag, blocked=blocked, unknown=unknown)
    names = {APPROVED: "approved", DECLINED: "declined", FAILED: "failed"}
    for r in results:
        log = r.log
        for row in log.rows():
            idx, res, reason, amount, balance, gt, _, _, _ = row
            tap = sched.taps[idx]
            term = city.terminals[tap.terminal]
            auditor.saw(
                Seen(
                    terminal_id=term.terminal_id,
                    tap_id=f"{run_tag}-{idx}",
                    card=tap.card,
                    result=names.get(res, "unresolved"),
                    reason=reason,
                    amount=amount,
                    balance=balance,
                    gateway_time=gt,
                    operator=term.operator,
                    detail=log.details.get(idx),
                )
            )

    async def go() -> AuditReport:
        async with RedisStore.connect(redis_url) as store:
            return await auditor.check(store)

    return anyio.run(go)


def summarise(
    spec: CitySpec,
    sched: Schedule,
    speed: float,
    results: list[WorkerResult],
    report: AuditReport | None,
    run_tag: str,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    city = sched.city
    kinds = [t.kind for t in city.terminals]
    overall, outage_h, send_lag = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    per_kind: dict[str, LatencyHistogram] = {}
    counts: dict[str, dict[str, int]] = {}
    done_all: list[int] = []
    lat_all: list[int] = []
    kind_tl_src: dict[str, tuple[list[int], list[int]]] = {}
    outage_delayed = 0
    declines_by_op: dict[str, int] = {}
    for r in results:
        send_lag.merge(r.send_lag)
        log = r.log
        for i in range(len(log)):
            kind = kinds[sched.taps[log.idx[i]].terminal]
            c = counts.setdefault(kind, {"taps": 0, "approved": 0, "declined": 0, "errors": 0})
            c["taps"] += 1
            res = log.result[i]
            if res == DECLINED:
                key = f"{sched.taps[log.idx[i]].op}:{log.reasons[log.reason[i]]}"
                declines_by_op[key] = declines_by_op.get(key, 0) + 1
            if res == APPROVED:
                c["approved"] += 1
            elif res == DECLINED:
                c["declined"] += 1
            else:
                c["errors"] += 1
                continue
            lat = log.latency_us[i]
            if log.flags[i] & F_OUTAGE:
                outage_delayed += 1
                outage_h.record_us(lat)
                continue
            overall.record_us(lat)
            per_kind.setdefault(kind, LatencyHistogram()).record_us(lat)
            done_all.append(log.done_ms[i])
            lat_all.append(lat)
            ktl = kind_tl_src.setdefault(kind, ([], []))
            ktl[0].append(log.done_ms[i])
            ktl[1].append(lat)
    taps_sent = sum(r.taps_sent for r in results)
    approved = sum(r.approved for r in results)
    declined = sum(r.declined for r in results)
    wall = max((r.wall_s for r in results), default=0.0)
    shares = [r.cpu_s / r.wall_s if r.wall_s else 0.0 for r in results]
    lag_p99 = send_lag.p99_ms() if send_lag.count else 0.0
    bound, starved = client_bottleneck(shares, lag_p99, open_loop=spec.load != "closed")
    error_codes: dict[str, int] = {}
    declines: dict[str, int] = {}
    for r in results:
        for src, dst in ((r.error_codes, error_codes), (r.declines, declines)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
    by_kind: dict[str, Any] = {}
    for kind in sorted(counts, key=lambda k: KIND_ORDER.index(k) if k in KIND_ORDER else 99):
        ops = list(
            dict.fromkeys(
                op
                for byk in sched.resolution.ops.values()
                for k, group in byk.items()
                if k == kind
                for op in group
            )
        )
        by_kind[kind] = {
            **counts[kind],
            **hist_summary(per_kind.get(kind, LatencyHistogram())),
            "ops": ops,
        }
    stats = sched.stats()
    sim_start_s = sched.start_ms // 1000
    summary: dict[str, Any] = {
        # -- the tap path issue's fields
        "taps_sent": taps_sent,
        "approved": approved,
        "declined": declined,
        "errors": sum(r.errors for r in results),
        "signature_failures": sum(r.signature_failures for r in results),
        "taps_per_s": round((approved + declined) / wall, 1) if wall else 0.0,
        **hist_summary(overall),
        # -- the run
        "mode": "city",
        "city": city.name,
        "city_source": city.source,
        "city_notes": city.notes,
        "seed": sched.seed,
        "profile": sched.profile,
        "load": spec.load,
        "speed": round(speed, 4),
        "sim_start": f"{sim_start_s // 3600:02d}:{sim_start_s % 3600 // 60:02d}",
        "sim_duration_s": sched.duration_ms / 1000,
        "wall_s": round(wall, 3),
        "duration_s": round(wall, 3),
        "rate_target": round(len(sched.taps) / (sched.duration_ms / 1000) * speed, 1)
        if sched.duration_ms
        else 0.0,
        "population": sched.population,
        "cards": len(sched.registered_cards()),
        "terminals": len(city.terminals),
        "terminals_by_kind": city.counts(),
        "processes": spec.processes,
        "schedule_taps": len(sched.taps),
        "schedule_digest": sched.digest(),
        "run_tag": run_tag,
        "ops_used": sched.resolution.describe(),
        "kinds_idle": list(sched.resolution.idle_kinds),
        "ops_skipped": list(sched.resolution.skipped),
        "by_kind": by_kind,
        "retries": sum(r.retries for r in results),
        "reconnects": sum(r.reconnects for r in results),
        "late_answers": sum(r.late_answers for r in results),
        "outages": sum(r.outages for r in results),
        "offline_taps": sum(r.offline_taps for r in results),
        "offline_approved": sum(r.offline_approved for r in results),
        "offline_uncollected": sum(r.offline_uncollected for r in results),
        "outage_delayed_taps": outage_delayed,
        "outage_p99_ms": outage_h.p99_ms() if outage_h.count else None,
        "blocks": sum(len(r.blocks_done) for r in results),
        "double_taps": stats["double_taps"],
        "unknown_card_taps": stats["unknown_card_taps"],
        "error_codes": error_codes,
        "declines": declines,
        "declines_by_op": dict(sorted(declines_by_op.items())),
        "client_cpu_share": [round(c, 3) for c in shares],
        "client_send_lag_p99_ms": lag_p99,
        "client_cpu_bound": bound,
        "client_starved": starved,
        "timeline": timeline(done_all, lat_all),
    }
    if report is not None:
        summary.update(report.summary())
    kind_tl = {k: timeline(d, lat) for k, (d, lat) in kind_tl_src.items()}
    return summary, kind_tl


# ---------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def own_gateway(tariff: Path | None = None) -> Iterator[tuple[str, str]]:
    from terminal_sim.run import gateway_process

    with (
        tempfile.TemporaryDirectory(prefix="citycard-sim-") as tmp,
        gateway_process(Path(tmp), tariff=tariff) as (url, redis_url),
    ):
        yield url, redis_url


def run_city(spec: CitySpec) -> tuple[dict[str, Any], dict[str, dict[str, Any]], AuditReport]:
    """Run the whole thing; returns (summary, per-kind timelines, audit report)."""
    if spec.load not in LOADS:
        raise ValueError(f"--load must be one of {', '.join(LOADS)}")
    _, sched = make_schedule(spec)
    speed = choose_speed(spec, sched)
    with contextlib.ExitStack() as stack:
        if spec.url:
            if not spec.redis_url:
                raise ValueError(
                    "--url needs --redis-url (to enroll terminals, block cards and audit)"
                )
            url, redis_url = spec.url, spec.redis_url
        else:
            url, redis_url = stack.enter_context(own_gateway(spec.tariff))
        anyio.run(provision, redis_url, sched)
        keys = gateway_keys(redis_url)
        if not keys:
            raise RuntimeError("the gateway has published no signing key in Redis")
        run_tag = f"r{sched.seed}x{secrets.token_hex(3)}"
        ps = plans(spec, sched, speed, url, keys, redis_url, run_tag)
        ctx = multiprocessing.get_context("spawn")
        counters = [ctx.Array("q", P_SIZE, lock=False) for _ in ps]
        wall = max((p.closed_s for p in ps), default=0.0)
        prog = Progress(
            lambda: (
                [sum(c[i] for c in counters) for i in range(P_T0_US)]
                + [max(c[P_T0_US] for c in counters)]
            ),
            len(sched.taps),
            wall,
            enabled=spec.progress,
        )
        prog.start()
        try:
            results = drive(ps, counters)
        finally:
            prog.stop()
        report = audit(sched, results, redis_url, run_tag)
    summary, kind_tl = summarise(spec, sched, speed, results, report, run_tag)
    return summary, kind_tl, report


def schedule_only(spec: CitySpec) -> dict[str, Any]:
    """The schedule's figures without running it (`--dry-run`)."""
    city, sched = make_schedule(spec)
    speed = choose_speed(spec, sched)
    return {
        "city": city.name,
        "city_source": city.source,
        "seed": sched.seed,
        "profile": sched.profile,
        "population": sched.population,
        "terminals_by_kind": city.counts(),
        "schedule_digest": sched.digest(),
        "speed": speed,
        "wall_s": sched.duration_ms / 1000 / speed,
        "ops_used": sched.resolution.describe(),
        "kinds_idle": list(sched.resolution.idle_kinds),
        **sched.stats(),
    }
