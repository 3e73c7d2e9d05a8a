"""The control room's two promises, measured against a gateway in its own process:

``deny``: how long a card blocked from the control room takes to reach every connected
terminal. N lean terminal connections (default 1,000) hold the deny list; each round an admin
blocks a fresh card through the control room's HTTP API (the real path: role check, audit,
card state, signed deny list in Redis, the control channel, the gateway's push), and the time
from the request to each terminal's receipt of the new version is recorded. Prints the
per-round p100 (the last terminal) as p50 / p99 / max over the rounds, and all receipts' p50.

``subscribers``: tap latency with 50 live control-room subscribers, one of them never reading,
against none, at the same open-loop rate, runs alternating (none, 50, none, 50, ...) so that the
machine's drift falls on both. The fleet is `citycard sim` (lean client, latency from the
intended send time); the control room runs as `citycard control` in its own process.

    python bench/control_room_bench.py deny --terminals 1000 --rounds 30
    python bench/control_room_bench.py subscribers --rate 1000 --duration 10 --pairs 3

Only 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
from nacl.signing import SigningKey, VerifyKey
from redis.asyncio import Redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.provisioning import enroll_terminal, gateway_keys, issue_card  # noqa: E402
from gateway.store.redis_server import RedisServer, free_port  # noqa: E402
from gateway.store.redis_store import RedisStore  # noqa: E402
from gateway.wire import protocol as wire  # noqa: E402
from ops.control.operators import add_operator  # noqa: E402
from terminal_sim.deny_holder import DenyHolder  # noqa: E402
from terminal_sim.handshake import authenticate  # noqa: E402
from terminal_sim.run import start_gateway_process  # noqa: E402
from terminal_sim.wsclient import WsConnection, WsError, connect  # noqa: E402

#: Seconds a round waits for the last terminal before it counts as missed.
ROUND_TIMEOUT_S = 10.0
#: Concurrent connection attempts while the terminals connect.
CONNECT_CONCURRENCY = 100


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def key_of(tid: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"bench terminal {tid}".encode()).digest())


@contextlib.contextmanager
def system(data: Path, options: list[str]) -> Iterator[tuple[int, str]]:
    redis = RedisServer(data_dir=data / "redis").start()
    port = free_port()
    gw = start_gateway_process(port, redis.url, data, options=options)
    try:
        yield port, redis.url
    finally:
        gw.terminate()
        gw.wait(20)
        redis.stop()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds this process (the subscribers' client, not the fleet child) has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_control_room(redis_url: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "control", "--redis-url", redis_url, "--port",
         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the control room did not start")


# ---------------------------------------------------------------------------------- deny


class Holder:
    """One terminal connection keeping its deny list as a terminal does (every frame's
    signature checked); remembers when it came to hold each version."""

    def __init__(self, conn: WsConnection, tid: str, keys: dict[str, VerifyKey]) -> None:
        self.conn, self.tid, self.keys = conn, tid, keys
        self.deny = DenyHolder()
        self.arrived: dict[int, int] = {}

    async def read(self) -> None:
        with contextlib.suppress(WsError, ConnectionError):
            while True:
                msg = wire.decode_gateway_message(await self.conn.recv())
                if msg["type"] == wire.DENY_LIST and self.deny.receive(msg, self.keys):
                    self.arrived.setdefault(self.deny.version, time.perf_counter_ns())

    async def beat(self, every_s: float) -> None:
        with contextlib.suppress(WsError, ConnectionError):
            while not self.conn.closed:
                await asyncio.sleep(every_s)
                self.conn.send_text(wire.encode_heartbeat(int(time.time() * 1000)))


async def deny_bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, system(Path(tmp), ["--stats-interval", "0"]) as (
        port, redis_url
    ):
        ids = [f"bench-gate-{i:05d}" for i in range(args.terminals)]
        cards = [f"bench-card-{r:03d}" for r in range(args.rounds)]
        async with RedisStore.connect(redis_url) as store:
            for tid in ids:
                await enroll_terminal(store, tid, bytes(key_of(tid).verify_key).hex(),
                                      kind="gate", operator="metro", network="METRO")
            for card in cards:
                await issue_card(store, card, balance=1000)
        redis = Redis.from_url(redis_url)
        token = await add_operator(redis, "bench-admin", "admin", replace=True)
        await redis.aclose()
        keys = {k: VerifyKey(bytes.fromhex(v)) for k, v in gateway_keys(redis_url).items()}
        room, room_port = start_control_room(redis_url)
        try:
            holders: list[Holder] = []
            limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

            async def join(tid: str) -> None:
                async with limit:
                    conn = await connect("127.0.0.1", port)
                    welcome = await authenticate(conn, tid, key_of(tid))
                    holders.append(Holder(conn, tid, keys))
                    holders[-1].heartbeat_s = welcome["heartbeat_s"]  # type: ignore[attr-defined]

            t0 = time.perf_counter()
            await asyncio.gather(*(join(t) for t in ids))
            connect_s = time.perf_counter() - t0
            tasks = [asyncio.ensure_future(h.read()) for h in holders]
            tasks += [asyncio.ensure_future(h.beat(h.heartbeat_s / 2))  # type: ignore[attr-defined]
                      for h in holders]
            await asyncio.sleep(1.0)  # each holder has had its catch-up frame
            lasts: list[float] = []
            receipts: list[float] = []
            missed = 0
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{room_port}",
                headers={"Authorization": f"Bearer {token}", "X-Requested-With": "citycard"},
            ) as http:
                for r, card in enumerate(cards):
                    sent = time.perf_counter_ns()
                    resp = await http.post("/api/admin/block_card", json={
                        "card": card, "reason": "bench: propagation round",
                        "request_id": f"bench-{os.getpid()}-{r}"})
                    resp.raise_for_status()
                    version = int(resp.json()["result"]["deny_version"])
                    deadline = time.monotonic() + ROUND_TIMEOUT_S
                    # Polling only ends the round; each receipt time is taken on arrival.
                    while (time.monotonic() < deadline  # noqa: ASYNC110
                           and not all(version in h.arrived for h in holders)):
                        await asyncio.sleep(0.005)
                    got = [(h.arrived[version] - sent) / 1e6 for h in holders
                           if version in h.arrived]
                    missed += len(holders) - len(got)
                    receipts += got
                    lasts.append(max(got) if got else float("inf"))
                    await asyncio.sleep(0.2)
            for t in tasks:
                t.cancel()
            for h in holders:
                h.conn.abort()
        finally:
            room.terminate()
            room.wait(20)
    return {
        "terminals": len(holders), "rounds": len(lasts), "connect_s": round(connect_s, 2),
        "last_p50_ms": round(statistics.median(lasts), 2),
        "last_p99_ms": round(pct(lasts, 0.99), 2), "last_max_ms": round(max(lasts), 2),
        "receipt_p50_ms": round(statistics.median(receipts), 2), "missed": missed,
    }


# ----------------------------------------------------------------------------- subscribers


#: What the 49 reading subscribers ask for: a mix an operations centre would have open.
SUBSCRIPTIONS: list[dict[str, Any]] = (
    [{"stream": "taps"}] * 10
    + [{"stream": "taps", "declines": True}] * 10
    + [{"stream": "taps", "kind": k} for k in ("gate", "bus", "retail", "kiosk", "venue")] * 3
    + [{"stream": "health"}] * 7
    + [{"stream": "alerts"}] * 7
)


async def _subscriber(port: int, token: str, spec: dict[str, Any], counts: list[int],
                      stop: anyio.Event) -> None:
    conn = await connect("127.0.0.1", port, "/ws", headers={"Authorization": f"Bearer {token}"})
    conn.send_text(orjson.dumps({"subscribe": spec}))
    with contextlib.suppress(WsError, ConnectionError):
        while not stop.is_set():
            with anyio.move_on_after(0.5):
                await conn.recv()
                counts[0] += 1
    conn.abort()


async def _never_reading(port: int, token: str) -> asyncio.StreamWriter:
    """A websocket upgrade and an all-taps subscription, then nothing read, ever: the room's
    queue for it fills and drops, the TCP window closes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: the kernel holds little for it, so the room's queue fills.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
    payload = orjson.dumps({"subscribe": {"stream": "taps"}})
    writer.write(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
    await writer.drain()
    return writer


def _fleet(url: str, redis_url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, "-m", "ops.cli", "sim", "--url", url, "--redis-url", redis_url,
         "--terminals", str(args.terminals), "--cards", "5000", "--rate", str(args.rate),
         "--duration", str(args.duration), "--seed", "7", "--json", str(out)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return dict(json.loads(out.read_text()))


def subscribers_bench(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"none": [], "fifty": []}
    with tempfile.TemporaryDirectory() as tmp, system(Path(tmp), []) as (port, redis_url):
        url = f"ws://127.0.0.1:{port}/"

        async def token() -> str:
            redis = Redis.from_url(redis_url)
            try:
                return await add_operator(redis, "bench-viewer", "viewer", replace=True)
            finally:
                await redis.aclose()

        tok = anyio.run(token)
        room, room_port = start_control_room(redis_url)
        try:
            _fleet(url, redis_url, args, Path(tmp) / "warm.json")  # warm-up, not counted
            room_cpu, mine = cpu_s(room.pid), own_cpu_s()
            for _ in range(args.pairs):
                for mode in ("none", "fifty"):
                    out = Path(tmp) / f"{mode}.json"
                    if mode == "none":
                        result = _fleet(url, redis_url, args, out)
                        received = 0
                        dropped = 0
                    else:
                        result, received, dropped = anyio.run(
                            _with_subscribers, url, redis_url, args, out, room_port, tok,
                            backend_options={"use_uvloop": True})
                    result["sub_received"], result["room_dropped"] = received, dropped
                    result["room_cpu_s"] = round(cpu_s(room.pid) - room_cpu, 2)
                    result["subscribers_cpu_s"] = round(own_cpu_s() - mine, 2)
                    room_cpu, mine = cpu_s(room.pid), own_cpu_s()
                    runs[mode].append(result)
        finally:
            room.terminate()
            room.wait(20)

    def fig(mode: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[mode]))

    summary = {f"{m}_{k}": fig(m, k) for m in runs
               for k in ("p50_ms", "p99_ms", "p999_ms", "taps_per_s")}
    summary["fifty_received_per_run"] = fig("fifty", "sub_received")
    for m in runs:
        summary[f"{m}_room_cpu_s"] = fig(m, "room_cpu_s")
    summary["fifty_subscribers_cpu_s"] = fig("fifty", "subscribers_cpu_s")
    summary["fifty_room_dropped_per_run"] = fig("fifty", "room_dropped")
    summary["p99_ratio"] = round(summary["fifty_p99_ms"] / summary["none_p99_ms"], 2)
    summary["client_cpu_bound"] = any(r["client_cpu_bound"] for m in runs for r in runs[m])
    summary["errors"] = sum(r["errors"] for m in runs for r in runs[m])
    return {"summary": summary, "runs": runs}


async def _with_subscribers(url: str, redis_url: str, args: argparse.Namespace, out: Path,
                            room_port: int, tok: str) -> tuple[dict[str, Any], int, int]:
    counts = [0]
    stop = anyio.Event()
    silent = await _never_reading(room_port, tok)
    async with anyio.create_task_group() as tg:
        for spec in SUBSCRIPTIONS[:49]:
            tg.start_soon(_subscriber, room_port, tok, spec, counts, stop)
        await anyio.sleep(1.0)
        result = await anyio.to_thread.run_sync(_fleet, url, redis_url, args, out)
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{room_port}/metrics",
                                   headers={"Authorization": f"Bearer {tok}"})).text
        stop.set()
    silent.close()
    dropped = next((float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith("citycard_control_dropped_total")), 0.0)
    return result, counts[0], int(dropped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("deny")
    d.add_argument("--terminals", type=int, default=1000)
    d.add_argument("--rounds", type=int, default=30)
    s = sub.add_parser("subscribers")
    s.add_argument("--rate", type=float, default=1000.0)
    s.add_argument("--duration", type=float, default=10.0)
    s.add_argument("--terminals", type=int, default=200)
    s.add_argument("--pairs", type=int, default=3)
    for p in (d, s):
        p.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.what == "deny":
        result: dict[str, Any] = anyio.run(deny_bench, args, backend_options={"use_uvloop": True})
        line = result
    else:
        result = subscribers_bench(args)
        line = result["summary"]
    print(" ".join(f"{k}={v}" for k, v in line.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
