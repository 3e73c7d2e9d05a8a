"""The simulated city and its tap schedule: built from GTFS (or generated), seeded, reproducible,
and driven by the gateway's own tables of operations."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway.tap_commands import KIND_OPS
from gateway.wire.protocol import OPS
from terminal_sim.catalogue import load as load_catalogue
from terminal_sim.city import City, build_city
from terminal_sim.kinds import ACTIVITIES, KIND_ORDER, MOBILE_KINDS, resolve
from terminal_sim.population import DOUBLE, OUT, UNKNOWN_CARD
from terminal_sim.schedule import Schedule, Warp, build_schedule

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ctran() -> City:
    return build_city("ctran", 3)


def test_ctran_city_comes_from_the_feed(ctran: City) -> None:
    assert ctran.source.startswith("gtfs:")
    assert ctran.timezone == "America/Los_Angeles"
    bus = [ln for ln in ctran.lines if ln.mode == "bus"]
    assert len(bus) >= 20  # C-TRAN's bus routes
    assert all(ln.vehicles for ln in bus)
    # Route 007 is the one with stop_times in the full feed (tests/data has no stop_times).
    if (REPO.parent / "shared" / "data" / "gtfs" / "ctran-fares-v2" / "stop_times.txt").exists():
        assert any(ln.stops_from == "stop_times" for ln in bus)
    assert any(ln.stops_from == "names" for ln in bus)  # "Fourth Plain" -> its stops
    assert len(ctran.stations) >= 4  # synthetic metro through the transit centres
    counts = ctran.counts()
    assert set(counts) == set(KIND_ORDER)
    assert counts["bus"] == sum(len(ln.vehicles) for ln in bus)
    ids = [t.terminal_id for t in ctran.terminals]
    assert len(set(ids)) == len(ids)


def test_bus_timetable(ctran: City) -> None:
    ln = next(ln for ln in ctran.lines if ln.mode == "bus" and len(ln.vehicles) > 1)
    for t in (0.0, 7.5 * 3600, 17 * 3600 + 13):
        for d in (1, -1):
            k, dep = ln.next_vehicle(3, d, t)
            assert 0 <= k < len(ln.vehicles)
            assert t <= dep < t + ln.round_trip_s / len(ln.vehicles) + 1


def test_other_cities_and_scaling() -> None:
    grid = build_city("grid", 1)
    assert grid.source == "generated" and len(grid.stations) > 4
    mdot = build_city("mdot", 1)
    assert any(ln.mode == "metro" for ln in mdot.lines)
    big = build_city("grid", 1, terminals=1500)
    assert 1300 < len(big.terminals) < 1700
    with pytest.raises(ValueError):
        build_city("atlantis", 1)


def test_city_names_venues_and_car_parks_after_the_tariff(ctran: City) -> None:
    cat = load_catalogue()
    if cat.parking:
        assert {p.ref for p in ctran.parkings} <= set(cat.parking)
    for v in ctran.venues:
        if cat.venue_ids(v.sort):
            assert v.ref in cat.venue_ids(v.sort)


def test_resolution_reads_the_gateway_tables() -> None:
    res = resolve()
    for activity, by_kind in res.ops.items():
        for kind, group in by_kind.items():
            assert kind in ACTIVITIES[activity].kinds
            for op in group:
                assert op in KIND_OPS[kind] and op in OPS
    # Whatever the core supports today, fares and shop purchases work.
    assert res.kinds_for("shop") == ("retail",)
    assert res.group("metro", "gate") in (("fare",), ("tap_on", "tap_off"))


def test_resolution_switches_ops_on_when_the_tables_grow() -> None:
    class F:
        def __init__(self, name: str, required: bool) -> None:
            self.name, self.required = name, required

    class Op:
        def __init__(self, *fields: F) -> None:
            self.fields = fields

    ops = {
        "fare": Op(F("network", False)),
        "purchase": Op(F("amount", True)),
        "tap_on": Op(F("stop", False)),
        "tap_off": Op(F("stop", False)),
        "recycle": Op(F("material", True), F("weight_g", True)),
        "reward_credit": Op(F("secret_code", True)),
    }
    v1 = resolve({"gate": frozenset({"fare"}), "taxi": frozenset({"purchase"})}, ops)
    assert v1.group("metro", "gate") == ("fare",)
    assert v1.group("taxi", "taxi") == ("purchase",)
    assert "recycling" in v1.idle_kinds
    v2 = resolve(
        {
            "gate": frozenset({"fare", "tap_on", "tap_off"}),
            "recycling": frozenset({"recycle"}),
            "kiosk": frozenset({"reward_credit"}),
        },
        ops,
    )
    assert v2.group("metro", "gate") == ("tap_on", "tap_off")
    assert v2.group("recycle", "recycling") == ("recycle",)
    assert v2.group("reward", "kiosk") is None
    assert any("secret_code" in s for s in v2.skipped)


def _schedule(seed: int, city: City | None = None) -> Schedule:
    return build_schedule(city or build_city("ctran", seed), seed=seed, population=4000)


def test_same_seed_same_taps() -> None:
    a, b = _schedule(21), _schedule(21)
    assert a.taps == b.taps and a.outages == b.outages and a.blocks == b.blocks
    assert a.digest() == b.digest()
    assert len(a.taps) > 200
    c = _schedule(22)
    assert c.digest() != a.digest()


def test_schedule_contents(ctran: City) -> None:
    s = build_schedule(ctran, seed=3, population=6000, profile="peak")
    assert all(s.start_ms <= t.t_ms < s.end_ms for t in s.taps)
    assert [t.t_ms for t in s.taps] == sorted(t.t_ms for t in s.taps)
    kinds = {ctran.terminals[t.terminal].kind for t in s.taps}
    assert {"gate", "bus", "retail"} <= kinds
    # double taps: the same card at the same terminal a moment later
    doubles = [t for t in s.taps if t.flags & DOUBLE]
    assert doubles
    for d in doubles[:20]:
        assert any(
            o.card == d.card and o.terminal == d.terminal and 0 < d.t_ms - o.t_ms < 3000
            for o in s.taps
        )
    # every tap off / exit has its tap on in the window
    for t in s.taps:
        if t.flags & OUT and not t.flags & DOUBLE:
            assert any(o.card == t.card and o.t_ms < t.t_ms for o in s.taps)
    # outages only on the mobile network; blocks between two taps of the card
    assert s.outages and all(ctran.terminals[o.terminal].kind in MOBILE_KINDS for o in s.outages)
    assert s.blocks
    for b in s.blocks:
        times = [t.t_ms for t in s.taps if t.card == b.card]
        assert min(times) < b.t_ms < max(times)
    assert any(t.flags & UNKNOWN_CARD for t in s.taps) or s.population < 1000
    # terminal clocks drift: not every terminal_time is the true time
    midnight = ctran.midnight_ms()
    offsets = {t.terminal_time - (midnight + t.t_ms) for t in s.taps}
    assert len(offsets) > 10 and max(abs(o) for o in offsets) > 1000


def test_spike_profile_has_a_rush_of_gate_taps(ctran: City) -> None:
    s = build_schedule(ctran, seed=3, population=6000, profile="spike")
    gates = [t.t_ms for t in s.taps if ctran.terminals[t.terminal].kind == "gate"]
    ten = 22 * 3600 * 1000
    after = sum(1 for t in gates if ten <= t < ten + 600_000)
    before = sum(1 for t in gates if ten - 600_000 <= t < ten)
    assert after > 5 * max(1, before)


@pytest.mark.parametrize("shape", ["open", "ramp", "spike"])
def test_warp(shape: str) -> None:
    w = Warp(600_000, 60.0, shape).mapper()
    assert w.wall(0) == 0.0
    assert math.isclose(w.wall(600_000), 10.0)
    pts = [w.wall(ms) for ms in range(0, 600_001, 6_000)]
    assert pts == sorted(pts)
    if shape == "open":
        assert math.isclose(w.wall(300_000), 5.0)
    if shape == "ramp":
        assert w.wall(300_000) > 5.0  # half the simulated time needs more than half the wall
    if shape == "spike":
        # inside the spike simulated time runs 5x faster than around it
        inside = w.wall(330_000) - w.wall(300_000)
        outside = w.wall(120_000) - w.wall(90_000)
        assert math.isclose(outside / inside, 5.0, rel_tol=0.05)


def test_summary_says_when_the_client_is_the_bottleneck() -> None:
    from terminal_sim.citydriver import APPROVED, WorkerResult
    from terminal_sim.cityrun import CitySpec, summarise

    city = build_city("grid", 2)
    s = build_schedule(city, seed=2, population=2000)

    def result(cpu_s: float, lag_s: float) -> WorkerResult:
        r = WorkerResult(0, taps_sent=len(s.taps), approved=len(s.taps), wall_s=10.0, cpu_s=cpu_s)
        for i in range(len(s.taps)):
            r.log.add(i, APPROVED, "ok", 100, 900, 1, i, 2000, 0)
            r.send_lag.record_s(lag_s)
        return r

    spec = CitySpec(city="grid", seed=2)
    fine, _ = summarise(spec, s, 60.0, [result(2.0, 0.0005)], None, "r")
    assert fine["client_cpu_bound"] is False and fine["client_cpu_share"] == [0.2]
    busy, _ = summarise(spec, s, 60.0, [result(9.8, 0.0005)], None, "r")
    assert busy["client_cpu_bound"] is True
    late_busy, _ = summarise(spec, s, 60.0, [result(6.0, 0.050)], None, "r")
    assert late_busy["client_cpu_bound"] is True
    # late sends from an idle client: other processes had the cores, not the client's fault
    late_idle, _ = summarise(spec, s, 60.0, [result(1.0, 0.050)], None, "r")
    assert late_idle["client_cpu_bound"] is False and late_idle["client_starved"] is True
    assert set(fine["by_kind"]) <= set(KIND_ORDER) and fine["taps_sent"] == len(s.taps)
