"""A simulated city: places, transit lines with moving buses, and every terminal of the city.

`build_city(spec, seed, terminals=None)` makes it, deterministically from the seed:

* `spec` names a GTFS feed (`ctran`, `mdot`, or a folder holding stops.txt and routes.txt):
  its bus routes become bus lines (stops in order, buses per line from how many trips the feed
  runs a day), its rail routes metro lines. A feed without rail (C-TRAN) gets one metro line
  through its transit centres and park & rides, so the city has gates.
* `spec == "grid"` (or a feed that cannot be read) generates a city: a grid of stops 500 m
  apart, bus lines along every other street, two metro lines crossing in the centre.

Then terminals are placed: metro gates at stations, one validator per bus, taxi handhelds,
parking machines (entry and exit) at park & rides and downtown, shop and bakery tills near busy
stops, venues (museums, cinemas, gyms, a pool, a library, a stadium), recycling kiosks, and info
kiosks at stations. `terminals=N` scales every count so the city has about N terminals.

Each terminal has a key pair derived from the seed, a clock that is off by a seeded offset and
drifts (parts per million), and an operator: the metro, the bus agency, each taxi driver, each
merchant and venue -- so operator ledgers are per merchant and per driver.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from nacl.signing import SigningKey

from terminal_sim.catalogue import Catalogue
from terminal_sim.catalogue import load as load_catalogue
from terminal_sim.gtfs import RAIL_ROUTE_TYPES, Feed, find_feed, km_xy, load_feed, safe_id
from terminal_sim.kinds import MOBILE_KINDS

#: The simulated day (a Tuesday inside the bundled feeds' calendars).
SIM_DATE = date(2025, 11, 18)
#: Seconds a bus waits at each end of its line.
LAYOVER_S = 120
#: Metro: km/h between stations and seconds per stop.
METRO_KMH = 35.0
METRO_STOP_S = 45
#: Cardholder categories on the card (the core's concession rules key on these).
CATEGORIES = ("adult", "senior", "student", "child", "disabled")
VENUE_SORTS: tuple[tuple[str, int, int, int], ...] = (
    # sort, venues, scanners each, ticket price (minor units)
    ("museum", 2, 2, 1200),
    ("cinema", 3, 2, 1100),
    ("gym", 4, 1, 600),
    ("pool", 1, 2, 450),
    ("library", 1, 1, 300),
    ("stadium", 1, 8, 3500),
)


@dataclass(frozen=True, slots=True)
class Place:
    pid: str
    name: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Line:
    """A transit line: `stops` in order of one direction (the other runs back)."""

    line_id: str
    name: str
    mode: str  # "bus" | "metro"
    network: str
    operator: str
    stops: tuple[str, ...]
    segment_s: int
    #: terminal indices of the buses' validators (empty for metro)
    vehicles: tuple[int, ...] = ()
    stops_from: str = ""

    @property
    def round_trip_s(self) -> int:
        return 2 * (len(self.stops) - 1) * self.segment_s + 2 * LAYOVER_S

    def pass_offset_s(self, pos: int, direction: int) -> int:
        """When, within a round trip from the first stop, a vehicle passes stop `pos`."""
        n = len(self.stops)
        if direction > 0:
            return pos * self.segment_s
        return (n - 1) * self.segment_s + LAYOVER_S + (n - 1 - pos) * self.segment_s

    def next_vehicle(self, pos: int, direction: int, t_s: float) -> tuple[int, float]:
        """(vehicle number, departure time) of the first bus at stop `pos` heading `direction`
        (+1 along `stops`, -1 back) at or after `t_s`. Bus k runs k/len(vehicles) of a round
        trip behind bus 0, which left the first stop at midnight."""
        period = self.round_trip_s
        base = self.pass_offset_s(pos, direction)
        nv = max(1, len(self.vehicles))
        best = (0, math.inf)
        for k in range(nv):
            phase = base + k * period / nv
            wait = (phase - t_s) % period
            if t_s + wait < best[1]:
                best = (k, t_s + wait)
        return best


@dataclass(frozen=True, slots=True)
class CityTerminal:
    index: int
    terminal_id: str
    kind: str
    operator: str
    network: str
    location: str
    #: what it is: the venue sort, "bakery"/"shop", "entry"/"exit" for parking, the bus line...
    label: str
    seed: bytes
    #: terminal clock = true time + offset + ppm * elapsed
    clock_offset_ms: int
    clock_ppm: float

    @property
    def mobile(self) -> bool:
        return self.kind in MOBILE_KINDS

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def public_key_hex(self) -> str:
        return bytes(self.signing_key.verify_key).hex()

    def clock(self, true_ms: int, elapsed_ms: int) -> int:
        return true_ms + self.clock_offset_ms + round(self.clock_ppm * elapsed_ms / 1e6)


@dataclass(frozen=True, slots=True)
class Site:
    """A shop, bakery, venue or parking lot: a place with a sort and its terminals. `ref` is the
    id the tariff knows it by (venue or car park id), else its own name."""

    name: str
    sort: str
    place: str
    price: int
    terminals: tuple[int, ...]
    ref: str = ""


@dataclass
class City:
    name: str
    source: str
    seed: int
    timezone: str
    places: dict[str, Place]
    lines: list[Line]
    stations: list[str]
    terminals: list[CityTerminal]
    shops: list[Site]
    venues: list[Site]
    parkings: list[Site]
    taxis: list[int]
    recycling: list[int]
    kiosks: dict[str, list[int]]
    catalogue: Catalogue | None = None
    notes: list[str] = field(default_factory=list)
    #: place -> [(line index, position)]
    serves: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"c{self.seed}"

    def midnight_ms(self) -> int:
        """Epoch ms of the simulated day's local midnight."""
        tz = ZoneInfo(self.timezone)
        return int(
            datetime(SIM_DATE.year, SIM_DATE.month, SIM_DATE.day, tzinfo=tz).timestamp() * 1000
        )

    def dist_km(self, a: str, b: str) -> float:
        pa, pb = self.places[a], self.places[b]
        return math.hypot(pa.x - pb.x, pa.y - pb.y)

    def nearest(self, pid: str, candidates: Iterable[str]) -> tuple[str, float]:
        best = ("", math.inf)
        for c in candidates:
            d = self.dist_km(pid, c)
            if d < best[1]:
                best = (c, d)
        return best

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.terminals:
            out[t.kind] = out.get(t.kind, 0) + 1
        return out


