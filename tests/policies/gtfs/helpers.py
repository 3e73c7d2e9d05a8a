"""Shared by the GTFS fare tests: the copied real feeds, local times, and feed mutations.

The feeds live in tests/data/gtfs/ (copies of ../shared/data/gtfs/, see its README), read as
text here so the pure parser gets exactly what the gateway's loader would give it.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

from policies.gtfs import FEED_FILES, FareFeed, Leg, parse_feed

DATA = Path(__file__).resolve().parents[2] / "data" / "gtfs"
CTRAN = "ctran-fares-v2"
MDOT = "mdot-metro-fares-v2"


@cache
def _files(name: str) -> tuple[tuple[str, str], ...]:
    root = DATA / name
    out = []
    for file in FEED_FILES:
        path = root / file
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as f:
                out.append((file, f.read()))
    return tuple(out)


def feed_files(name: str) -> dict[str, str]:
    """A fresh {file: text} of a copied feed, safe to mutate."""
    return dict(_files(name))


@cache
def feed(name: str) -> FareFeed:
    return parse_feed(feed_files(name), name=name)


def at(f: FareFeed, local: str) -> int:
    """Epoch ms of a wall-clock time in the feed's timezone, e.g. "2025-10-06T07:30"."""
    moment = datetime.fromisoformat(local).replace(tzinfo=f.zone)
    return int(moment.timestamp()) * 1000


def leg(f: FareFeed, route: str, local: str, frm: str = "", to: str = "") -> Leg:
    """A leg on `route` starting at local time `local`, between two stops of the feed."""
    frm = frm or ("8126" if f.name == CTRAN else "7500")
    to = to or ("8111" if f.name == CTRAN else "7510")
    return Leg(route, frm, to, at(f, local))


def replace_line(text: str, line: int, new: str) -> str:
    """`text` with its physical line `line` (1-based, as in error messages) replaced."""
    lines = text.split("\n")
    ending = "\r" if lines[line - 1].endswith("\r") else ""
    lines[line - 1] = new + ending
    return "\n".join(lines)
