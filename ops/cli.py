"""The `citycard` command: every operator-facing sub-command in one parser. The gateway's own
(`serve`), the simulator's (`sim`, `bench`, `reader`, `chaos`) and the operators' (`demo`,
`control`, `operators`, `admin`, `watch`, `keys`, `cards`, `fares`, `tariff`, `export`, `report`,
`privacy`)
are wired in here; each lives with the package it belongs to."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import default_data_dir
from gateway.launch import add_serve_args, config_from_args, run_async


def _terminal_kinds() -> tuple[str, ...]:
    from gateway.tap_commands import KIND_OPS

    return tuple(KIND_OPS)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import serve_forever

    run_async(serve_forever, config_from_args(args))
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from terminal_sim.cli import run_sim_cli

    return run_sim_cli(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from terminal_sim.bench import run_bench_cli

    return run_bench_cli(args)


def cmd_keys(args: argparse.Namespace) -> int:
    from ops.admin_cli import keys_command

    return keys_command(args)


def cmd_cards(args: argparse.Namespace) -> int:
    from ops.admin_cli import cards_command

    return cards_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citycard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gateway")
    add_serve_args(p)
    p.set_defaults(func=cmd_serve)

    from ops.demo import add_demo_parser

    add_demo_parser(sub)

    from terminal_sim.chaos import add_chaos_parser

    add_chaos_parser(sub)

    from ops.privacy import add_privacy_parser

    add_privacy_parser(sub)

    p = sub.add_parser(
        "sim",
        help="drive simulated terminals (a fleet, or a whole city with --city) against a gateway",
        description="Without --city: a seeded fleet tapping at a fixed rate (open loop). With "
        "--city: a simulated city's day (docs/simulator.md), audited against Redis at the end.",
    )
    p.add_argument(
        "--url", default=None, help="gateway websocket URL (default: start a gateway of its own)"
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="the gateway's Redis, to enroll terminals and issue cards "
        "(needed with --url; default $REDIS_URL)",
    )
    p.add_argument(
        "--terminals", type=int, default=None,
        help="terminals (fleet: default 100; city: scales the city to about this many)",
    )
    p.add_argument(
        "--cards", type=int, default=None,
        help="cards (fleet: default 1000; city: cardholders in the population, default 20000)",
    )
    p.add_argument(
        "--rate", type=float, default=None,
        help="taps per second (fleet: default 500; city: picks the --speed giving this average)",
    )
    p.add_argument(
        "--duration", type=float, default=None,
        help="seconds (fleet: wall, default 10; city: SIMULATED, default by --profile)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--processes", type=int, default=1, help="client processes sharing the load")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    p.add_argument(
        "--city", default=None,
        help="simulate a city: ctran, mdot (GTFS feeds under ../shared/data/gtfs), a GTFS "
        "folder, or grid (generated)",
    )
    p.add_argument(
        "--profile", choices=("peak", "day", "spike"), default="peak",
        help="city: which part of the day (peak 07:30, day 05:00-24:00, spike 21:50 stadium)",
    )
    p.add_argument("--start", default=None, help="city: start of the window, HH:MM (local)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="city: simulated seconds per wall second"
    )
    p.add_argument(
        "--load", choices=("open", "ramp", "spike", "closed"), default="open",
        help="city: open loop at the city's pace; ramp 0.1x->2x; spike 5x for a tenth of the "
        "run; closed loop (each terminal sends its next tap when answered)",
    )
    p.add_argument("--think-ms", type=float, default=0.0, help="closed loop: pause between taps")
    p.add_argument(
        "--tariff", type=Path, default=None,
        help="city: the gateway's tariff file (names of venues, car parks, products); also "
        "given to the gateway the simulator starts",
    )
    p.add_argument("--report", type=Path, default=None, help="city: write an HTML report here")
    p.add_argument(
        "--compare", type=Path, default=None, help="compare the result with an earlier JSON result"
    )
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for late answers")
    p.add_argument(
        "--no-progress", action="store_true", help="no live progress line (city runs)"
    )
    p.add_argument(
        "--dry-run", action="store_true",
        help="city: build the city and its tap schedule, print their figures, send nothing",
    )
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("bench", help="gateway vs bare websockets echo server, same load client")
    p.add_argument("--rate", type=float, default=2500.0,
                   help="base offered rate; each target is tried at 0.5x..4x of it")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per step")
    p.add_argument("--terminals", type=int, default=500)
    p.add_argument("--cards", type=int, default=20000)
    p.add_argument("--processes", type=int, default=1, help="load client processes")
    p.add_argument("--appendfsync", choices=("always", "everysec", "no"), default="everysec")
    p.add_argument("--verify", action="store_true",
                   help="verify every signature in the load client (costs client CPU)")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("keys", help="gateway signing key and terminal keys")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    k = ksub.add_parser("generate", help="create the gateway signing key if it does not exist")
    k.add_argument("--data-dir", type=Path, default=default_data_dir())
    k = ksub.add_parser("show", help="print the gateway key id and public key")
    k.add_argument("--data-dir", type=Path, default=default_data_dir())
    k = ksub.add_parser(
        "new-terminal",
        help="make a terminal key pair (prints the seed: keep it on the terminal) and register it",
    )
    k.add_argument("terminal_id")
    k = ksub.add_parser("register", help="register a terminal's public key")
    k.add_argument("terminal_id")
    k.add_argument("--public-key", help="hex Ed25519 public key (with `register`)")
    for k in ksub.choices["new-terminal"], ksub.choices["register"]:
        k.add_argument("--kind", choices=_terminal_kinds(), required=True)
        k.add_argument("--operator", required=True)
        k.add_argument("--network", default="")
        k.add_argument("--location", default="")
    k = ksub.add_parser(
        "revoke", help="revoke a terminal: its live connection closes at once (audited)"
    )
    k.add_argument("terminal_id")
    k.add_argument("--reason", default="", help="why (recorded in the audit log)")
    k = ksub.add_parser(
        "enroll-handheld",
        help="a one-time code that enrolls one handheld app (e.g. a taxi driver's phone)",
        description="Prints a code the driver types into the app (the control room's "
        "/apps/KIND page); the app makes its own key and enrolls with it. Valid 15 minutes, "
        "once.",
    )
    k.add_argument("--kind", choices=("taxi", "kiosk", "inspector"), required=True)
    k.add_argument("--operator", required=True)
    k.add_argument("--network", default="")
    k.add_argument("--terminal-id", default=None, help="default: KIND-OPERATOR-<random>")
    k.add_argument("--ttl-s", type=int, default=15 * 60)
    for name in ("new-terminal", "register", "revoke", "enroll-handheld"):
        ksub.choices[name].add_argument(
            "--redis-url",
            default=os.environ.get("REDIS_URL"),
            required=os.environ.get("REDIS_URL") is None,
        )
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("cards", help="issue and inspect cards")
    csub = p.add_subparsers(dest="cards_command", required=True)
    c = csub.add_parser("issue", help="issue a card with an opening balance")
    c.add_argument("card")
    c.add_argument("--balance", type=int, default=0, help="minor units")
    c.add_argument("--category", default="adult")
    c.add_argument(
        "--card-key",
        default=None,
        help="the card's Ed25519 public key (hex): every tap must then carry its cryptogram",
    )
    c = csub.add_parser("show", help="print a card's state")
    c.add_argument("card")
    c = csub.add_parser("block", help="block a card")
    c.add_argument("card")
    for c in csub.choices.values():
        c.add_argument(
            "--redis-url",
            default=os.environ.get("REDIS_URL"),
            required=os.environ.get("REDIS_URL") is None,
        )
    p.set_defaults(func=cmd_cards)

    from ops.export_cli import add_export_parser
    from ops.fares_cli import add_fares_parser
    from ops.tariff_cli import add_tariff_parser

    add_fares_parser(sub)
    add_tariff_parser(sub)
    add_export_parser(sub)
    from terminal_sim.reader import add_reader_parser

    add_reader_parser(sub)
    from ops.control_cli import add_control_parsers

    add_control_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
