"""What resident idle actors cost the garbage collector: objects, bytes, collection pauses.

    python bench/actor_gc_bench.py                          # 50 000 idle actors, asyncio + uvloop
    python bench/actor_gc_bench.py --backend trio --actors 20000
    python bench/actor_gc_bench.py --runtime /tmp/runtime_old.py   # compare another runtime.py

Four phases, each on a fresh registry of ``--actors`` resident idle actors (each asked once, then
left alone for twice ``--linger``, so that no worker task is left):

1. **objects** -- ``len(gc.get_objects())`` delta per idle actor (the trivial actor instance
   included: one object), and the duration of a full ``gc.collect()`` (median and max of 7),
   not net of the empty process: the figure is what a gen2 collection of the process costs.
2. **bytes** -- ``tracemalloc`` delta per idle actor (instance included).
3. **live** -- ``--askers`` closed-loop askers hammer ``--hot`` other keys for ``--seconds``
   while the idle actors stay resident; prints ask latency percentiles and every automatic GC
   pause by generation (recorded with ``gc.callbacks``).
4. **taps** -- the gateway's shape: ``--terminals`` tasks tap *random* resident actors, open
   loop, ``--rate`` taps/s in all, each ``handle`` sleeping 1 ms (a Redis round trip); prints
   latency percentiles, the peak task count and the automatic GC pauses.

``--runtime PATH`` loads ``ActorRegistry`` from another copy of ``actors/runtime.py`` (e.g.
``git show HEAD~1:actors/runtime.py > /tmp/runtime_old.py``) for before/after figures;
``linger_s`` is passed only if that runtime accepts it.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


#: ``handle`` sleeps this long when the message is negative (stands for a Redis round trip).
HANDLER_SLEEP_S = 0.001


class Counter:
    __slots__ = ("key", "total")

    def __init__(self, key: int) -> None:
        self.key = key
        self.total = 0

    async def on_activate(self) -> None:
        pass

    async def handle(self, msg: int) -> int:
        if msg < 0:
            await anyio.sleep(HANDLER_SLEEP_S)
        self.total += 1
        return self.total

    async def on_passivate(self) -> None:
        pass


def load_runtime(path: str | None) -> ModuleType:
    if path is None:
        import actors.runtime

        return actors.runtime
    spec = importlib.util.spec_from_file_location("runtime_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_registry(runtime: ModuleType, linger_s: float) -> Any:
    kwargs: dict[str, Any] = {
        "name": "gcbench",
        "max_resident": 10_000_000,
        "idle_timeout_s": 3600.0,
        "mailbox_size": 1024,
    }
    if "linger_s" in inspect.signature(runtime.ActorRegistry).parameters:
        kwargs["linger_s"] = linger_s
    return runtime.ActorRegistry(Counter, **kwargs)


async def populate(registry: Any, n: int, linger_s: float) -> None:
    """Activate keys 0..n-1 (one ask each, 64 at a time), then wait for lingering to end."""

    async def batch(start: int) -> None:
        for key in range(start, n, 64):
            await registry.ask(key, 1)

    async with anyio.create_task_group() as tg:
        for start in range(64):
            tg.start_soon(batch, start)
    await anyio.sleep(linger_s * 2 + 0.2)
    assert registry.resident == n, registry.resident


def timed_full_collections(rounds: int = 7) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - start) * 1000)
    return times


def tasks_now() -> int:
    return len(anyio.get_running_tasks())


async def phase_objects(runtime: ModuleType, n: int, linger_s: float) -> dict[str, Any]:
    gc.collect()
    base_objects = len(gc.get_objects())
    base_gc = statistics.median(timed_full_collections())
    base_tasks = tasks_now()
    registry = make_registry(runtime, linger_s)
    async with registry:
        await populate(registry, n, linger_s)
        gc.collect()
        objects = len(gc.get_objects())
        tasks = tasks_now()
        full = timed_full_collections()
        start = time.perf_counter()
    shutdown_s = time.perf_counter() - start
    return {
        "objects_per_actor": (objects - base_objects) / n,
        "tasks": tasks - base_tasks,
        "gc_full_ms_median": statistics.median(full),
        "gc_full_ms_max": max(full),
        "gc_full_ms_empty": base_gc,
        "shutdown_s": shutdown_s,
        "passivations": registry.stats()["passivations"],
    }


async def phase_bytes(runtime: ModuleType, n: int, linger_s: float) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        registry = make_registry(runtime, linger_s)
        async with registry:
            await populate(registry, n, linger_s)
            gc.collect()
            used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return {"bytes_per_actor": (used - base) / n}


async def phase_live(
    runtime: ModuleType, n: int, linger_s: float, hot: int, askers: int, seconds: float
) -> dict[str, Any]:
    registry = make_registry(runtime, linger_s)
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1000)

    latencies: list[float] = []
    async with registry:
        await populate(registry, n, linger_s)
        gc.collect()
        stop = False

        async def asker(i: int) -> None:
            key = n + i % hot
            perf = time.perf_counter
            while not stop:
                t0 = perf()
                await registry.ask(key, 1)
                latencies.append(perf() - t0)
                key = n + (key - n + askers) % hot

        gc.callbacks.append(on_gc)
        try:
            async with anyio.create_task_group() as tg:
                for i in range(askers):
                    tg.start_soon(asker, i)
                await anyio.sleep(seconds)
                stop = True
        finally:
            gc.callbacks.remove(on_gc)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "asks": len(latencies),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": latencies[-1] * 1000,
        "pauses": {g: (len(v), max(v, default=0.0)) for g, v in pauses.items()},
    }


async def phase_taps(
    runtime: ModuleType, n: int, linger_s: float, rate: float, terminals: int, seconds: float
) -> dict[str, Any]:
    """Open loop: ``terminals`` tasks tap random resident cards, ``rate`` taps/s in all; each
    ``handle`` sleeps 1 ms (a Redis round trip). The gateway's shape: every actor mostly idle."""
    registry = make_registry(runtime, linger_s)
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1000)

    latencies: list[float] = []
    rng = random.Random(7)
    async with registry:
        await populate(registry, n, linger_s)
        gc.collect()
        stop = False
        peak_tasks = 0

        async def terminal() -> None:
            perf = time.perf_counter
            mean_gap = terminals / rate
            while not stop:
                await anyio.sleep(rng.expovariate(1 / mean_gap))
                t0 = perf()
                await registry.ask(rng.randrange(n), -1)
                latencies.append(perf() - t0)

        gc.callbacks.append(on_gc)
        start = time.perf_counter()
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(terminals):
                    tg.start_soon(terminal)
                for _ in range(int(seconds * 10)):
                    await anyio.sleep(0.1)
                    peak_tasks = max(peak_tasks, tasks_now())
                stop = True
        finally:
            gc.callbacks.remove(on_gc)
        wall = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "asks": len(latencies),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": latencies[-1] * 1000,
        "peak_tasks": peak_tasks,
        "wall_s": wall,
        "pauses": {g: (len(v), max(v, default=0.0), sum(v)) for g, v in pauses.items()},
    }


