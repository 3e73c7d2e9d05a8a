"""`citycard fares check|quote`: the tariff writer's tool for GTFS Fares v2 feeds.

This module owns the `fares` subcommands: `check FEED_DIR` validates a feed and prints what the
engine understood (agency, timezone, validity, networks, categories, media, products with
amounts, rule counts, and the loader's notes); `quote` prices a journey and prints JSON. Exit
status: 0 fine, 1 invalid feed or refused quote, 2 bad command line. `add_fares_parser` hooks it
into the main parser of ops/cli.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TextIO

from gateway.tariffs.fares_io import load_feed_dir
from policies.gtfs import FareFeed, FeedError, Leg, QuoteError, format_minor, quote_journey


def add_fares_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `fares check` and `fares quote` on `subparsers`; returns the `fares` parser."""
    p = subparsers.add_parser("fares", help="check GTFS Fares v2 feeds and quote journeys")
    sub = p.add_subparsers(dest="fares_command", required=True)

    c = sub.add_parser("check", help="validate a feed and summarise what it contains")
    c.add_argument("feed_dir", metavar="FEED_DIR", help="directory of the GTFS feed")
    c.set_defaults(func=cmd_fares_check)

    q = sub.add_parser("quote", help="price a journey, print JSON")
    q.add_argument("--feed", required=True, metavar="FEED_DIR", help="directory of the feed")
    q.add_argument("--category", default=None, help="rider_category_id (default: the feed's)")
    q.add_argument("--medium", default=None, help="fare_media_id (default: any, cheapest)")
    q.add_argument(
        "--leg",
        action="append",
        required=True,
        metavar="ROUTE,FROM_STOP,TO_STOP,START[,END]",
        help="one leg; times ISO 8601, without an offset read in the feed's timezone",
    )
    q.set_defaults(func=cmd_fares_quote)
    return p


def _offers_text(feed: FareFeed, product_id: str) -> str:
    by_price: dict[tuple[int, str], list[str]] = {}
    for offer in feed.products[product_id].offers:
        key = (offer.amount, offer.rider_category_id or "any category")
        by_price.setdefault(key, []).append(offer.fare_media_id or "any medium")
    parts = []
    for (amount, category), media in sorted(by_price.items()):
        price = f"{format_minor(amount, feed.minor_digits)} {feed.currency}"
        parts.append(f"{price} [{category}; {', '.join(sorted(media))}]")
    duration = feed.products[product_id].offers[0].duration
    if duration is not None:
        units = ("s", "min", "h", "day", "week", "month", "year")
        kind = "rolling" if duration.type == 1 else "calendar"
        parts.append(f"valid {duration.amount} {units[duration.unit]} ({kind})")
    return "; ".join(parts)


def summary(feed: FareFeed) -> str:
    """The text `fares check` prints for a valid feed."""
    first, last = feed.validity()
    categories = [
        c.rider_category_id + (" (default)" if c.is_default else "")
        for c in feed.rider_categories.values()
    ]
    media = [f"{m.fare_media_id} {m.name}".strip() for m in feed.fare_media.values()]
    groups = sorted({r.leg_group_id for r in feed.leg_rules if r.leg_group_id})
    frames = sorted({t.timeframe_group_id for t in feed.timeframes})
    lines = [
        f"feed: {feed.name} (version {feed.version})",
        f"agency: {', '.join(feed.agency_names)}",
        f"timezone: {feed.timezone}",
        f"valid: {first or 'open'} .. {last or 'open'}",
        f"currency: {feed.currency}",
        f"networks ({len(feed.networks)}): {', '.join(sorted(feed.networks))}",
        f"rider categories ({len(categories)}): {', '.join(categories)}",
        f"fare media ({len(media)}): {', '.join(media)}",
        f"timeframes: {len(feed.timeframes)} (groups: {', '.join(frames) or '-'})",
        f"areas: {len(feed.areas)}",
        f"products ({len(feed.products)}):",
        *(
            f"  {pid} {p.name!r}: {_offers_text(feed, pid)}"
            for pid, p in sorted(feed.products.items())
        ),
        f"leg rules: {len(feed.leg_rules)} (leg groups: {', '.join(groups) or '-'})",
        f"transfer rules: {len(feed.transfer_rules)}",
    ]
    if feed.notes:
        lines.append(f"notes ({len(feed.notes)}):")
        lines += [f"  - {note}" for note in feed.notes]
    return "\n".join(lines)


def cmd_fares_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        feed = load_feed_dir(args.feed_dir)
    except FeedError as exc:
        print(f"invalid feed: {exc}", file=sys.stderr)
        return 1
    print(summary(feed), file=out)
    return 0


def parse_leg(feed: FareFeed, text: str) -> Leg:
    """ROUTE,FROM_STOP,TO_STOP,START[,END] with ISO 8601 times; `ValueError` if malformed."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5) or not all(parts):
        raise ValueError(f"--leg {text!r}: expected ROUTE,FROM_STOP,TO_STOP,START[,END]")

    def epoch_ms(iso: str) -> int:
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(f"--leg {text!r}: {iso!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=feed.zone)
        return int(moment.timestamp()) * 1000 + moment.microsecond // 1000

    end = epoch_ms(parts[4]) if len(parts) == 5 else None
    return Leg(parts[0], parts[1], parts[2], epoch_ms(parts[3]), end)


def cmd_fares_quote(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        feed = load_feed_dir(args.feed)
    except FeedError as exc:
        print(f"invalid feed: {exc}", file=sys.stderr)
        return 1
    try:
        legs = [parse_leg(feed, text) for text in args.leg]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        quote = quote_journey(feed, legs, rider_category=args.category, fare_media=args.medium)
    except QuoteError as exc:
        error = {"error": exc.code, "leg": exc.leg_index, "message": exc.reason}
        print(json.dumps(error), file=out)
        return 1
    result = {
        "total": quote.total,
        "currency": quote.currency,
        "total_display": format_minor(quote.total, feed.minor_digits),
        **quote.to_dict(),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False), file=out)
    return 0
