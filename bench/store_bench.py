"""Benchmark of `RedisStore.commit` with group commit, against a private redis-server.

Run: python bench/store_bench.py [--seconds 5] [--tasks 16,64,256] [--rate 2000,5000,8000]
                                 [--fsync everysec,always]

For each `appendfsync` setting it starts its own Redis (AOF on), then runs
- closed loop: N tasks, each committing to its own card as fast as acknowledgements come back
  (the throughput ceiling and the latency at that load), and
- open loop: commits started at a fixed rate whatever the latency (the latency a tap sees at that
  load), one task per commit as the gateway has one card actor per card.
It prints commits/s, batches, mean/max batch size, p50/p99/max commit latency and the CPU per
commit of this process and of redis-server (CPU figures hold even when the machine is busy with
other work; wall-clock figures do not, so the 1-minute load average is printed too).
The target: >= 5,000 commits/s with p99 well below 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis

from actors.card_store import CardWrite, StoreUnavailable
from gateway.store.redis_server import RedisServer
from gateway.store.redis_store import RedisStore

TARGET_PER_S = 5_000
TARGET_P99_MS = 25.0

# About the size of a real card state (balance, caps, a few remembered taps) and journal entry.
_STATE = orjson.dumps({
    "card": "c", "balance": 12_345, "status": "active", "category": "adult",
    "recent": [{"gate": f"g{i}", "ms": 1_767_225_600_000 + i, "product": "single"}
               for i in range(4)],
    "caps": {"daily": 700, "weekly": 2_900},
})
_RECORD = b"0" * 64 + b" " + b"x" * 180  # content hash + signed frame


@dataclass
class Card:
    card: str
    version: int = 0


def _write(c: Card, terminal: str, n: int) -> CardWrite:
    return CardWrite(
        card=c.card, expected_version=c.version, new_state=_STATE, terminal_id=terminal,
        tap_id=f"{c.card}-{n}", tap_record=_RECORD,
        journal={"time": 1_767_225_600_000 + n, "operator": "metro", "seq": n,
                 "result": "approved", "reason": "ok", "amount": 250, "balance": 12_095,
                 "product": "single", "tariff": "2026-01"},
        seq=n, tap_hash="0" * 64,
    )


FAILURES = [0]  # StoreUnavailable answers (each retried with the same tap id, as a terminal does)


async def _commit(store: RedisStore, c: Card, terminal: str, n: int,
                  latencies: list[float]) -> None:
    t0 = time.perf_counter()
    write = _write(c, terminal, n)
    while True:
        try:
            res = await store.commit(write)
            break
        except StoreUnavailable:
            FAILURES[0] += 1
    latencies.append(time.perf_counter() - t0)
    if res.status == "conflict":
        raise SystemExit(f"unexpected {res}")
    c.version = res.version


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _report(label: str, store: RedisStore, done: int, elapsed: float, cpu: float,
            redis_cpu: float, latencies: list[float], batches0: int, writes0: int,
            offered: int | None = None) -> None:
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    p50, p99 = q[49] * 1e3, q[98] * 1e3
    batches = store.stats.batches - batches0
    writes = store.stats.writes - writes0
    rate = done / elapsed
    verdict = ""
    if offered is not None and offered >= TARGET_PER_S:  # the target is about this load
        met = rate >= 0.98 * offered and p99 < TARGET_P99_MS
        verdict = "  [meets target]" if met else "  [MISSES TARGET]"
    print(f"  {label:<22} {rate:>8,.0f} commits/s  batches {batches:>6,}  "
          f"mean batch {writes / max(batches, 1):6.1f}  max {store.stats.max_batch:>4}  "
          f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {lat[-1] * 1e3:6.1f} ms  "
          f"cpu/commit {cpu / max(done, 1) * 1e6:4.0f} us"
          f" + redis {redis_cpu / max(done, 1) * 1e6:3.0f} us"
          f"  load {os.getloadavg()[0]:.1f}{verdict}"
          + (f"  {FAILURES[0]} StoreUnavailable (retried)" if FAILURES[0] else ""))
    FAILURES[0] = 0


async def closed_loop(store: RedisStore, r: redis.Redis, tasks: int, seconds: float,
                      tag: str, *, report: bool = True) -> None:
    latencies: list[float] = []
    counts = [0] * tasks
    deadline = time.perf_counter() + seconds
    b0, w0 = store.stats.batches, store.stats.writes
    store.stats.max_batch = 0

    async def worker(i: int) -> None:
        c = Card(f"{tag}-{i}")
        while time.perf_counter() < deadline:
            counts[i] += 1
            await _commit(store, c, f"t{i % 97}", counts[i], latencies)

    rcpu0, cpu0, t0 = _redis_cpu(r), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if report:
        _report(f"closed, {tasks} tasks", store, sum(counts), elapsed, cpu, _redis_cpu(r) - rcpu0,
                latencies, b0, w0)


async def open_loop(store: RedisStore, r: redis.Redis, rate: int, seconds: float,
                    tag: str) -> None:
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()
    b0, w0 = store.stats.batches, store.stats.writes
    store.stats.max_batch = 0
    total = int(rate * seconds)
    rcpu0, cpu0, t0 = _redis_cpu(r), time.process_time(), time.perf_counter()
    started = 0
    while started < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while started < due:
            c = Card(f"{tag}-{started}")  # a fresh card per commit: never a conflict
            task = asyncio.create_task(_commit(store, c, f"t{started % 97}", started, latencies))
            pending.add(task)
            task.add_done_callback(pending.discard)
            started += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*pending)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    _report(f"open, {rate}/s offered", store, total, elapsed, cpu, _redis_cpu(r) - rcpu0,
            latencies, b0, w0, offered=rate)


async def run(url: str, args: argparse.Namespace, fsync: str) -> None:
    r = redis.Redis.from_url(url)
    async with RedisStore.connect(url) as store:
        await closed_loop(store, r, 32, 0.5, f"warm-{fsync}", report=False)
        for n in args.tasks:
            await closed_loop(store, r, n, args.seconds, f"c{n}-{fsync}")
        for rate in args.rate:
            await open_loop(store, r, rate, args.seconds, f"o{rate}-{fsync}")
    r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--tasks", type=lambda s: [int(x) for x in s.split(",")],
                    default=[16, 64, 256])
    ap.add_argument("--rate", type=lambda s: [int(x) for x in s.split(",")],
                    default=[2000, 5000, 8000])
    ap.add_argument("--fsync", type=lambda s: s.split(","), default=["everysec", "always"])
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    for fsync in args.fsync:
        with tempfile.TemporaryDirectory() as tmp, \
                RedisServer(data_dir=Path(tmp), appendfsync=fsync) as server:
            print(f"appendfsync {fsync}:")
            if args.no_uvloop:
                asyncio.run(run(server.url, args, fsync))
            else:
                import uvloop
                uvloop.run(run(server.url, args, fsync))


if __name__ == "__main__":
    main()
