"""`citycard demo`: the whole system on one machine, on embedded defaults — Redis (embedded
unless `REDIS_URL` is set), the gateway in a child process, a simulated city tapping against it
(`citycard sim --city`, round after round, in a child process), and the control room in this
process, with an admin operator made for the occasion. It prints where to look and how to sign
in; Ctrl-C stops everything in order (city, control room, gateway, Redis), quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import anyio
import orjson
from redis.asyncio import Redis

from gateway.store.redis_server import RedisServer
from ops.control.operators import add_operator
from ops.control.room import ControlConfig, open_control_room
from terminal_sim.run import start_gateway_process

REPO: Final = Path(__file__).resolve().parents[1]
#: The city's tariff (venues, car parks, products it names) when the repository has it.
CITY_TARIFF: Final = REPO / "tariffs" / "city-2026.json"
CITY_STOPS: Final = REPO / "tariffs" / "gtfs" / "ctran-fares-v2" / "stops.txt"
DEMO_OPERATOR: Final = "demo"
#: Seconds a city round's child process gets to stop after SIGTERM.
STOP_TIMEOUT_S: Final = 10.0


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.config import default_data_dir

    p = sub.add_parser(
        "demo", help="gateway + simulated city + live control-room dashboard, on one machine"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="terminal endpoint (default 8765)")
    p.add_argument("--control-port", type=int, default=8780,
                   help="control room / dashboard (default 8780)")
    p.add_argument("--metrics-port", type=int, default=9108,
                   help="the gateway's /metrics (default 9108)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(),
                   help="embedded Redis and keys (default ./var)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                   help="use this Redis instead of an embedded one (default $REDIS_URL)")
    p.add_argument("--city", default="ctran", help="the simulated city (see citycard sim)")
    p.add_argument("--cards", type=int, default=2000, help="cardholders in the city")
    p.add_argument("--rate", type=float, default=40.0, help="average taps per second")
    p.add_argument("--profile", choices=("peak", "day", "spike"), default="day")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=0,
                   help="city rounds to play (0: until Ctrl-C)")
    p.set_defaults(func=cmd_demo)


#: GTFS files and their date columns (YYYYMMDD) that the demo's copy of the feed moves.
_DATED: Final = {
    "feed_info.txt": ("feed_start_date", "feed_end_date"),
    "calendar.txt": ("start_date", "end_date"),
    "calendar_dates.txt": ("date",),
}


def demo_tariff(data_dir: Path, today: dt.date) -> Path | None:
    """The shipped city tariff, with its GTFS feed copied into `data_dir` and every date in it
    moved forward by whole weeks so that the feed covers `today`.

    The real C-TRAN feed ends on 2026-01-10 and the gateway prices on the wall clock, so after
    that date every bus fare is declined `outside_validity`. The demo shows the city as it would
    run with a current feed: same fares, same weekdays, dates shifted (a holiday lands on
    another date). Production tariffs are never shifted: load a current feed instead."""
    if not CITY_TARIFF.exists():
        return None
    src = CITY_TARIFF.parent
    dst = data_dir / "demo-tariff"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "gtfs", dst / "gtfs")
    shutil.copy2(CITY_TARIFF, dst / CITY_TARIFF.name)
    for feed in (dst / "gtfs").iterdir():
        info = feed / "feed_info.txt"
        if not info.exists():
            continue
        start = _read_dates(info, ("feed_start_date",))
        if not start:
            continue
        weeks = max(0, (today - min(start)).days // 7)
        for name, columns in _DATED.items():
            path = feed / name
            if path.exists():
                path.write_text(_shift_dates(path.read_text("utf-8-sig"), columns, weeks * 7))
    return dst / CITY_TARIFF.name


def _read_dates(path: Path, columns: tuple[str, ...]) -> list[dt.date]:
    rows = csv.DictReader(io.StringIO(path.read_text("utf-8-sig")))
    return [dt.datetime.strptime(r[c], "%Y%m%d").date() for r in rows for c in columns if r.get(c)]


def _shift_dates(text: str, columns: tuple[str, ...], days: int) -> str:
    """A GTFS file's text with the dates in `columns` moved by `days`."""
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], lineterminator="\n")
    writer.writeheader()
    for row in reader:
        for c in columns:
            if row.get(c):
                moved = dt.datetime.strptime(row[c], "%Y%m%d").date() + dt.timedelta(days=days)
                row[c] = moved.strftime("%Y%m%d")
        writer.writerow(row)
    return out.getvalue()


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.launch import run_async
    from gateway.server import until_signalled

    args.data_dir = Path(args.data_dir).resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    args.tariff = demo_tariff(args.data_dir, dt.date.today())
    run_async(until_signalled, run_demo, args)
    return 0


