"""`citycard tariff check FILE`: validate a tariff file (and the GTFS feed it names), summarise it.

This module owns the `tariff` subcommand: it loads the file exactly as the gateway does
(gateway/tariffs/tariff_io.py), prints what the engine understood — version, currency and
limits, flat fares, the feed with its validity and networks, the categories and what they map
to, caps, products with prices and entitlements — and warns about what is legal but probably
unintended (a feed that expires before the tariff does, a flat network shadowed by a feed
network). Exit status: 0 valid, 1 invalid. `add_tariff_parser` hooks it into the main parser
of ops/cli.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from gateway.tariffs.tariff_io import TariffError, read_tariff
from policies import Tariff
from policies.gtfs import format_minor


def add_tariff_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `tariff check` on `subparsers`; returns the `tariff` parser."""
    p = subparsers.add_parser("tariff", help="check a tariff file (city products + GTFS feed)")
    sub = p.add_subparsers(dest="tariff_command", required=True)
    c = sub.add_parser("check", help="validate a tariff file and summarise what it contains")
    c.add_argument("file", metavar="FILE", help="tariff JSON file (docs/tariff.md)")
    c.set_defaults(func=cmd_tariff_check)
    return p


def _money(tariff: Tariff, amount: int) -> str:
    digits = tariff.transit.feed.minor_digits if tariff.transit.feed is not None else 2
    return f"{format_minor(amount, digits)} {tariff.currency}"


def warnings(tariff: Tariff) -> list[str]:
    """What is valid but probably not meant."""
    rules = tariff.transit
    out: list[str] = []
    feed = rules.feed
    if feed is not None:
        first, last = feed.validity()
        if last is not None and (rules.valid_until is None or rules.valid_until > last):
            out.append(
                f"the feed prices journeys until {last} only, the tariff is valid until "
                f"{rules.valid_until or 'open'}: GTFS legs after {last} are declined "
                "(outside_validity); replace the feed before then"
            )
        if first is not None and rules.valid_from is not None and rules.valid_from < first:
            out.append(f"the feed starts on {first}, after the tariff's valid_from")
        shadowed = sorted(set(tariff.network_fares) & set(rules.network_route))
        if shadowed:
            out.append(
                f"flat fares of {', '.join(shadowed)} are not used: the feed prices these networks"
            )
        if rules.categories and all(c.gtfs is None for c in rules.categories.values()):
            out.append("no category names a GTFS rider category: all ride at the feed's default")
    if rules.products and not rules.categories:
        out.append("products without categories: every card pays the default category's price")
    return out


def summary(tariff: Tariff) -> str:
    """The text `tariff check` prints for a valid tariff."""
    rules = tariff.transit
    lines = [
        f"tariff: version {tariff.version}, currency {tariff.currency}",
        f"limits: max balance {_money(tariff, tariff.max_balance)}, max purchase "
        f"{_money(tariff, tariff.max_purchase)}, max top-up {_money(tariff, tariff.max_topup)}, "
        f"double-tap window {tariff.double_tap_window_ms} ms",
        f"timezone: {rules.timezone}",
        f"valid: {rules.valid_from or 'open'} .. {rules.valid_until or 'open'}",
        "flat fares: "
        + (
            ", ".join(f"{n} {_money(tariff, f)}" for n, f in sorted(tariff.network_fares.items()))
            or "-"
        ),
    ]
    feed = rules.feed
    if feed is None:
        lines.append("GTFS feed: none (flat fares only)")
    else:
        first, last = feed.validity()
        lines += [
            f"GTFS feed: {rules.feed_ref} = {feed.name} version {feed.version} "
            f"({', '.join(feed.agency_names)}; {feed.timezone}; valid {first or 'open'} .. "
            f"{last or 'open'})",
            f"  networks: {', '.join(sorted(rules.network_route)) or '-'}; "
            f"{len(feed.route_network)} routes, {len(feed.stops)} stops, "
            f"{len(feed.leg_rules)} leg rules, {len(feed.transfer_rules)} transfer rules",
            f"  citizen card fare medium: {rules.fare_media or 'any (cheapest offer)'}",
        ]
    if rules.categories:
        lines.append(f"categories (default {rules.default_category}):")
        for name, cat in rules.categories.items():
            lines.append(
                f"  {name}: GTFS {cat.gtfs or '(feed default)'}, flat fares {cat.flat_percent}%"
            )
    else:
        lines.append("categories: not checked (every card pays full flat fares)")
    if rules.caps:
        lines.append("caps:")
        for cap in rules.caps:
            lines.append(
                f"  {cap.cap_id}: {cap.kind} {_money(tariff, cap.amount)} "
                f"for {cap.category or 'every category'}"
            )
    else:
        lines.append("caps: none")
    if rules.products:
        lines.append("products:")
        for pid, p in rules.products.items():
            prices = ", ".join(f"{c} {_money(tariff, v)}" for c, v in p.prices.items())
            covers = (
                "all transit" if p.networks is None else (", ".join(p.networks) or "no transit")
            )
            extra = ""
            if p.venues:
                extra += f"; one entry each: {', '.join(p.venues)}"
            if p.discounts:
                extra += f"; discounts: {', '.join(p.discounts)}"
            lines.append(
                f"  {pid} {p.name!r}: {prices}; {p.duration_amount} {p.duration_unit} from first "
                f"use; {covers}{extra}"
            )
    else:
        lines.append("products: none")
    lines.append(
        f"tap on / tap off: an open journey is incomplete after {rules.tap_off_window_ms} ms"
    )
    lines.append(
        "negative balance allowance: "
        + (_money(tariff, rules.negative_limit) if rules.negative_limit else "none")
    )
    notes = warnings(tariff)
    if notes:
        lines.append(f"warnings ({len(notes)}):")
        lines += [f"  - {note}" for note in notes]
    return "\n".join(lines)


def cmd_tariff_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        tariff, _ = read_tariff(args.file)
    except TariffError as exc:
        print(f"invalid tariff: {exc}", file=sys.stderr)
        return 1
    print(summary(tariff), file=out)
    return 0
