"""Reading the parts of a GTFS feed a simulated city needs: routes, stops, and -- where the feed
has them -- trips and stop_times (how often a route runs and the order of its stops).

Only what exists is read. A route without stop_times gets its stops from the stop names (a route
called "Fourth Plain" serves the stops named "... Fourth Plain ...", ordered along the street),
else from a seeded walk through nearby stops. Everything is deterministic for a given feed and
seed. The fare files are the fare engine's business (`policies.gtfs`), not read here.
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

#: Route types (GTFS `route_type`) treated as rail: metro gates at their stations.
RAIL_ROUTE_TYPES = frozenset({0, 1, 2, 5, 7, 12})
#: Default minutes between two stops when the feed has no stop_times for a route.
DEFAULT_SEGMENT_S = 100
#: Stops closer than this (km) along a name-matched route are the two sides of one street.
SAME_PLACE_KM = 0.2
_ID_BAD = re.compile(r"[^A-Za-z0-9._:-]")
_NAME_NOISE = re.compile(
    r"\b(the|vine|on|line|regional|express|red|green|blue|ave|avenue|st|street|rd|road|dr|"
    r"hwy|x|and)\b",
    re.IGNORECASE,
)


def safe_id(text: str) -> str:
    """`text` cut down to the protocol's identifier alphabet."""
    out = _ID_BAD.sub("_", text.strip())[:48]
    return out or "x"


@dataclass(frozen=True, slots=True)
class GStop:
    stop_id: str
    name: str
    lat: float
    lon: float
    station: bool
    parent: str


@dataclass(frozen=True, slots=True)
class GRoute:
    route_id: str
    short_name: str
    long_name: str
    route_type: int
    network_id: str
    trips_per_day: int
    #: ordered stop ids of one direction
    stops: tuple[str, ...]
    segment_s: int
    #: where the stop order came from: stop_times | names | walk
    stops_from: str


@dataclass(frozen=True, slots=True)
class Feed:
    name: str
    path: str
    timezone: str
    agency: str
    stops: dict[str, GStop]
    routes: tuple[GRoute, ...]
    rider_categories: tuple[str, ...]
    files: tuple[str, ...]


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)
        ]


def find_feed(name_or_path: str, repo_root: Path) -> Path | None:
    """A GTFS folder for `--city`: a path, or the name of a feed under ../shared/data/gtfs or
    tests/data/gtfs (`ctran` finds `ctran-fares-v2`; the fuller copy is preferred)."""
    p = Path(name_or_path)
    if p.is_dir() and (p / "stops.txt").exists():
        return p
    candidates: list[Path] = []
    for base in (
        repo_root.parent / "shared" / "data" / "gtfs",
        repo_root / "tests" / "data" / "gtfs",
    ):
        if base.is_dir():
            candidates += sorted(
                d for d in base.iterdir() if d.is_dir() and d.name.startswith(name_or_path)
            )
    full = [c for c in candidates if (c / "trips.txt").exists()]
    pick = full or candidates
    return pick[0] if pick else None


