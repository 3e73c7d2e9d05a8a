"""`citycard bench`: the gateway against a bare websockets echo server, in one run, under the
same open-loop load client (terminal_sim.loadgen on the lean websocket client).

Both targets get the same ladder of offered rates; a rate counts as sustained when everything
sent was answered, the achieved rate is within 5 % of the offered one, and p99 (measured from the
intended send time) is within the budget. The summary compares the highest sustained rates and
ends with one line:

    gateway_taps_per_s=N p99_ms=X echo_msgs_per_s=N echo_p99_ms=X ratio=X
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from nacl.signing import VerifyKey

from gateway.keys.signing import verify_auth
from gateway.provisioning import gateway_keys
from gateway.store.redis_server import RedisServer, free_port
from gateway.wire import protocol as wire
from terminal_sim.fleet import SimTerminal, make_cards, make_fleet
from terminal_sim.handshake import authenticate
from terminal_sim.loadgen import JsonSeqMessages, LoadResult, LoadSpec, Target, run_multiprocess
from terminal_sim.run import provision_fleet, start_gateway_process, stop_process
from terminal_sim.wsclient import WsConnection

#: p99 budget (ms) for a rate to count as sustained.
P99_BUDGET_MS = 25.0
#: Share of the offered rate that must be achieved.
MIN_ACHIEVED_SHARE = 0.95
#: Offered rates tried, as multiples of --rate, for each target (stops at the first failure).
LADDER = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
#: Tap frames are about this size; the echo payload matches it.
TAP_FRAME_BYTES = 160


@dataclass(frozen=True)
class GatewayTaps:
    """Picklable message maker: tap i goes to the connection the load generator will send it on
    (process i % slots, connection (i // slots) % n), with that terminal's kind of tap."""

    fleet: tuple[tuple[str, str], ...]  # (terminal_id, op)
    cards: int
    slots: int
    run: str
    seq_base: int
    seed: int
    verify_keys: tuple[tuple[str, str], ...] = ()
    #: terminal_time of every tap: the run's start (within the gateway's plausibility window)
    terminal_time: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    _by_slot: list[list[tuple[str, str]]] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        self._by_slot.extend(list(self.fleet[s :: self.slots]) for s in range(self.slots))

    def make(self, i: int) -> tuple[Hashable, bytes]:
        part = self._by_slot[i % self.slots]
        _terminal_id, op = part[(i // self.slots) % len(part)]
        tap_id = f"{self.run}-{i}"
        card = f"sim{self.seed}-card-{(i * 7919) % self.cards:07d}"
        fields: dict[str, object] = {"amount": 250} if op in ("purchase", "topup") else {}
        frame = wire.encode_tap(
            self.seq_base + i + 1, tap_id, card, op, self.terminal_time, fields
        )
        return tap_id, frame

    def key(self, payload: bytes) -> Hashable:
        msg = orjson.loads(payload)
        if msg.get("type") != "auth":
            raise ValueError(msg.get("code"))  # counted as unmatched: the tap stays unanswered
        if self.verify_keys:
            keys = {k: VerifyKey(bytes.fromhex(v)) for k, v in self.verify_keys}
            if not verify_auth(keys, wire.auth_fields_from_message(msg), msg["sig"]):
                raise ValueError("bad signature")
        return str(msg["tap_id"])


@dataclass(frozen=True)
class Authenticate:
    """Picklable `Target.prepare`: hello / challenge / proof on every connection of a slot."""

    terminals: tuple[SimTerminal, ...]

    async def __call__(self, conns: Sequence[WsConnection], slot: int, slots: int) -> None:
        mine = self.terminals[slot::slots]
        for conn, t in zip(conns, mine, strict=True):
            await authenticate(conn, t.terminal_id, t.signing_key)


@dataclass
class Step:
    rate: float
    result: dict[str, Any]

    @property
    def sustained(self) -> bool:
        r = self.result
        return bool(
            r["lost"] == 0
            and r["unmatched"] == 0
            and r["errors"] == 0
            and r["achieved_rate"] >= MIN_ACHIEVED_SHARE * self.rate
            and r["p99_ms"] <= P99_BUDGET_MS
        )


def _ladder(
    name: str, target: Target, spec_for: Any, rates: Sequence[float], processes: int
) -> list[Step]:
    steps: list[Step] = []
    for k, rate in enumerate(rates):
        spec: LoadSpec = spec_for(k, rate)
        res: LoadResult = run_multiprocess(processes, target, spec)
        step = Step(rate, res.summary())
        steps.append(step)
        r = step.result
        print(
            f"  {name:8s} offered {rate:8.0f}/s  achieved {r['achieved_rate']:8.0f}/s  "
            f"p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:7.2f}  p99.9 {r['p99.9_ms']:7.2f}  "
            f"max {r['max_ms']:7.2f} ms  lost {r['lost'] + r['unmatched']}  "
            f"client cpu {r['client_cpu']:.0%}{'  CLIENT-BOUND' if r['client_cpu_bound'] else ''}"
            f"  {'ok' if step.sustained else 'NOT SUSTAINED'}",
            flush=True,
        )
        if not step.sustained:
            break
    return steps


def _best(steps: list[Step]) -> Step | None:
    ok = [s for s in steps if s.sustained]
    return ok[-1] if ok else None


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    rates = [args.rate * m for m in LADDER]
    conns, procs = args.terminals, args.processes
    out: dict[str, Any] = {"rates": rates, "terminals": conns, "processes": procs,
                           "duration_s": args.duration, "appendfsync": args.appendfsync}

    print("echo server (websockets, same event loop, compression off):", flush=True)
    port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "terminal_sim.echo_server", "--port", str(port)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        echo.stdout.readline()
        msgs = JsonSeqMessages(size=TAP_FRAME_BYTES)
        echo_steps = _ladder(
            "echo", Target("127.0.0.1", port, connections=conns),
            lambda k, rate: LoadSpec(rate=rate, duration=args.duration, make_message=msgs.make,
                                     reply_key=msgs.key, warmup=1.0),
            rates, procs)
    finally:
        stop_process(echo)

    print(f"gateway (embedded Redis, AOF appendfsync={args.appendfsync}):", flush=True)
    with tempfile.TemporaryDirectory(prefix="citycard-bench-") as tmp:
        redis = RedisServer(Path(tmp) / "redis", appendfsync=args.appendfsync).start()
        gw = None
        try:
            anyio.run(provision_fleet, redis.url, conns, args.cards, 1)
            port = free_port()
            gw = start_gateway_process(port, redis.local_url, Path(tmp))
            keys = gateway_keys(redis.url)
            fleet = make_fleet(conns, 1)
            make_cards(args.cards, 1)
            target = Target("127.0.0.1", port, connections=conns,
                            prepare=Authenticate(tuple(fleet)))
            fleet_ops = tuple((t.terminal_id, t.op) for t in fleet)

            def spec_for(k: int, rate: float) -> LoadSpec:
                taps = GatewayTaps(fleet_ops, args.cards, procs, f"b{k}", k * 10**9, 1,
                                   tuple(keys.items()) if args.verify else ())
                return LoadSpec(rate=rate, duration=args.duration, make_message=taps.make,
                                reply_key=taps.key, warmup=1.0)

            gw_steps = _ladder("gateway", target, spec_for, rates, procs)
        finally:
            if gw is not None:
                stop_process(gw)
            redis.stop()

    e, g = _best(echo_steps), _best(gw_steps)
    out["echo"] = [s.__dict__ for s in echo_steps]
    out["gateway"] = [s.__dict__ for s in gw_steps]
    g_rate = g.result["achieved_rate"] if g else 0.0
    e_rate = e.result["achieved_rate"] if e else 0.0
    out["summary"] = {
        "gateway_taps_per_s": round(g_rate),
        "p99_ms": g.result["p99_ms"] if g else None,
        "echo_msgs_per_s": round(e_rate),
        "echo_p99_ms": e.result["p99_ms"] if e else None,
        "ratio": round(g_rate / e_rate, 3) if e_rate else None,
        "echo_capped_by_ladder": bool(e and e is echo_steps[-1] and len(echo_steps) == len(rates)),
    }
    return out


def run_bench_cli(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    out = run_bench(args)
    s = out["summary"]
    if args.json:
        Path(args.json).write_text(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    if s["echo_capped_by_ladder"]:
        print("note: the echo server kept up with every offered rate; its real ceiling is higher")
    print(f"(bench took {time.monotonic() - t0:.0f} s)")
    print(f"gateway_taps_per_s={s['gateway_taps_per_s']} p99_ms={s['p99_ms']} "
          f"echo_msgs_per_s={s['echo_msgs_per_s']} echo_p99_ms={s['echo_p99_ms']} "
          f"ratio={s['ratio']}")
    return 0