async def run(args: argparse.Namespace) -> None:
    runtime = load_runtime(args.runtime)
    label = args.runtime or "actors/runtime.py"
    print(f"runtime: {label}; {args.actors:,} idle actors; linger_s={args.linger}")
    obj = await phase_objects(runtime, args.actors, args.linger)
    print(
        f"  objects: {obj['objects_per_actor']:.1f} GC-tracked objects per idle actor "
        f"(instance included), {obj['tasks']} tasks; full gc.collect() "
        f"{obj['gc_full_ms_median']:.1f} ms median / {obj['gc_full_ms_max']:.1f} ms max "
        f"(empty registry: {obj['gc_full_ms_empty']:.1f} ms); "
        f"shutdown {obj['shutdown_s']:.2f} s ({obj['passivations']:,} passivations)"
    )
    if not args.skip_bytes:
        b = await phase_bytes(runtime, args.actors, args.linger)
        print(f"  bytes:   {b['bytes_per_actor']:.0f} bytes per idle actor (instance included)")
    if args.seconds > 0:
        live = await phase_live(
            runtime, args.actors, args.linger, args.hot, args.askers, args.seconds
        )
        pauses = ", ".join(
            f"gen{g}: {count} x, max {worst:.1f} ms" for g, (count, worst) in live["pauses"].items()
        )
        print(
            f"  live:    {live['asks']:,} asks on {args.hot} hot keys by {args.askers} askers in "
            f"{args.seconds:g} s: p50 {live['p50_ms']:.2f} ms, p99 {live['p99_ms']:.2f} ms, "
            f"p99.9 {live['p999_ms']:.2f} ms, max {live['max_ms']:.1f} ms"
        )
        print(f"           GC pauses: {pauses}")
    if args.rate > 0:
        taps = await phase_taps(
            runtime, args.actors, args.linger, args.rate, args.terminals, args.seconds
        )
        pauses = ", ".join(
            f"gen{g}: {count} x, max {worst:.1f} ms, total {total:.0f} ms"
            for g, (count, worst, total) in taps["pauses"].items()
        )
        print(
            f"  taps:    {taps['asks']:,} taps on random resident actors ({args.rate:g}/s from "
            f"{args.terminals} terminals, 1 ms handler) in {taps['wall_s']:.1f} s: "
            f"p50 {taps['p50_ms']:.2f} ms, p99 {taps['p99_ms']:.2f} ms, "
            f"p99.9 {taps['p999_ms']:.2f} ms, max {taps['max_ms']:.1f} ms; "
            f"up to {taps['peak_tasks']} tasks"
        )
        print(f"           GC pauses: {pauses}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    ap.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    ap.add_argument("--runtime", default=None, help="path of another runtime.py to measure")
    ap.add_argument("--actors", type=int, default=50_000, help="resident idle actors")
    ap.add_argument("--linger", type=float, default=1.0, help="linger_s, if supported")
    ap.add_argument("--hot", type=int, default=1000, help="keys asked in the live phase")
    ap.add_argument("--askers", type=int, default=100, help="closed-loop askers (live phase)")
    ap.add_argument("--seconds", type=float, default=5.0, help="live phase length; 0 skips it")
    ap.add_argument("--rate", type=float, default=2000.0, help="taps/s (taps phase); 0 skips")
    ap.add_argument("--terminals", type=int, default=200, help="tapping tasks (taps phase)")
    ap.add_argument("--skip-bytes", action="store_true", help="skip the tracemalloc phase")
    args = ap.parse_args()
    options: dict[str, Any] = {}
    if args.backend == "asyncio":
        options["use_uvloop"] = not args.no_uvloop
    anyio.run(run, args, backend=args.backend, backend_options=options)


if __name__ == "__main__":
    main()
