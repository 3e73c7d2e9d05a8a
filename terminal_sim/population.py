"""Cardholders and their day: who lives where, how they commute, shop and go out, and the taps
that makes -- all seeded per cardholder, so one cardholder's day does not depend on the others.

A cardholder has a rider category (adult, senior, student, child, disabled), an opening
balance, a home stop and a routine:

* commuters (most adults, students, children) leave home in a morning peak and come back in an
  evening one, by metro (home and work near stations), by bus (along a line serving home), by car
  (parking entry and exit) or on foot; some buy breakfast at a bakery, lunch near work, or shop
  on the way home;
* others (most seniors and disabled cardholders, some adults) run errands in the late morning;
* anyone may go to the gym, a museum or a cinema in the evening (by metro or taxi, maybe a taxi
  home), recycle at a kiosk, top up at a kiosk or a till when the balance is low;
* with `event=True` (the spike profile) a share of the city is at the stadium and leaves at
  22:00, all at once, through the nearest metro station, bus line or taxi rank.

A `Planner` turns a cardholder's day into `PlannedTap`s: time (ms since local midnight),
terminal, op and op fields, using the op groups `kinds.resolve` picked for this gateway.
Gates and validators sometimes register a tap twice (the rider taps again because the gate was
slow): a second tap of the same card at the same terminal a second or two later, with its own
tap id, as a real terminal would send it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from terminal_sim.city import City, Site
from terminal_sim.kinds import Resolution, fill_fields

H = 3600.0
#: Probability that a gate / bus validator registers a tap twice.
DOUBLE_TAP_GATE = 0.05
DOUBLE_TAP_BUS = 0.03
#: Share of cardholders whose card the gateway does not know (unregistered, foreign).
UNREGISTERED = 0.003
#: Walking: km/h, and the farthest a rider walks to a station.
WALK_KMH = 4.5
STATION_WALK_KM = 1.4
TAXI_KMH = 28.0

# flags of a PlannedTap
DOUBLE = 1
UNKNOWN_CARD = 2
#: the second tap of a pair (tap off, parking exit): dropped when its first tap is not played
OUT = 4

CATEGORY_WEIGHTS = (("adult", 60), ("senior", 16), ("student", 13), ("child", 6), ("disabled", 5))
OPENING_BALANCES = ((300, 8), (800, 10), (2_000, 30), (5_000, 32), (15_000, 20))
TOPUP_AMOUNTS = (1_000, 2_000, 2_000, 5_000)
#: What a rider reckons a ride costs (the gateway computes the real fare).
TRANSIT_FARE_GUESS = 250
BAKERY_PRICES = (180, 220, 260, 350, 420, 560, 890)
MATERIALS = ("paper", "glass", "plastic", "metal")


@dataclass(frozen=True, slots=True)
class Cardholder:
    index: int
    card: str
    category: str
    opening: int
    home: str
    routine: str
    registered: bool


@dataclass(frozen=True, slots=True)
class PlannedTap:
    t_ms: int
    terminal: int
    op: str
    fields: tuple[tuple[str, object], ...]
    activity: str
    flags: int = 0
    #: taps of one journey or parking stay share a pair number (> 0)
    pair: int = 0


@dataclass
class _Day:
    holder: Cardholder
    rng: random.Random
    taps: list[PlannedTap] = field(default_factory=list)
    #: what the cardholder reckons is on the card (to top up before a payment would fail)
    wallet: int = 0
    pairs: int = 0

    def new_pair(self) -> int:
        self.pairs += 1
        return self.pairs


class Planner:
    def __init__(
        self, city: City, resolution: Resolution, seed: int, *, event: bool = False
    ) -> None:
        self.city = city
        self.res = resolution
        self.seed = seed
        self.event = event
        c = city
        self.homes = sorted({s for ln in c.lines for s in ln.stops} | set(c.stations))
        cx = [math.hypot(c.places[p].x, c.places[p].y) for p in self.homes]
        # People live everywhere, a bit denser towards the centre.
        self.home_weights = [1.0 / (1.0 + d / 6.0) for d in cx]
        self.gates: dict[str, list[int]] = {}
        for t in c.terminals:
            if t.kind == "gate":
                self.gates.setdefault(t.location, []).append(t.index)
        self.metro_lines = [i for i, ln in enumerate(c.lines) if ln.mode == "metro"]
        self.bus_lines = [i for i, ln in enumerate(c.lines) if ln.mode == "bus" and ln.vehicles]
        self._near_station: dict[str, tuple[str, float]] = {}
        self._near_sites: dict[tuple[str, str], list[Site]] = {}
        self.stadium = next((v for v in c.venues if v.sort == "stadium"), None)
        self.kiosk_places = sorted(c.kiosks)
        self.can = {a: bool(resolution.kinds_for(a)) for a in resolution.ops}
        cat = city.catalogue
        self.materials = (cat.materials if cat else ()) or MATERIALS
        self.products = cat.products if cat else ("DAY_PASS",)
        self.facilities = cat.facilities if cat else ()
        self.taxi_max = min(12_000, cat.taxi_max) if cat and cat.taxi_max else 12_000
        known = set(cat.categories) if cat else set()
        self.categories = [(c, w) for c, w in CATEGORY_WEIGHTS if not known or c in known] or [
            ("adult", 1)
        ]

    # ------------------------------------------------------------------ lookups

    def station_near(self, pid: str) -> tuple[str, float]:
        hit = self._near_station.get(pid)
        if hit is None:
            hit = (
                self.city.nearest(pid, self.city.stations) if self.city.stations else ("", math.inf)
            )
            self._near_station[pid] = hit
        return hit

    def sites_near(self, pid: str, sort: str, k: int = 4) -> list[Site]:
        key = (pid, sort)
        hit = self._near_sites.get(key)
        if hit is None:
            pool = (
                self.city.venues if sort in {v.sort for v in self.city.venues} else self.city.shops
            )
            cands = [s for s in pool if s.sort == sort]
            cands.sort(key=lambda s: (self.city.dist_km(pid, s.place), s.name))
            hit = cands[:k]
            self._near_sites[key] = hit
        return hit

    # ------------------------------------------------------------------ people

    def holder(self, index: int) -> Cardholder:
        rng = random.Random(f"holder/{self.seed}/{index}")
        cats, cw = zip(*self.categories, strict=True)
        category = rng.choices(cats, cw)[0]
        bal, bw = zip(*OPENING_BALANCES, strict=True)
        opening = rng.choices(bal, bw)[0]
        home = rng.choices(self.homes, self.home_weights)[0]
        r = rng.random()
        if category in ("student", "child"):
            routine = "school" if r < 0.92 else "errands"
        elif category == "adult":
            routine = "commute" if r < 0.72 else "errands"
        else:
            routine = "commute" if r < 0.25 else "errands"
        registered = rng.random() >= UNREGISTERED
        card = (
            f"{self.city.prefix}-card-{index:07d}"
            if registered
            else f"{self.city.prefix}-visitor-{index:07d}"
        )
        return Cardholder(index, card, category, opening, home, routine, registered)

    def day(self, holder: Cardholder) -> list[PlannedTap]:
        d = _Day(holder, random.Random(f"day/{self.seed}/{holder.index}"), wallet=holder.opening)
        rng = d.rng
        home = holder.home
        if rng.random() < 0.04:
            # a short stay: the doctor, dropping the children, a parcel
            t_in = rng.gauss(8.6 * H, 1.3 * H)
            self.park(d, t_in, t_in + rng.uniform(900, 5_400), rng.choice(self.homes))
        if rng.random() < 0.06:
            self.gym(
                d,
                rng.gauss(6.6 * H, 0.4 * H) if rng.random() < 0.5 else rng.gauss(18.6 * H, 0.8 * H),
            )
        if holder.routine in ("commute", "school"):
            self.commute(d)
        else:
            t = rng.gauss(10.3 * H, 1.0 * H)
            if rng.random() < 0.45:
                self.shop(d, t - 0.8 * H, home, "bakery")
            self.errand(d, t)
        if rng.random() < 0.05:
            self.recycle(d, rng.uniform(8 * H, 19 * H))
        if rng.random() < 0.03:
            self.topup(d, rng.uniform(7 * H, 20 * H), home)
        if rng.random() < 0.02 and self.products:
            product = rng.choices(self.products, [8] + [1] * (len(self.products) - 1))[0]
            self.simple(d, "product", rng.gauss(7.2 * H, 0.8 * H), home, {"product": product})
        if rng.random() < 0.02 and self.facilities:
            facility = rng.choice(self.facilities)
            self.simple(d, "access", rng.uniform(19 * H, 23 * H), home, {"facility": facility})
        if rng.random() < 0.01:
            self.simple(d, "redeem", rng.uniform(9 * H, 19 * H), home, {"points": 100})
        if rng.random() < 0.005:
            self.simple(
                d, "reward", rng.uniform(12 * H, 19 * H), home, {"hours": rng.randint(1, 6)}
            )
        if self.event and self.stadium is not None and rng.random() < 0.10:
            self.stadium_night(d)
        elif rng.random() < 0.10:
            self.leisure(d, rng.gauss(19.4 * H, 1.0 * H))
        out = d.taps
        if not holder.registered:
            out = [
                PlannedTap(
                    p.t_ms, p.terminal, p.op, p.fields, p.activity, p.flags | UNKNOWN_CARD, p.pair
                )
                for p in out
            ]
        return out

    # ------------------------------------------------------------------ taps

    def tap(
        self,
        d: _Day,
        t_s: float,
        activity: str,
        terminal: int,
        op: str,
        ctx: dict[str, object],
        flags: int = 0,
        pair: int = 0,
    ) -> None:
        if t_s < 0 or t_s >= 30 * H:
            return
        fields = fill_fields(op, ctx, self.res)
        d.taps.append(PlannedTap(round(t_s * 1000), terminal, op, fields, activity, flags, pair))

    def double(self, d: _Day, p: float) -> None:
        if d.taps and d.rng.random() < p:
            last = d.taps[-1]
            gap = round(d.rng.uniform(400, 2200))
            d.taps.append(
                PlannedTap(
                    last.t_ms + gap,
                    last.terminal,
                    last.op,
                    last.fields,
                    last.activity,
                    last.flags | DOUBLE,
                    last.pair,
                )
            )

    def group(self, activity: str, terminal: int) -> tuple[str, ...] | None:
        return self.res.group(activity, self.city.terminals[terminal].kind)

    def pay(self, d: _Day, t_s: float, place: str, amount: int) -> None:
        """Reckon a payment; most people top up first when they know the card is short."""
        if d.wallet < amount and d.rng.random() < 0.85:
            self.topup(d, t_s - d.rng.uniform(40, 200), place, amount - d.wallet)
        d.wallet -= amount

    def topup(self, d: _Day, t_s: float, place: str, short: int = 0) -> None:
        kinds = self.res.kinds_for("topup")
        if not kinds:
            return
        rng = d.rng
        terms: list[int] = []
        if "kiosk" in kinds and self.kiosk_places:
            kp, dist = self.city.nearest(place, self.kiosk_places)
            if dist < 1.5:
                terms = self.city.kiosks[kp]
        if not terms and "retail" in kinds:
            shops = self.sites_near(place, "shop", 2)
            terms = list(shops[0].terminals) if shops else []
        if not terms:
            return
        term = rng.choice(terms)
        group = self.group("topup", term)
        if group:
            amount = rng.choice(TOPUP_AMOUNTS)
            while amount < short and amount < 20_000:
                amount *= 2
            self.tap(d, t_s, "topup", term, group[0], {"amount": amount})
            d.wallet += amount

    def simple(
        self, d: _Day, activity: str, t_s: float, place: str, ctx: dict[str, object]
    ) -> None:
        kinds = self.res.kinds_for(activity)
        if not kinds:
            return
        c = self.city
        cands = [t.index for t in c.terminals if t.kind == kinds[0]]
        if not cands:
            return
        cands.sort(
            key=lambda i: (
                c.dist_km(place, c.terminals[i].location)
                if c.terminals[i].location in c.places
                else 99.0,
                i,
            )
        )
        term = d.rng.choice(cands[:6])
        group = self.group(activity, term)
        if group:
            self.tap(d, t_s, activity, term, group[0], {"stop": c.terminals[term].location, **ctx})

    def shop(self, d: _Day, t_s: float, place: str, sort: str, amount: int | None = None) -> None:
        if not self.can.get("shop"):
            return
        rng = d.rng
        sites = self.sites_near(place, sort)
        if not sites:
            return
        site = rng.choice(sites)
        term = rng.choice(site.terminals)
        group = self.group("shop", term)
        if not group:
            return
        if amount is None:
            if sort == "bakery":
                amount = rng.choice(BAKERY_PRICES)
            else:
                amount = int(
                    min(15_000, max(150, rng.lognormvariate(math.log(2_200), 0.8))) // 5 * 5
                )
        ctx: dict[str, object] = {
            "amount": amount,
            "merchant": site.name,
            "merchant_category": sort,
        }
        self.pay(d, t_s, place, amount)
        self.tap(d, t_s, "shop", term, group[0], ctx)

    # ------------------------------------------------------------------ trips

    def metro(self, d: _Day, t_s: float, a: str, b: str) -> float:
        """Metro from station a to station b; returns the arrival time."""
        rng = d.rng
        gates_a, gates_b = self.gates.get(a), self.gates.get(b)
        if not gates_a or not gates_b or not self.can.get("metro"):
            return t_s + self.city.dist_km(a, b) / 25 * H
        self.pay(d, t_s, a, TRANSIT_FARE_GUESS)
        g = rng.choice(gates_a)
        group = self.group("metro", g) or ("fare",)
        net = self.city.terminals[g].network
        pair = d.new_pair()
        self.tap(d, t_s, "metro", g, group[0], {"stop": a, "network": net}, pair=pair)
        self.double(d, DOUBLE_TAP_GATE)
        hops = 1.0
        for li in self.metro_lines:
            ln = self.city.lines[li]
            if a in ln.stops and b in ln.stops:
                hops = abs(ln.stops.index(a) - ln.stops.index(b))
                arrive = t_s + 120 + hops * ln.segment_s + rng.uniform(0, 240)
                break
        else:
            arrive = t_s + 300 + self.city.dist_km(a, b) / 30 * H
        if len(group) > 1:
            out = rng.choice(gates_b)
            self.tap(d, arrive, "metro", out, group[1], {"stop": b, "network": net}, OUT, pair)
            self.double(d, DOUBLE_TAP_GATE)
        return arrive + 60

    def bus(self, d: _Day, t_s: float, li: int, frm: int, to: int) -> float:
        rng = d.rng
        ln = self.city.lines[li]
        direction = 1 if to > frm else -1
        k, dep = ln.next_vehicle(frm, direction, t_s)
        term = ln.vehicles[k]
        group = self.group("bus", term)
        if group is None:
            return t_s + abs(to - frm) * ln.segment_s
        board = dep + rng.uniform(0, 25)  # the queue at the door
        self.pay(d, t_s, ln.stops[frm], TRANSIT_FARE_GUESS)  # at a kiosk or till on the way
        ctx: dict[str, object] = {"stop": ln.stops[frm], "network": ln.network, "route": ln.line_id}
        pair = d.new_pair()
        self.tap(d, board, "bus", term, group[0], ctx, pair=pair)
        self.double(d, DOUBLE_TAP_BUS)
        arrive = dep + abs(to - frm) * ln.segment_s
        if len(group) > 1:
            ctx = {"stop": ln.stops[to], "network": ln.network, "route": ln.line_id}
            self.tap(d, arrive + rng.uniform(0, 10), "bus", term, group[1], ctx, OUT, pair)
        return arrive + 30

    def taxi(self, d: _Day, t_s: float, a: str, b: str) -> float:
        c = self.city
        km = max(0.8, c.dist_km(a, b) * 1.3)
        end = t_s + 240 + km / TAXI_KMH * H
        if not c.taxis or not self.can.get("taxi"):
            return end
        term = d.rng.choice(c.taxis)  # the taxi is assigned again, without overlaps, in schedule
        group = self.group("taxi", term)
        if group:
            fare = min(self.taxi_max, int(350 + 190 * km) // 10 * 10)
            trip = f"T{d.holder.index}-{d.new_pair()}"
            self.pay(d, t_s, a, fare)
            ctx: dict[str, object] = {
                "amount": fare,
                "distance_m": round(km * 1000),
                "stop": b,
                "trip_id": trip,
            }
            self.tap(d, end, "taxi", term, group[0], ctx)
        return end + 30

    def park(self, d: _Day, t_in: float, t_out: float, place: str) -> None:
        c = self.city
        if not c.parkings or not self.can.get("parking"):
            return
        lots = sorted(c.parkings, key=lambda s: (c.dist_km(place, s.place), s.name))[:3]
        lot = d.rng.choice(lots)
        entry, exit_ = lot.terminals
        group = self.group("parking", exit_)
        if group is None:
            return
        hours = max(1, math.ceil((t_out - t_in) / H))
        fee = min(1_500, hours * lot.price)
        ctx: dict[str, object] = {
            "stop": lot.place,
            "amount": fee,
            "duration_s": round(t_out - t_in),
            "facility": lot.ref,
        }
        self.pay(d, t_in, lot.place, fee)
        if len(group) > 1:
            pair = d.new_pair()
            self.tap(d, t_in, "parking", entry, group[0], ctx, pair=pair)
            self.tap(d, t_out, "parking", exit_, group[1], ctx, OUT, pair)
        else:
            self.tap(d, t_out, "parking", exit_, group[0], ctx)

    def venue(self, d: _Day, t_s: float, site: Site) -> None:
        term = d.rng.choice(site.terminals)
        group = self.group("venue", term)
        if group:
            ctx: dict[str, object] = {
                "amount": site.price,
                "venue": site.ref or site.name,
                "stop": site.place,
            }
            self.pay(d, t_s, site.place, site.price)
            self.tap(d, t_s, "venue", term, group[0], ctx)

    def go(self, d: _Day, t_s: float, a: str, b: str, *, taxi_p: float = 0.0) -> float:
        """Travel from a to b by whatever fits: metro, a bus along a shared line, taxi, or walk."""
        rng = d.rng
        c = self.city
        if rng.random() < taxi_p:
            return self.taxi(d, t_s, a, b)
        sa, da = self.station_near(a)
        sb, db = self.station_near(b)
        if sa and sb and sa != sb and da < STATION_WALK_KM and db < STATION_WALK_KM:
            return self.metro(d, t_s + da / WALK_KMH * H, sa, sb) + db / WALK_KMH * H
        bus = self.direct_bus(a, b)
        if bus is not None:
            return self.bus(d, t_s + rng.uniform(60, 400), *bus)
        far = c.dist_km(a, b) > 2.0
        if far and sa and sb and sa != sb and da < STATION_WALK_KM:
            # metro most of the way, then a bus (or a walk) from the station
            t = self.metro(d, t_s + da / WALK_KMH * H, sa, sb)
            bus = self.direct_bus(sb, b)
            if bus is not None:
                return self.bus(d, t + rng.uniform(60, 300), *bus)
            return t + db / WALK_KMH * H
        if far and rng.random() < 0.25:
            return self.taxi(d, t_s, a, b)
        # on foot, by bike or by car without parking: no tap
        return t_s + c.dist_km(a, b) / WALK_KMH * H

    def direct_bus(self, a: str, b: str) -> tuple[int, int, int] | None:
        """(line, from, to) of a bus line serving both places, if there is one."""
        c = self.city
        for li, pa in c.serves.get(a, ()):
            if li in self.bus_lines:
                for lj, pb in c.serves.get(b, ()):
                    if lj == li and pa != pb:
                        return li, pa, pb
        return None

    def commute(self, d: _Day) -> None:
        rng = d.rng
        c = self.city
        h = d.holder
        school = h.routine == "school"
        leave = rng.gauss(7.35 * H, 0.35 * H) if school else rng.gauss(7.6 * H, 0.6 * H)
        back = rng.gauss(15.4 * H, 0.7 * H) if school else rng.gauss(17.2 * H, 0.9 * H)
        home = h.home
        # Where is work, and how to get there?
        mode = "walk"
        work = home
        sa, da = self.station_near(home)
        r = rng.random()
        bus_here = [(li, pos) for li, pos in c.serves.get(home, ()) if li in self.bus_lines]
        if h.category == "adult" and r < 0.18 and c.parkings:
            mode, work = "car", rng.choice(c.parkings).place
        elif sa and da < STATION_WALK_KM and len(c.stations) > 1 and (r < 0.75 or not bus_here):
            mode = "metro"
            work = rng.choice([s for s in c.stations if s != sa])
        elif bus_here:
            li, pos = rng.choice(bus_here)
            ln = c.lines[li]
            span = rng.randint(3, 15)
            to = pos + span if pos + span < len(ln.stops) else max(0, pos - span)
            if to != pos:
                mode, work = "bus", ln.stops[to]
        if rng.random() < 0.12:
            self.shop(d, leave - 600, home, "bakery")
        if rng.random() < 0.03:
            self.taxi(d, leave, home, rng.choice(self.homes))
            mode = "taxi"
        if mode == "metro":
            arrive = self.metro(d, leave + da / WALK_KMH * H, sa, work)
            self.metro(d, back, work, sa)
        elif mode == "bus":
            li, pos = next((li, pos) for li, pos in bus_here if work in c.lines[li].stops)
            to = c.lines[li].stops.index(work)
            arrive = self.bus(d, leave, li, pos, to)
            self.bus(d, back, li, to, pos)
        elif mode == "car":
            arrive = leave + 20 * 60
            self.park(d, arrive, back, work)
        elif mode == "taxi":
            arrive = leave + 30 * 60
            self.go(d, back, work, home, taxi_p=0.3)
        else:
            arrive = leave + 15 * 60
        if not school and rng.random() < 0.35:
            self.shop(
                d,
                rng.gauss(12.4 * H, 0.4 * H),
                work,
                rng.choice(("bakery", "shop")),
                rng.randint(45, 120) * 10,
            )
        if rng.random() < 0.25:
            self.shop(d, back + rng.uniform(1_200, 3_600), home, "shop")
        del arrive

    def errand(self, d: _Day, t_s: float) -> None:
        rng = d.rng
        c = self.city
        home = d.holder.home
        # A shop somewhere along a line from home, or around the corner.
        dest = home
        opts = [(li, pos) for li, pos in c.serves.get(home, ())]
        if opts and rng.random() < 0.6:
            li, pos = rng.choice(opts)
            ln = c.lines[li]
            to = min(len(ln.stops) - 1, pos + rng.randint(1, 8))
            dest = ln.stops[to] if to != pos else ln.stops[max(0, pos - 3)]
        there = self.go(d, t_s, home, dest)
        self.shop(d, there + rng.uniform(300, 900), dest, "shop")
        if rng.random() < 0.4:
            self.shop(d, there + rng.uniform(900, 1800), dest, "bakery")
        self.go(d, there + rng.uniform(1_800, 4_000), dest, home, taxi_p=0.05)

    def gym(self, d: _Day, t_s: float) -> None:
        sites = self.sites_near(d.holder.home, "gym", 2)
        if sites and self.can.get("venue"):
            self.venue(d, t_s, d.rng.choice(sites))

    def recycle(self, d: _Day, t_s: float) -> None:
        c = self.city
        if not c.recycling or not self.can.get("recycle"):
            return
        near = sorted(
            c.recycling, key=lambda i: (c.dist_km(d.holder.home, c.terminals[i].location), i)
        )[:2]
        term = d.rng.choice(near)
        group = self.group("recycle", term)
        if group:
            ctx: dict[str, object] = {
                "material": d.rng.choice(self.materials),
                "weight_g": d.rng.randint(200, 4_000),
            }
            self.tap(d, t_s, "recycle", term, group[0], ctx)

    def leisure(self, d: _Day, t_s: float) -> None:
        rng = d.rng
        c = self.city
        sort = rng.choice(("museum", "cinema", "cinema", "pool", "library"))
        sites = [v for v in c.venues if v.sort == sort]
        if not sites:
            return
        site = rng.choice(sites)
        there = self.go(d, t_s, d.holder.home, site.place, taxi_p=0.2)
        if self.can.get("venue"):
            self.venue(d, there + 120, site)
        self.go(d, there + rng.uniform(1.5 * H, 3 * H), site.place, d.holder.home, taxi_p=0.35)

    def stadium_night(self, d: _Day) -> None:
        rng = d.rng
        st = self.stadium
        assert st is not None
        there = self.go(d, rng.gauss(19.2 * H, 0.4 * H), d.holder.home, st.place, taxi_p=0.1)
        if self.can.get("venue"):
            self.venue(d, max(there, 18.5 * H) + 300, st)
        # The match ends at 22:00: everyone leaves within minutes.
        leave = 22 * H + abs(rng.gauss(0, 5 * 60)) + rng.uniform(0, 120)
        self.go(d, leave, st.place, d.holder.home, taxi_p=0.12)
