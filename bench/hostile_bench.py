"""Hostile connections against a gateway in its own process (with its own Redis), measured:

1. memory: the gateway's RSS before and after N websocket connections that upgrade and then
   say nothing (pre-`hello`), per connection; then how many are still open after the
   handshake deadline (they must all be closed);
2. honest latency: an open-loop `citycard sim` fleet (lean client, latency from the intended
   send time) alone, and again while an attacker keeps the gateway's pre-authentication table
   full (new silent connections as fast as they are dropped, plus connections that send junk
   frames), alternating (alone, attacked, alone, attacked, ...) so drift falls on both. Prints
   p50/p99/p99.9 of each and the attacked/alone p99 ratio as JSON.

    python bench/hostile_bench.py --idle 2000 --rate 500 --duration 10 --pairs 2

Only 127.0.0.1; every loop is bounded (by --duration and the counts).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# The same open-loop fleet (`citycard sim`, lean client) as the control-room benchmark.
from control_room_bench import _fleet as fleet

from gateway.config import GatewayConfig
from gateway.store.redis_server import RedisServer, free_port
from terminal_sim.run import start_gateway_process, stop_process

UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
#: The attacker's source addresses (loopback aliases): honest terminals come from 127.0.0.1,
#: as they would from their own addresses in the field.
ATTACKERS = [f"127.0.0.{i}" for i in range(2, 10)]
#: A masked text frame carrying junk (not JSON): each one earns a fatal `malformed`.
JUNK_FRAME = bytes([0x81, 0x80 | 4]) + b"\0\0\0\0" + b"junk"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def silent_ws(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A websocket from `source` that completes the upgrade and then says nothing; None if
    refused."""
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        key = base64.b64encode(os.urandom(16)).decode()
        w.write(UPGRADE.format(key=key).encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        return None
    if not head.startswith(b"HTTP/1.1 101"):
        w.close()
        return None
    return r, w


async def memory_phase(port: int, pid: int, n: int, deadline_s: float) -> dict[str, Any]:
    before = rss_kb(pid)
    conns = []
    sem = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        async with sem:
            # Spread over addresses, below the per-address cap, to measure many at once.
            c = await silent_ws(port, f"127.0.1.{1 + i // 200}")
            if c is not None:
                conns.append(c)

    await asyncio.gather(*(one(i) for i in range(n)))
    opened_at = time.monotonic()
    await asyncio.sleep(0.5)
    after = rss_kb(pid)
    per_conn = (after - before) * 1024 / max(1, len(conns))
    await asyncio.sleep(max(0.0, deadline_s + 1.5 - (time.monotonic() - opened_at)))
    still_open = 0
    for r, _ in conns:
        try:
            data = await asyncio.wait_for(r.read(4096), 0.01)
            while data:  # the timeout error frame, then the close
                data = await asyncio.wait_for(r.read(4096), 0.01)
        except TimeoutError:
            still_open += 1
        except OSError:
            pass
    for _, w in conns:
        w.close()
    return {"silent_connections": len(conns), "rss_before_kb": before, "rss_after_kb": after,
            "bytes_per_silent_connection": round(per_conn),
            "open_after_deadline": still_open, "deadline_s": deadline_s}


async def attacker(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """From ATTACKERS: open silent connections as fast as the gateway admits them (each
    address up to its cap) and send junk frames, until `stop`."""
    held: list[asyncio.StreamWriter] = []

    async def flood(source: str) -> None:
        while not stop.is_set():
            c = await silent_ws(port, source)
            if c is None:
                counts["refused"] += 1
                await asyncio.sleep(0.001)
                continue
            counts["opened"] += 1
            held.append(c[1])
            if len(held) > 6000:
                held.pop(0).close()

    async def junk(source: str) -> None:
        while not stop.is_set():
            c = await silent_ws(port, source)
            if c is None:
                await asyncio.sleep(0.001)
                continue
            c[1].write(JUNK_FRAME)
            counts["junk"] += 1
            c[1].close()

    tasks = [asyncio.create_task(flood(ATTACKERS[i % len(ATTACKERS)])) for i in range(20)]
    tasks += [asyncio.create_task(junk(ATTACKERS[i])) for i in range(5)]
    await asyncio.to_thread(stop.wait)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for w in held:
        w.close()


def attacked(url: str, redis_url: str, port: int, args: argparse.Namespace,
             out: Path) -> tuple[dict[str, Any], dict[str, int]]:
    stop = threading.Event()
    counts = {"opened": 0, "refused": 0, "junk": 0}
    th = threading.Thread(target=lambda: asyncio.run(attacker(port, stop, counts)), daemon=True)
    th.start()
    time.sleep(2.0)  # let the table fill
    try:
        return fleet(url, redis_url, args, out), counts
    finally:
        stop.set()
        th.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=2000, help="silent connections to hold")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--terminals", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        redis = RedisServer(data_dir=data / "redis").start()
        port = free_port()
        gw = start_gateway_process(port, redis.url, data)
        url = f"ws://127.0.0.1:{port}/"
        try:
            deadline_s = GatewayConfig().handshake_timeout_s
            memory = asyncio.run(memory_phase(port, gw.pid, args.idle, deadline_s))
            fleet(url, redis.url, args, data / "warm.json")  # warm-up, not counted
            runs: dict[str, list[dict[str, Any]]] = {"alone": [], "attacked": []}
            attack_counts = []
            for _ in range(args.pairs):
                runs["alone"].append(fleet(url, redis.url, args, data / "alone.json"))
                result, counts = attacked(url, redis.url, port, args, data / "attacked.json")
                runs["attacked"].append(result)
                attack_counts.append(counts)
        finally:
            stop_process(gw)
            redis.stop()

    def fig(mode: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[mode]))

    summary: dict[str, Any] = {f"{m}_{k}": fig(m, k) for m in runs
                               for k in ("p50_ms", "p99_ms", "p999_ms", "taps_per_s")}
    summary["p99_ratio"] = round(summary["attacked_p99_ms"] / summary["alone_p99_ms"], 2)
    summary["errors"] = sum(r["errors"] for m in runs for r in runs[m])
    summary["client_cpu_bound"] = any(r["client_cpu_bound"] for m in runs for r in runs[m])
    summary["attack"] = attack_counts
    print(json.dumps({"memory": memory, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