class _Builder:
    def __init__(
        self, name: str, source: str, seed: int, timezone: str, scale: float, cat: Catalogue
    ) -> None:
        self.seed = seed
        self.scale = scale
        self.rng = random.Random(f"city/{seed}/{name}")
        self.city = City(
            name=name,
            source=source,
            seed=seed,
            timezone=timezone,
            places={},
            lines=[],
            stations=[],
            terminals=[],
            shops=[],
            venues=[],
            parkings=[],
            taxis=[],
            recycling=[],
            kiosks={},
            catalogue=cat,
        )
        self.cat = cat
        self.networks = cat.networks

    def n(self, base: float, minimum: int = 1) -> int:
        return max(minimum, round(base * self.scale))

    def network(self, gtfs_network: str, mode: str) -> str:
        if gtfs_network and gtfs_network in self.networks:
            return gtfs_network
        return "METRO" if mode == "metro" else "BUS"

    def terminal(
        self, kind: str, operator: str, location: str, label: str, network: str = ""
    ) -> int:
        c = self.city
        idx = len(c.terminals)
        tid = f"{c.prefix}-{kind}-{idx:05d}"
        key_seed = hashlib.sha256(f"citycard-city/{self.seed}/{tid}".encode()).digest()
        trng = random.Random(f"clock/{self.seed}/{tid}")
        # Most clocks are NTP-synced within a second or two; a few are minutes off.
        if trng.random() < 0.03:
            offset = trng.choice((-1, 1)) * trng.randint(120_000, 1_800_000)
        else:
            offset = round(trng.gauss(0, 1500))
        ppm = trng.gauss(0, 40)
        c.terminals.append(
            CityTerminal(
                idx, tid, kind, safe_id(operator), network, location, label, key_seed, offset, ppm
            )
        )
        return idx

    def central(self, k: int, candidates: list[str], spread: float = 3.0) -> list[str]:
        """k places drawn (with replacement) favouring the centre of the city."""
        c = self.city
        weights = [
            1.0 / (1.0 + math.hypot(c.places[p].x, c.places[p].y) / spread) ** 2 for p in candidates
        ]
        return self.rng.choices(candidates, weights, k=k)

    def finish(self) -> City:
        c = self.city
        rng = self.rng
        stops = sorted({s for ln in c.lines for s in ln.stops} | set(c.stations))
        # metro gates and an info kiosk per station
        for st in c.stations:
            for _ in range(self.n(4, 2)):
                self.terminal("gate", "metro", st, "station", self.network("", "metro"))
            c.kiosks.setdefault(st, []).append(self.terminal("kiosk", "city", st, "station"))
        for p in self.central(self.n(6), stops):
            c.kiosks.setdefault(p, []).append(self.terminal("kiosk", "city", p, "downtown"))
        # one validator per bus
        for li, ln in enumerate(c.lines):
            if ln.mode != "bus":
                continue
            vehicles = tuple(
                self.terminal("bus", ln.operator, ln.line_id, f"bus {ln.name} #{k}", ln.network)
                for k in range(len(ln.vehicles))
            )
            c.lines[li] = Line(
                ln.line_id,
                ln.name,
                ln.mode,
                ln.network,
                ln.operator,
                ln.stops,
                ln.segment_s,
                vehicles,
                ln.stops_from,
            )
        for k in range(self.n(40, 2)):
            c.taxis.append(self.terminal("taxi", f"taxi-{k:04d}", "city", "taxi"))
        # parking: park & rides and stations first, then downtown; an entry and an exit machine
        pr = [
            p
            for p in stops
            if "park" in c.places[p].name.lower() and "ride" in c.places[p].name.lower()
        ]
        lots = (pr + list(c.stations))[: self.n(8)]
        lots += self.central(self.n(4), stops, spread=2.0)
        for i, p in enumerate(lots):
            name = f"parking-{i:03d}"
            ref = self.cat.parking[i % len(self.cat.parking)] if self.cat.parking else name
            ts = (
                self.terminal("parking", "city-parking", p, "entry"),
                self.terminal("parking", "city-parking", p, "exit"),
            )
            c.parkings.append(Site(name, "parking", p, 150, ts, ref))
        for sort, count, price in (("bakery", 40, 450), ("shop", 80, 2500)):
            for i, p in enumerate(self.central(self.n(count), stops)):
                name = f"{sort}-{i:04d}"
                tills = 2 if sort == "shop" and rng.random() < 0.2 else 1
                tills_ = tuple(self.terminal("retail", name, p, sort) for _ in range(tills))
                c.shops.append(Site(name, sort, p, price, tills_, name))
        for sort, count, scanners, price in VENUE_SORTS:
            where = self.central(self.n(count), stops, spread=2.0)
            if sort == "stadium" and c.stations:
                where = [self.rng.choice(c.stations) for _ in where]  # crowds need a station
            ids = self.cat.venue_ids(sort)
            for i, p in enumerate(where):
                name = f"{sort}-{i:02d}"
                ref = ids[i % len(ids)] if ids else name
                vs = tuple(self.terminal("venue", name, p, sort) for _ in range(scanners))
                c.venues.append(Site(name, sort, p, self.cat.venue_price(ref, price), vs, ref))
        for p in self.central(self.n(12), stops, spread=5.0):
            c.recycling.append(self.terminal("recycling", "city-recycling", p, "recycling"))
        serves: dict[str, list[tuple[int, int]]] = {}
        for li, ln in enumerate(c.lines):
            for pos, s in enumerate(ln.stops):
                serves.setdefault(s, []).append((li, pos))
        c.serves = serves
        return c


