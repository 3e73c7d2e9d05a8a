"""Throughput of ActorRegistry.ask: asks/s with many concurrent askers over many keys.

    python bench/actor_bench.py                      # asyncio + uvloop, 1000 keys, 1000 askers
    python bench/actor_bench.py --backend trio
    python bench/actor_bench.py --no-uvloop --keys 100 --askers 2000 --seconds 5
    python bench/actor_bench.py --keys 20000 --askers 100 --linger 0
    python bench/actor_bench.py --runtime /tmp/runtime_old.py           # A/B another runtime.py

Each asker loops ``await registry.ask(key, n)`` over its own stride of keys; the actor's handler
is trivial (adds to a counter), so the figure is the runtime's own per-message cost: envelope,
mailbox, wake-up, reply (with --keys >= --askers every ask wakes an idle actor: the worst case).
Single process, single core; prints the best and the median of --rounds rounds.

Actors are served by a pool of worker tasks that end after ``--linger`` seconds without work
(``linger_s``); ``--linger 0`` ends a worker as soon as nothing is ready, so bursts pay for task
spawns. ``--runtime PATH`` loads ``ActorRegistry`` from another copy of ``actors/runtime.py``
(e.g. ``git show <rev>:actors/runtime.py > /tmp/runtime_old.py``) for A/B figures; ``--linger``
is ignored if that runtime has no ``linger_s``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import sniffio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.runtime import ActorRegistry


def load_registry_class(path: str | None) -> Any:
    if path is None:
        return ActorRegistry
    spec = importlib.util.spec_from_file_location("runtime_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ActorRegistry


class Counter:
    def __init__(self, key: int) -> None:
        self.key = key
        self.total = 0

    async def on_activate(self) -> None:
        pass

    async def handle(self, msg: int) -> int:
        self.total += msg
        return self.total

    async def on_passivate(self) -> None:
        pass


class YieldingCounter(Counter):
    """``handle`` suspends once (a checkpoint), as a real handler awaiting I/O would."""

    async def handle(self, msg: int) -> int:
        await anyio.lowlevel.checkpoint()
        self.total += msg
        return self.total


async def run(
    keys: int,
    askers: int,
    seconds: float,
    rounds: int,
    ask_timeout: float | None,
    linger_s: float,
    runtime: str | None,
    yielding: bool,
) -> dict[str, Any]:
    cls = load_registry_class(runtime)
    kwargs: dict[str, Any] = {"name": "bench", "mailbox_size": 1024}
    if "linger_s" in inspect.signature(cls).parameters:
        kwargs["linger_s"] = linger_s
    registry: ActorRegistry[int, int, int] = cls(YieldingCounter if yielding else Counter, **kwargs)
    rates: list[float] = []

    async def measure() -> None:
        done = 0
        stop = False

        async def asker(i: int) -> None:
            nonlocal done
            key = i % keys
            n = 0
            while not stop:
                await registry.ask(key, 1, timeout=ask_timeout)
                n += 1
                if askers < keys:
                    key = (key + askers) % keys
            done += n

        async with anyio.create_task_group() as tg:
            for i in range(askers):
                tg.start_soon(asker, i)
            start = time.perf_counter()
            await anyio.sleep(seconds)
            stop = True
        rates.append(done / (time.perf_counter() - start))

    async with registry:
        for k in range(keys):  # warm-up: activate every key once
            await registry.ask(k, 0)
        for _ in range(rounds):
            await measure()
        stats = registry.stats()
    loop = "trio"
    if sniffio.current_async_library() == "asyncio":
        import asyncio

        loop = type(asyncio.get_running_loop()).__module__
    return {"rates": rates, "stats": stats, "loop": loop}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    ap.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--askers", type=int, default=1000, help="concurrent asking tasks")
    ap.add_argument("--seconds", type=float, default=2.0, help="per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=None, help="pass timeout= to every ask")
    ap.add_argument("--linger", type=float, default=1.0, help="linger_s (default 1)")
    ap.add_argument("--runtime", default=None, help="path of another runtime.py to measure")
    ap.add_argument("--yielding", action="store_true", help="handle() suspends once per message")
    args = ap.parse_args()

    options: dict[str, Any] = {}
    label = args.backend
    if args.backend == "asyncio":
        options["use_uvloop"] = not args.no_uvloop
        label += "" if args.no_uvloop else "+uvloop"
    result = anyio.run(
        run,
        args.keys,
        args.askers,
        args.seconds,
        args.rounds,
        args.timeout,
        args.linger,
        args.runtime,
        args.yielding,
        backend=args.backend,
        backend_options=options,
    )
    rates = sorted(result["rates"])
    best, median = rates[-1], statistics.median(rates)
    print(
        f"{label} ({result['loop']}): {args.runtime or 'actors/runtime.py'}: {args.keys} keys, "
        f"{args.askers} askers, timeout={args.timeout}, linger={args.linger:g}"
        f"{', yielding handler' if args.yielding else ''}:\n"
        f"  best {best:,.0f} asks/s ({1e6 / best:.1f} us/ask), "
        f"median {median:,.0f} asks/s over {len(rates)} x {args.seconds:g} s"
    )
    stats = result["stats"]
    print(f"  activations={stats['activations']} messages={stats['messages']:,}")


if __name__ == "__main__":
    main()
