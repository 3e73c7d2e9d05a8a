"""Argument handling of `citycard sim` (the parser itself lives in ops.cli).

Without `--city`: the issue-2 fleet run (fixed rate, open loop, `terminal_sim.run`). With
`--city`: a simulated city (`terminal_sim.cityrun`), audited, with a live progress line, a final
table, an HTML report and an optional comparison with an earlier result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from terminal_sim.run import SimSpec, run_sim, run_sim_standalone

FLEET_DEFAULTS = {"terminals": 100, "cards": 1000, "rate": 500.0, "duration": 10.0}
CITY_POPULATION = 20_000


def _emit(result: dict[str, Any], args: argparse.Namespace) -> None:
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if args.json:
        Path(args.json).write_text(text + "\n")
    brief = {k: v for k, v in result.items() if k != "timeline"}
    print(orjson.dumps(brief, option=orjson.OPT_INDENT_2).decode())


def _compare(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    if not args.compare:
        return []
    from terminal_sim.report import print_compare

    return print_compare(orjson.loads(Path(args.compare).read_bytes()), result)


def run_sim_cli(args: argparse.Namespace) -> int:
    if args.city:
        return run_city_cli(args)
    d = {
        k: getattr(args, k) if getattr(args, k) is not None else v
        for k, v in FLEET_DEFAULTS.items()
    }
    spec = SimSpec(
        url=args.url or "",
        terminals=int(d["terminals"]),
        cards=int(d["cards"]),
        rate=float(d["rate"]),
        duration=float(d["duration"]),
        seed=args.seed,
        processes=args.processes,
        drain_s=args.drain,
    )
    if args.url:
        if not args.redis_url:
            print(
                "citycard sim: --url needs --redis-url (or REDIS_URL) to enroll terminals",
                file=sys.stderr,
            )
            return 2
        result = run_sim(spec, args.redis_url)
    else:
        result = run_sim_standalone(spec)
    _emit(result, args)
    _compare(result, args)
    if result["client_cpu_bound"]:
        print("warning: the load client was CPU-bound; use --processes N", file=sys.stderr)
    return 0 if result["errors"] == 0 and result["signature_failures"] == 0 else 1


def run_city_cli(args: argparse.Namespace) -> int:
    from terminal_sim.cityrun import CitySpec, run_city, schedule_only
    from terminal_sim.report import print_final, write_html

    if args.url and not args.redis_url:
        print(
            "citycard sim: --url needs --redis-url (or REDIS_URL): the simulator enrolls its "
            "terminals, blocks cards and audits through the gateway's Redis",
            file=sys.stderr,
        )
        return 2
    spec = CitySpec(
        city=args.city,
        seed=args.seed,
        population=args.cards if args.cards is not None else CITY_POPULATION,
        terminals=args.terminals,
        speed=args.speed,
        rate=args.rate,
        profile=args.profile,
        duration_s=args.duration,
        start=args.start,
        load=args.load,
        processes=args.processes,
        think_ms=args.think_ms,
        drain_s=args.drain,
        url=args.url or "",
        redis_url=args.redis_url,
        progress=not args.no_progress,
        tariff=args.tariff,
    )
    if args.dry_run:
        print(orjson.dumps(schedule_only(spec), option=orjson.OPT_INDENT_2).decode())
        return 0
    summary, kind_tl, report = run_city(spec)
    _emit(summary, args)
    print_final(summary)
    for line in report.lines():
        print(line, file=sys.stderr)
    html_path = args.report or (Path(args.json).with_suffix(".html") if args.json else None)
    if html_path is not None:
        write_html(Path(html_path), summary, kind_tl)
        print(f"report: {html_path}", file=sys.stderr)
    _compare(summary, args)
    if summary["client_cpu_bound"]:
        print("warning: the load client was CPU-bound; use --processes N", file=sys.stderr)
    ok = (
        summary["errors"] == 0
        and summary["signature_failures"] == 0
        and summary["auditor_differences"] == 0
    )
    if not ok:
        print(
            f"citycard sim: FAILED (seed {spec.seed}; replay with the same arguments)",
            file=sys.stderr,
        )
    return 0 if ok else 1