def _vehicles(trips_per_day: int, n_stops: int, scale: float) -> int:
    base = trips_per_day / 40 + n_stops / 8 if trips_per_day else 3
    return max(1, round(min(10, max(2, base)) * scale))


def _from_feed(feed: Feed, seed: int, scale: float, cat: Catalogue) -> _Builder:
    b = _Builder(feed.name.split("-")[0], f"gtfs:{feed.path}", seed, feed.timezone, scale, cat)
    c = b.city
    lat0 = sum(s.lat for s in feed.stops.values()) / len(feed.stops)
    lon0 = sum(s.lon for s in feed.stops.values()) / len(feed.stops)
    for s in feed.stops.values():
        x, y = km_xy(s.lat, s.lon, lat0, lon0)
        c.places[s.stop_id] = Place(s.stop_id, s.name, x, y)
    agency = safe_id(feed.agency.lower())
    rail = [r for r in feed.routes if r.route_type in RAIL_ROUTE_TYPES]
    for r in feed.routes:
        mode = "metro" if r in rail else "bus"
        c.lines.append(
            Line(
                r.route_id,
                r.short_name,
                mode,
                b.network(r.network_id, mode),
                "metro" if mode == "metro" else agency,
                r.stops,
                r.segment_s,
                tuple(range(_vehicles(r.trips_per_day, len(r.stops), scale)))
                if mode == "bus"
                else (),
                r.stops_from,
            )
        )
    if rail:
        c.stations = sorted({s for r in rail for s in r.stops})
    else:
        c.stations = _synthetic_metro(b, feed)
    return b