def load_feed(folder: Path, seed: int) -> Feed:
    agency = _read(folder / "agency.txt")
    tz = agency[0].get("agency_timezone", "UTC") if agency else "UTC"
    stops: dict[str, GStop] = {}
    for row in _read(folder / "stops.txt"):
        try:
            lat, lon = float(row["stop_lat"]), float(row["stop_lon"])
        except (KeyError, ValueError):
            continue  # entrances, nodes without coordinates
        lt = row.get("location_type") or "0"
        if lt not in ("0", "1"):
            continue
        sid = safe_id(row["stop_id"])
        stops[sid] = GStop(
            sid,
            row.get("stop_name", sid),
            lat,
            lon,
            lt == "1",
            safe_id(row.get("parent_station") or ""),
        )
    trips_by_route: dict[str, list[str]] = defaultdict(list)
    route_of_trip: dict[str, str] = {}
    for row in _read(folder / "trips.txt"):
        trips_by_route[row["route_id"]].append(row["trip_id"])
        route_of_trip[row["trip_id"]] = row["route_id"]
    seq_by_trip: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for row in _read(folder / "stop_times.txt"):
        try:
            seq_by_trip[row["trip_id"]].append(
                (
                    int(row["stop_sequence"]),
                    safe_id(row["stop_id"]),
                    _hms(row.get("departure_time", "")),
                )
            )
        except (KeyError, ValueError):
            continue
    best_trip: dict[str, list[tuple[int, str, int]]] = {}
    for trip, rows in seq_by_trip.items():
        route = route_of_trip.get(trip)
        if route is not None and len(rows) > len(best_trip.get(route, [])):
            best_trip[route] = sorted(rows)
    platforms = {s.stop_id: s for s in stops.values() if not s.station}
    routes: list[GRoute] = []
    for row in _read(folder / "routes.txt"):
        rid = row["route_id"]
        try:
            rtype = int(row.get("route_type") or 3)
        except ValueError:
            rtype = 3
        seg = DEFAULT_SEGMENT_S
        if rid in best_trip:
            order = [s for _, s, _ in best_trip[rid] if s in platforms]
            times = [t for _, _, t in best_trip[rid] if t >= 0]
            if len(times) >= 2 and len(order) >= 2:
                seg = max(30, (times[-1] - times[0]) // (len(order) - 1))
            source = "stop_times"
        else:
            order = _stops_by_name(row.get("route_long_name", ""), platforms)
            source = "names"
            if len(order) < 5:
                order = _walk(rid, platforms, seed)
                source = "walk"
        order = list(dict.fromkeys(order))
        if len(order) < 2:
            continue
        routes.append(
            GRoute(
                route_id=safe_id(rid),
                short_name=row.get("route_short_name") or rid,
                long_name=row.get("route_long_name", ""),
                route_type=rtype,
                network_id=safe_id(row.get("network_id") or ""),
                trips_per_day=len(trips_by_route.get(rid, ())),
                stops=tuple(order),
                segment_s=seg,
                stops_from=source,
            )
        )
    cats = tuple(
        r["rider_category_id"]
        for r in _read(folder / "rider_categories.txt")
        if r.get("rider_category_id")
    )
    return Feed(
        name=folder.name,
        path=str(folder),
        timezone=tz,
        agency=(agency[0].get("agency_name", folder.name) if agency else folder.name),
        stops=stops,
        routes=tuple(routes),
        rider_categories=cats,
        files=tuple(sorted(p.name for p in folder.glob("*.txt"))),
    )


def _hms(text: str) -> int:
    try:
        h, m, s = (int(x) for x in text.split(":"))
    except ValueError:
        return -1
    return h * 3600 + m * 60 + s


def km_xy(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    return ((lon - lon0) * 111.32 * math.cos(math.radians(lat0)), (lat - lat0) * 110.57)


def _stops_by_name(long_name: str, stops: dict[str, GStop]) -> list[str]:
    """Stops whose name carries the street a route is named after, ordered along it."""
    phrases = [p.strip() for p in re.split(r"/|\bon\b|\(|\)", long_name) if p.strip()]
    phrases = [_NAME_NOISE.sub(" ", p).strip() for p in phrases]
    phrases = [re.sub(r"\s+", " ", p) for p in phrases if len(p) >= 4]
    hits = [s for s in stops.values() if any(p.lower() in s.name.lower() for p in phrases)]
    if len(hits) < 5:
        return []
    lat0 = sum(s.lat for s in hits) / len(hits)
    lon0 = sum(s.lon for s in hits) / len(hits)
    pts = [(s.stop_id, *km_xy(s.lat, s.lon, lat0, lon0)) for s in hits]
    # Principal axis of the points: the street's direction.
    sxx = sum(x * x for _, x, _ in pts)
    syy = sum(y * y for _, _, y in pts)
    sxy = sum(x * y for _, x, y in pts)
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)
    ux, uy = math.cos(angle), math.sin(angle)
    pts.sort(key=lambda p: (p[1] * ux + p[2] * uy, p[0]))
    kept: list[tuple[str, float, float]] = []
    for p in pts:  # one stop per place (the other side of the street is the other direction)
        if not kept or math.hypot(p[1] - kept[-1][1], p[2] - kept[-1][2]) > SAME_PLACE_KM:
            kept.append(p)
    return [p[0] for p in kept]


def _walk(route_id: str, stops: dict[str, GStop], seed: int) -> list[str]:
    """A seeded line through nearby stops: start somewhere, keep heading roughly one way."""
    rng = random.Random(f"walk/{seed}/{route_id}")
    ids = sorted(stops)
    if len(ids) < 2:
        return ids
    lat0 = sum(s.lat for s in stops.values()) / len(stops)
    lon0 = sum(s.lon for s in stops.values()) / len(stops)
    xy = {i: km_xy(stops[i].lat, stops[i].lon, lat0, lon0) for i in ids}
    cur = rng.choice(ids)
    heading = rng.uniform(0, 2 * math.pi)
    path = [cur]
    seen = {cur}
    for _ in range(rng.randint(12, 28)):
        cx, cy = xy[cur]
        hx, hy = math.cos(heading), math.sin(heading)
        best: tuple[float, str] | None = None
        for i in ids:
            if i in seen:
                continue
            dx, dy = xy[i][0] - cx, xy[i][1] - cy
            d = math.hypot(dx, dy)
            if d < 0.25 or d > 2.5 or dx * hx + dy * hy < 0.5 * d:
                continue
            if best is None or d < best[0]:
                best = (d, i)
        if best is None:
            break
        nxt = best[1]
        heading = math.atan2(xy[nxt][1] - cy, xy[nxt][0] - cx) * 0.5 + heading * 0.5
        path.append(nxt)
        seen.add(nxt)
        cur = nxt
    return path
