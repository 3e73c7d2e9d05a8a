"""`citycard sim`: provision a seeded fleet, drive it open loop (in one or several processes),
and summarise the run as the JSON result load testers compare between runs.

Without `--url` it starts a gateway of its own (embedded Redis, its own keys) in a child
process, so the gateway and the load client do not share a core.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from gateway.provisioning import gateway_keys
from gateway.store.redis_server import RedisServer, free_port
from gateway.store.redis_store import RedisStore
from terminal_sim.driver import DriverResult, TapDriver
from terminal_sim.fleet import make_cards, make_fleet, provision

#: A client process using more than this share of one core is taken to be the bottleneck.
CLIENT_CPU_BOUND_SHARE = 0.9
#: ... as is one whose sends ran this late at the 99th percentile (ms) while it was busy
#: (more than CLIENT_BUSY_SHARE of a core). Late sends from a mostly idle client mean the
#: machine's cores were taken by others (the gateway, Redis, other jobs): `client_starved`.
CLIENT_SEND_LAG_P99_MS = 5.0
CLIENT_BUSY_SHARE = 0.5
#: Lines a starting gateway may print before "listening" (more: it is taken to have failed).
START_LOG_LINES = 50


def client_bottleneck(
    cpu_shares: list[float], lag_p99_ms: float, *, open_loop: bool = True
) -> tuple[bool, bool]:
    """(client_cpu_bound, client_starved) from each client process's CPU share of a core while
    sending and the p99 of how late its sends ran (open loop only)."""
    busiest = max(cpu_shares, default=0.0)
    late = open_loop and lag_p99_ms > CLIENT_SEND_LAG_P99_MS
    bound = busiest > CLIENT_CPU_BOUND_SHARE or (late and busiest > CLIENT_BUSY_SHARE)
    return bound, late and not bound


@dataclass(frozen=True)
class SimSpec:
    url: str
    terminals: int
    cards: int
    rate: float
    duration: float
    seed: int
    processes: int = 1
    drain_s: float = 10.0


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass


def _worker(spec: SimSpec, index: int, keys: dict[str, str], run_tag: str) -> DriverResult:
    """One client process's share: every `processes`-th terminal, rate / processes. Tap ids
    carry `run_tag`, so a second run against the same gateway never reuses one."""
    _install_uvloop()
    fleet = make_fleet(spec.terminals, spec.seed)[index :: spec.processes]
    cards = make_cards(spec.cards, spec.seed)
    driver = TapDriver(
        spec.url,
        fleet,
        cards,
        keys,
        rate=spec.rate / spec.processes,
        duration=spec.duration,
        seed=spec.seed * 1000 + index,
        drain_s=spec.drain_s,
        tap_prefix=f"s{spec.seed}{run_tag}w{index}",
    )
    return asyncio.run(driver.run())


def drive(spec: SimSpec, keys: dict[str, str]) -> tuple[DriverResult, list[float]]:
    """Run the load; returns the merged result and each process's CPU share while sending."""
    run_tag = f"x{secrets.token_hex(3)}"
    if spec.processes == 1:
        parts = [_worker(spec, 0, keys, run_tag)]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(spec.processes) as pool:
            args = [(spec, i, keys, run_tag) for i in range(spec.processes)]
            parts = pool.starmap(_worker, args)
    total = DriverResult()
    for p in parts:
        total.merge(p)
    return total, [p.cpu_s / p.wall_s if p.wall_s else 0.0 for p in parts]


