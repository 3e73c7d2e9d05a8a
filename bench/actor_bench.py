"""Throughput of ActorRegistry.ask: asks/s with many concurrent askers over many keys.

    python bench/actor_bench.py                      # asyncio + uvloop, 1000 keys, 1000 askers
    python bench/actor_bench.py --backend trio
    python bench/actor_bench.py --no-uvloop --keys 100 --askers 2000 --seconds 5

Each asker loops ``await registry.ask(key, n)`` over its own stride of keys; the actor's handler
is trivial (adds to a counter), so the figure is the runtime's own per-message cost: envelope,
mailbox, wake-up, reply (with --keys >= --askers every ask wakes an idle actor: the worst case).
Single process, single core; prints the best and the median of --rounds rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import sniffio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.runtime import ActorRegistry


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


async def run(
    keys: int, askers: int, seconds: float, rounds: int, ask_timeout: float | None
) -> dict[str, Any]:
    registry: ActorRegistry[int, int, int] = ActorRegistry(Counter, name="bench", mailbox_size=1024)
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
        backend=args.backend,
        backend_options=options,
    )
    rates = sorted(result["rates"])
    best, median = rates[-1], statistics.median(rates)
    print(
        f"{label} ({result['loop']}): {args.keys} keys, {args.askers} askers, "
        f"timeout={args.timeout}: best {best:,.0f} asks/s ({1e6 / best:.1f} us/ask), "
        f"median {median:,.0f} asks/s over {len(rates)} x {args.seconds:g} s"
    )
    stats = result["stats"]
    print(f"  activations={stats['activations']} messages={stats['messages']:,}")


if __name__ == "__main__":
    main()
