"""The tap schedule of a simulated window of the city's day: every tap (when, which terminal, which
card, which op and fields, the terminal's own clock), every mobile-network outage and every card
blocked mid-day. Pure and seeded: `build_schedule` twice with the same arguments gives equal
schedules (and equal `digest()`s), which is what makes a failing run replayable from its seed.

Profiles pick the window: `peak` (from 07:30, the morning rush), `day` (05:00 to midnight) and
`spike` (from 21:50: a stadium empties at 22:00). `--start HH:MM` overrides the start.

Load shapes map simulated time to wall time (`Warp`): `open` runs the city `speed` times faster
than real time; `ramp` and `spike` bend that clock so the offered rate climbs from a tenth to
twice the average, or jumps to five times the base for a tenth of the run, while the city's own
shape (its peaks) stays underneath.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from dataclasses import dataclass

import orjson

from terminal_sim.city import City
from terminal_sim.kinds import MOBILE_KINDS, Resolution, resolve
from terminal_sim.population import DOUBLE, OUT, UNKNOWN_CARD, Cardholder, Planner

PROFILES: dict[str, tuple[float, float]] = {
    # name: (start, default duration), seconds of the local day
    "peak": (7.5 * 3600, 600.0),
    "day": (5 * 3600, 19 * 3600.0),
    "spike": (21 * 3600 + 50 * 60, 1200.0),
}
#: Mean simulated seconds between two outages of one mobile terminal, and their typical length.
OUTAGE_EVERY_S = 25 * 60
OUTAGE_MEDIAN_S = 20.0
#: Share of the active cardholders whose card is blocked during the window.
BLOCK_SHARE = 0.004
#: A taxi is busy this long before the tap that ends a ride.
TAXI_RIDE_S = 900


@dataclass(frozen=True, slots=True)
class STap:
    """One scheduled tap. `t_ms` is simulated ms since local midnight."""

    t_ms: int
    terminal: int
    card: str
    op: str
    fields: tuple[tuple[str, object], ...]
    terminal_time: int
    activity: str
    flags: int


@dataclass(frozen=True, slots=True)
class Outage:
    terminal: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Block:
    card: str
    t_ms: int


@dataclass
class Schedule:
    city: City
    seed: int
    profile: str
    start_ms: int
    duration_ms: int
    taps: list[STap]
    outages: list[Outage]
    blocks: list[Block]
    #: the cardholders who tap in the window (registered or not)
    holders: dict[str, Cardholder]
    resolution: Resolution
    population: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    def digest(self) -> str:
        h = hashlib.sha256()
        for t in self.taps:
            h.update(
                orjson.dumps(
                    [
                        t.t_ms,
                        self.city.terminals[t.terminal].terminal_id,
                        t.card,
                        t.op,
                        [list(f) for f in t.fields],
                        t.terminal_time,
                        t.flags,
                    ]
                )
            )
        for o in self.outages:
            h.update(orjson.dumps(["outage", o.terminal, o.start_ms, o.end_ms]))
        for b in self.blocks:
            h.update(orjson.dumps(["block", b.card, b.t_ms]))
        return h.hexdigest()[:16]

    def registered_cards(self) -> dict[str, Cardholder]:
        return {c: h for c, h in self.holders.items() if h.registered}

    def stats(self) -> dict[str, object]:
        by_kind: dict[str, int] = {}
        by_op: dict[str, int] = {}
        for t in self.taps:
            k = self.city.terminals[t.terminal].kind
            by_kind[k] = by_kind.get(k, 0) + 1
            by_op[t.op] = by_op.get(t.op, 0) + 1
        return {
            "taps": len(self.taps),
            "by_kind": by_kind,
            "by_op": by_op,
            "double_taps": sum(1 for t in self.taps if t.flags & DOUBLE),
            "unknown_card_taps": sum(1 for t in self.taps if t.flags & UNKNOWN_CARD),
            "outages": len(self.outages),
            "blocks": len(self.blocks),
            "cardholders_active": len(self.holders),
        }


def parse_hhmm(text: str) -> float:
    h, _, m = text.partition(":")
    return int(h) * 3600 + int(m or 0) * 60


def build_schedule(
    city: City,
    *,
    seed: int,
    population: int,
    profile: str = "peak",
    duration_s: float | None = None,
    start_s: float | None = None,
    resolution: Resolution | None = None,
) -> Schedule:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    res = resolution or resolve()
    p_start, p_dur = PROFILES[profile]
    start_ms = round((p_start if start_s is None else start_s) * 1000)
    dur_ms = round((p_dur if duration_s is None else duration_s) * 1000)
    end_ms = start_ms + dur_ms
    planner = Planner(city, res, seed, event=(profile == "spike"))
    midnight = city.midnight_ms()
    raw: list[tuple[int, int, str, str, tuple[tuple[str, object], ...], str, int]] = []
    holders: dict[str, Cardholder] = {}
    for i in range(population):
        h = planner.holder(i)
        day = planner.day(h)
        # A journey (or parking stay) begun before the window is not played: drop its tap off.
        started = {
            p.pair for p in day if p.pair and not p.flags & OUT and start_ms <= p.t_ms < end_ms
        }
        for p in day:
            if start_ms <= p.t_ms < end_ms and (not p.flags & OUT or p.pair in started):
                raw.append((p.t_ms, p.terminal, h.card, p.op, p.fields, p.activity, p.flags))
                holders[h.card] = h
    raw.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    raw = _assign_taxis(city, raw)
    taps = [
        STap(
            t,
            term,
            card,
            op,
            fields,
            city.terminals[term].clock(midnight + t, t - start_ms),
            act,
            fl,
        )
        for t, term, card, op, fields, act, fl in raw
    ]
    outages = _outages(city, seed, start_ms, end_ms)
    blocks = _blocks(taps, holders, seed, end_ms)
    return Schedule(
        city, seed, profile, start_ms, dur_ms, taps, outages, blocks, holders, res, population
    )


def _assign_taxis(
    city: City, raw: list[tuple[int, int, str, str, tuple[tuple[str, object], ...], str, int]]
) -> list[tuple[int, int, str, str, tuple[tuple[str, object], ...], str, int]]:
    """Give each taxi ride a taxi that is free (one ride at a time per handheld)."""
    taxis = set(city.taxis)
    if not taxis:
        return raw
    free_at = {t: -math.inf for t in city.taxis}
    order = sorted(city.taxis)
    out = []
    for r in raw:
        if r[1] in taxis:
            t_ms = r[0]
            pick = next((x for x in order if free_at[x] <= t_ms - TAXI_RIDE_S * 1000), None)
            if pick is None:
                pick = min(order, key=lambda x: (free_at[x], x))
            free_at[pick] = t_ms
            order.remove(pick)
            order.append(pick)  # least recently used first
            r = (r[0], pick, *r[2:])
        out.append(r)
    return out


def _outages(city: City, seed: int, start_ms: int, end_ms: int) -> list[Outage]:
    out: list[Outage] = []
    for t in city.terminals:
        if t.kind not in MOBILE_KINDS:
            continue
        rng = random.Random(f"outage/{seed}/{t.terminal_id}")
        at = start_ms + rng.expovariate(1 / OUTAGE_EVERY_S) * 1000
        while at < end_ms:
            length = min(180.0, max(3.0, rng.lognormvariate(math.log(OUTAGE_MEDIAN_S), 0.8)))
            out.append(Outage(t.index, round(at), round(at + length * 1000)))
            at += length * 1000 + rng.expovariate(1 / OUTAGE_EVERY_S) * 1000
    out.sort(key=lambda o: (o.start_ms, o.terminal))
    return out


def _blocks(
    taps: list[STap], holders: dict[str, Cardholder], seed: int, end_ms: int
) -> list[Block]:
    """Cards blocked between two of their taps (the later ones are then declined)."""
    times: dict[str, list[int]] = {}
    for t in taps:
        if not t.flags & UNKNOWN_CARD:
            times.setdefault(t.card, []).append(t.t_ms)
    cands = sorted(c for c, ts in times.items() if len(ts) >= 2 and ts[-1] - ts[0] >= 20_000)
    if not cands:
        return []
    rng = random.Random(f"blocks/{seed}")
    n = max(1, round(BLOCK_SHARE * len(holders)))
    out = []
    for card in rng.sample(cands, min(n, len(cands))):
        ts = times[card]
        gaps = [(b - a, a, b) for a, b in itertools.pairwise(ts) if b - a >= 20_000]
        _, a, b = rng.choice(gaps)
        out.append(Block(card, (a + b) // 2))
    out.sort(key=lambda b: (b.t_ms, b.card))
    return out


# ---------------------------------------------------------------------------- sim -> wall time


@dataclass(frozen=True)
class Warp:
    """Maps simulated ms within the window to wall seconds from the start of the run.

    `shape` multiplies the offered rate over the run: open (flat), ramp (0.1x -> 2x of the mean,
    linearly), spike (base, with 5x the base for the middle tenth of the run)."""

    duration_ms: int
    speed: float
    shape: str = "open"
    resolution: int = 2000

    @property
    def wall_s(self) -> float:
        return self.duration_ms / 1000 / self.speed

    def _rate(self, x: float) -> float:
        if self.shape == "ramp":
            return 0.1 + 1.9 * x
        if self.shape == "spike":
            return 5.0 if 0.45 <= x < 0.55 else 1.0
        return 1.0

    def table(self) -> tuple[list[float], list[float]]:
        """(cumulative share of simulated time, wall fraction) at `resolution` points."""
        n = self.resolution
        xs = [i / n for i in range(n + 1)]
        cum = [0.0]
        for i in range(n):
            cum.append(cum[-1] + self._rate((xs[i] + xs[i + 1]) / 2) / n)
        total = cum[-1]
        return [c / total for c in cum], xs

    def mapper(self) -> WarpMap:
        g, xs = self.table()
        return WarpMap(self.duration_ms, self.wall_s, g, xs)


@dataclass(frozen=True)
class WarpMap:
    duration_ms: int
    wall_s: float
    g: list[float]
    xs: list[float]

    def wall(self, sim_ms_in_window: float) -> float:
        u = min(1.0, max(0.0, sim_ms_in_window / self.duration_ms)) if self.duration_ms else 0.0
        i = bisect.bisect_right(self.g, u) - 1
        i = min(max(i, 0), len(self.g) - 2)
        g0, g1 = self.g[i], self.g[i + 1]
        f = 0.0 if g1 == g0 else (u - g0) / (g1 - g0)
        return (self.xs[i] + f * (self.xs[i + 1] - self.xs[i])) * self.wall_s