@contextlib.contextmanager
def _redis(args: argparse.Namespace) -> Iterator[str]:
    if args.redis_url:
        yield args.redis_url
        return
    server = RedisServer(data_dir=args.data_dir / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


async def run_demo(args: argparse.Namespace) -> None:
    """`args.data_dir` is an existing absolute folder."""
    data_dir: Path = args.data_dir
    tariff: Path | None = args.tariff
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(_redis(args))
        gateway = start_gateway_process(
            args.port, redis_url, data_dir, tariff,
            options=["--host", args.host, "--metrics-port", str(args.metrics_port),
                     "--gateway-id", "demo-gateway", "--stats-interval", "0"],
        )
        stack.callback(_stop, gateway)
        client = Redis.from_url(redis_url)
        try:
            token = await add_operator(client, DEMO_OPERATOR, "admin", replace=True)
        finally:
            await client.aclose()
        # The city runs faster than the clock; the far-apart rule must judge travel times in
        # the city's own time, or every ride looks like a teleport.
        speed, wall_s = await anyio.to_thread.run_sync(_city_pace, args, tariff)
        config = ControlConfig(
            redis_url=redis_url, host=args.host, port=args.control_port, tariff_path=tariff,
            stops_path=CITY_STOPS if CITY_STOPS.exists() else None,
            silent_after_s=300.0, clock_scale=speed,
        )
        async with open_control_room(config) as room:
            url = f"ws://{args.host}:{args.port}/"
            print(f"citycard demo: gateway {url}  redis {redis_url}", flush=True)
            print(f"  control room: {room.url}  (metrics: "
                  f"http://{args.host}:{args.metrics_port}/metrics)", flush=True)
            print(f"  sign in with the operator token: {token}", flush=True)
            print(f"  city: {args.city}, {args.cards} cardholders, ~{args.rate:g} taps/s "
                  f"({args.profile}: {speed:.0f}x real time, a round in ~{wall_s:.0f} s); "
                  f"log: {data_dir / 'city.log'}; Ctrl-C stops", flush=True)
            await _play_city(args, url, redis_url, tariff, data_dir)


def _city_pace(args: argparse.Namespace, tariff: Path | None) -> tuple[float, float]:
    """(simulated seconds per wall second, wall seconds of one round) of the city the rounds
    will play: the simulator's own choice for these arguments."""
    from terminal_sim.cityrun import CitySpec, schedule_only

    plan = schedule_only(CitySpec(city=args.city, seed=args.seed, population=args.cards,
                                  rate=args.rate, profile=args.profile, tariff=tariff))
    return float(plan["speed"]), float(plan["wall_s"])


def _round_line(result: Path, code: int) -> str:
    """One line of the round's figures, from the simulator's JSON result."""
    try:
        r = orjson.loads(result.read_bytes())
        result.unlink()
    except (OSError, orjson.JSONDecodeError):
        return f"no result (simulator exit {code})"
    return (f"taps={r['taps_sent']} approved={r['approved']} declined={r['declined']} "
            f"errors={r['errors']} sig_failures={r['signature_failures']} "
            f"auditor_differences={r.get('auditor_differences', 'n/a')} p99_ms={r['p99_ms']}")


async def _play_city(
    args: argparse.Namespace, url: str, redis_url: str, tariff: Path | None, data_dir: Path
) -> None:
    """Round after round of the city's day (each with fresh tap ids), until cancelled."""
    cmd = [
        sys.executable, "-m", "ops.cli", "sim", "--city", args.city, "--url", url,
        "--redis-url", redis_url, "--cards", str(args.cards), "--rate", str(args.rate),
        "--profile", args.profile, "--seed", str(args.seed), "--no-progress",
    ]
    if tariff is not None:
        cmd += ["--tariff", str(tariff)]
    result = data_dir / "city-round.json"
    cmd += ["--json", str(result)]
    log = (data_dir / "city.log").open("a", encoding="utf-8")
    rounds = 0
    try:
        while args.rounds == 0 or rounds < args.rounds:
            rounds += 1
            started = time.monotonic()
            log.write(f"--- round {rounds}\n")
            log.flush()
            proc = await anyio.open_process(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
            )
            try:
                code = await proc.wait()
            finally:
                if proc.returncode is None:
                    with anyio.CancelScope(shield=True):
                        proc.terminate()
                        with anyio.move_on_after(STOP_TIMEOUT_S):
                            await proc.wait()
                        if proc.returncode is None:
                            proc.kill()
                            await proc.wait()
                await proc.aclose()
            print(f"  [round {rounds}] {_round_line(result, code)} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            if code != 0:
                await anyio.sleep(2.0)  # e.g. the gateway restarting: do not spin
    finally:
        log.close()