def summarise(spec: SimSpec, r: DriverResult, cpu_shares: list[float]) -> dict[str, Any]:
    decided = r.approved + r.declined
    h = r.hist
    lag_p99 = r.send_lag.p99_ms() if r.send_lag.count else 0.0
    return {
        "taps_sent": r.taps_sent,
        "approved": r.approved,
        "declined": r.declined,
        "errors": r.errors,
        "signature_failures": r.signature_failures,
        "taps_per_s": round(decided / r.wall_s, 1) if r.wall_s else 0.0,
        "p50_ms": h.p50_ms() if h.count else None,
        "p99_ms": h.p99_ms() if h.count else None,
        "p999_ms": h.p999_ms() if h.count else None,
        "max_ms": h.max_ms() if h.count else None,
        "rate_target": spec.rate,
        "duration_s": spec.duration,
        "terminals": spec.terminals,
        "cards": spec.cards,
        "seed": spec.seed,
        "processes": spec.processes,
        "retries": r.retries,
        "reconnects": r.reconnects,
        "error_codes": r.error_codes,
        "declines": r.declines,
        "client_cpu_share": [round(c, 3) for c in cpu_shares],
        "client_send_lag_p99_ms": lag_p99,
        "client_cpu_bound": client_bottleneck(cpu_shares, lag_p99)[0],
        "client_starved": client_bottleneck(cpu_shares, lag_p99)[1],
    }


async def provision_fleet(redis_url: str, terminals: int, cards: int, seed: int) -> None:
    async with RedisStore.connect(redis_url) as store:
        await provision(store, make_fleet(terminals, seed), make_cards(cards, seed))


def start_gateway_process(
    port: int,
    redis_url: str,
    data_dir: Path,
    tariff: Path | None = None,
    options: Sequence[str] = (),
    log: Path | None = None,
) -> subprocess.Popen[str]:
    """The gateway (`python -m gateway`) as a child process; returns once it listens.
    `options`: more of its command-line options; `log`: a file its output is appended to."""
    extra = ["--tariff", str(tariff)] if tariff is not None else []
    extra += list(options)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "--port",
            str(port),
            "--redis-url",
            redis_url,
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    # Log lines may come first (e.g. waiting for a Redis that is still loading its AOF).
    before: list[str] = []
    while True:
        line = proc.stdout.readline()
        if "listening" in line:
            break
        before.append(line)
        if not line or len(before) > START_LOG_LINES:
            stop_process(proc)
            raise RuntimeError(f"gateway did not start: {''.join(before)}{proc.stdout.read()}")
    # Keep draining its output so a chatty gateway never blocks on a full pipe.
    threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
    return proc


def _drain(stream: Any, log: Path | None = None) -> None:
    if log is None:
        for _ in stream:
            pass
        return
    with log.open("a") as f:
        for line in stream:
            f.write(line)


@contextmanager
def gateway_process(
    data_dir: Path,
    *,
    redis_url: str | None = None,
    appendfsync: str = "everysec",
    tariff: Path | None = None,
) -> Iterator[tuple[str, str]]:
    """A `citycard serve` child process (and a Redis of its own if none is given);
    yields (ws url, redis url)."""
    port = free_port()
    with contextlib_exit() as stack:
        if redis_url is None:
            redis = RedisServer(data_dir=data_dir / "redis", appendfsync=appendfsync).start()
            stack.append(redis.stop)
            redis_url = redis.url
        proc = start_gateway_process(port, redis_url, data_dir, tariff)
        stack.append(lambda: stop_process(proc))
        yield f"ws://127.0.0.1:{port}/", redis_url


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def contextlib_exit() -> Iterator[list[Any]]:
    callbacks: list[Any] = []
    try:
        yield callbacks
    finally:
        for cb in reversed(callbacks):
            cb()


def run_sim(spec: SimSpec, redis_url: str) -> dict[str, Any]:
    anyio.run(provision_fleet, redis_url, spec.terminals, spec.cards, spec.seed)
    keys = gateway_keys(redis_url)
    if not keys:
        raise RuntimeError("the gateway has published no signing key in Redis")
    result, shares = drive(spec, keys)
    return summarise(spec, result, shares)


def run_sim_standalone(spec: SimSpec) -> dict[str, Any]:
    """`citycard sim` without --url: a gateway of its own, in a child process."""
    with (
        tempfile.TemporaryDirectory(prefix="citycard-sim-") as tmp,
        gateway_process(Path(tmp)) as (url, redis_url),
    ):
        time.sleep(0.1)
        return run_sim(SimSpec(**{**spec.__dict__, "url": url}), redis_url)


def env_redis_url() -> str | None:
    return os.environ.get("REDIS_URL")