def _synthetic_metro(b: _Builder, feed: Feed) -> list[str]:
    """A metro line through the feed's transit centres / park & rides (greedy path)."""
    c = b.city
    hubs = [
        s.stop_id
        for s in sorted(feed.stops.values(), key=lambda s: s.stop_id)
        if s.station
        or any(k in s.name.lower() for k in ("transit center", "park & ride", "station"))
    ]
    picked: list[str] = []
    for h in hubs:
        if all(c.dist_km(h, p) > 0.8 for p in picked):
            picked.append(h)
    if len(picked) < 4:
        picked = []
        for p in b.central(40, sorted(c.places), spread=4.0):
            if all(c.dist_km(p, q) > 1.5 for q in picked):
                picked.append(p)
            if len(picked) == 8:
                break
    # order: start at the westernmost, then nearest neighbour
    rest = sorted(picked, key=lambda p: (c.places[p].x, p))
    path = [rest.pop(0)]
    while rest:
        nxt = min(rest, key=lambda p: (c.dist_km(path[-1], p), p))
        rest.remove(nxt)
        path.append(nxt)
    seg = max(
        60,
        round(
            sum(c.dist_km(a, z) for a, z in itertools.pairwise(path))
            / max(1, len(path) - 1)
            / METRO_KMH
            * 3600
        )
        + METRO_STOP_S,
    )
    c.lines.append(
        Line(
            "M1",
            "Metro M1",
            "metro",
            b.network("", "metro"),
            "metro",
            tuple(path),
            seg,
            (),
            "synthetic",
        )
    )
    c.notes.append(
        f"{feed.name} has no rail routes: metro line M1 is synthetic, through {len(path)} of its "
        "transit centres and park & rides"
    )
    return path


def _grid(seed: int, scale: float, cat: Catalogue) -> _Builder:
    b = _Builder("grid", "generated", seed, "UTC", scale, cat)
    c = b.city
    g = 14
    for r in range(g):
        for col in range(g):
            pid = f"g{r:02d}{col:02d}"
            c.places[pid] = Place(
                pid, f"Street {r} / Avenue {col}", (col - g / 2) * 0.5, (r - g / 2) * 0.5
            )
    for i in range(0, g, 2):
        row = tuple(f"g{i:02d}{col:02d}" for col in range(g))
        col_ = tuple(f"g{r:02d}{i:02d}" for r in range(g))
        for lid, stops in ((f"R{i}", row), (f"C{i}", col_)):
            c.lines.append(
                Line(
                    lid,
                    lid,
                    "bus",
                    "BUS",
                    "citybus",
                    stops,
                    90,
                    tuple(range(max(1, round(4 * scale)))),
                    "grid",
                )
            )
    mid = g // 2
    m1 = tuple(f"g{mid:02d}{col:02d}" for col in range(0, g, 2))
    m2 = tuple(f"g{r:02d}{mid + 1:02d}" for r in range(1, g, 2))
    seg = round(1.0 / METRO_KMH * 3600) + METRO_STOP_S
    c.lines.append(Line("M1", "Metro M1", "metro", "METRO", "metro", m1, seg, (), "grid"))
    c.lines.append(Line("M2", "Metro M2", "metro", "METRO", "metro", m2, seg, (), "grid"))
    c.stations = sorted(set(m1) | set(m2))
    return b


def build_city(
    spec: str,
    seed: int,
    terminals: int | None = None,
    *,
    catalogue: Catalogue | None = None,
    repo_root: Path | None = None,
) -> City:
    """The city for `--city spec` (see the module docstring); about `terminals` terminals.
    Venues, car parks and networks are named after `catalogue` (default: the default tariff)."""
    root = repo_root or Path(__file__).resolve().parent.parent
    cat = catalogue if catalogue is not None else load_catalogue()

    def make(scale: float) -> City:
        if spec == "grid":
            return _grid(seed, scale, cat).finish()
        folder = find_feed(spec, root)
        if folder is None:
            raise ValueError(
                f"--city {spec!r}: no GTFS folder by that name or path (or use 'grid')"
            )
        feed = load_feed(folder, seed)
        if len(feed.stops) < 10 or not feed.routes:
            city = _grid(seed, scale, cat).finish()
            city.notes.append(f"{folder}: too few stops or routes; generated a grid city instead")
            return city
        return _from_feed(feed, seed, scale, cat).finish()

    scale = 1.0
    city = make(scale)
    if terminals is not None and terminals > 0:
        for _ in range(3):  # counts have minimums: converge on the requested size
            scale = max(0.02, scale * terminals / len(city.terminals))
            city = make(scale)
    return city
