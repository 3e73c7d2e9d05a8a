"""Argument handling of `citycard sim` (the parser itself lives in gateway.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from terminal_sim.run import SimSpec, run_sim, run_sim_standalone


def run_sim_cli(args: argparse.Namespace) -> int:
    spec = SimSpec(
        url=args.url or "",
        terminals=args.terminals,
        cards=args.cards,
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        processes=args.processes,
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
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if result["client_cpu_bound"]:
        print("warning: the load client was CPU-bound; use --processes N", file=sys.stderr)
    return 0 if result["errors"] == 0 and result["signature_failures"] == 0 else 1
