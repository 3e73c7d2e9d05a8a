"""Hypothesis strategies for the city-services properties: every service command (and the v1
ones) with small pools of ids, so repeats, limits, unknown ids and bad quantities come up often."""

from __future__ import annotations

from hypothesis import strategies as st

from policies import CardState, Command, FareTap, Purchase, TopUp
from policies.services.commands import (
    FacilityAccess,
    ParkingClose,
    ParkingEntry,
    ParkingExit,
    RecycleDeposit,
    RedeemPoints,
    RetailPayment,
    RewardCredit,
    TaxiFare,
    VenueEntry,
)
from policies.services.state import Membership, ParkingSession, ServicesState
from policies.transit_state import HeldProduct
from tests.policies.services.helpers import HOUR, NOON
from tests.policies.strategies import amounts

terminals = st.sampled_from(["t-1", "t-2", "t-3"])
operators = st.sampled_from(["parkco", "cityCabs", "city", "green-city", "culture-op"])
facilities = st.sampled_from(["P-CENTRE", "P-STATION", "P-NOWHERE"])
venues = st.sampled_from(["museum-city", "cinema-lux", "library-central", "gym-north", "opera"])
access_points = st.sampled_from(["school-north-grounds", "depot-staff-gate", "moon-base"])
materials = st.sampled_from(["pet", "glass", "cardboard", "aluminium", "uranium"])
quantities: st.SearchStrategy[object] = st.one_of(
    st.integers(-10, 40_000),
    st.sampled_from([0, 1, 12, 13, 100, 300, 15_000, 15_001, 10_000_000, 10**30]),
    st.sampled_from([True, 1.5, "7", None]),
)
categories = st.sampled_from(["bakery", "souvenir", "cafe", "butcher"])
merchants = st.sampled_from(["baker-anna", "souvenirs-1"])
trips = st.sampled_from(["", "trip-1", "trip-2"])

service_commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(ParkingEntry, terminals, operators, facilities),
    st.builds(ParkingExit, terminals, operators, facilities),
    st.builds(ParkingClose, terminals, operators, facilities),
    st.builds(TaxiFare, terminals, operators, amounts, trips),
    st.builds(RetailPayment, terminals, operators, amounts, merchants, categories),
    st.builds(VenueEntry, terminals, operators, venues),
    st.builds(RecycleDeposit, terminals, operators, materials, quantities),
    st.builds(RewardCredit, terminals, st.sampled_from(["city", "shop-op"]), quantities),
    st.builds(RedeemPoints, terminals, operators, quantities),
    st.builds(FacilityAccess, terminals, operators, access_points),
)
v1_commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(
        FareTap,
        terminals,
        st.just("metro-op"),
        st.sampled_from(["METRO", "BUS"]),
        st.sampled_from(["gate-1", "gate-2"]),
    ),
    st.builds(Purchase, terminals, operators, amounts, merchants),
    st.builds(TopUp, terminals, operators, amounts),
)
commands: st.SearchStrategy[Command] = st.one_of(service_commands, service_commands, v1_commands)

times = st.integers(NOON - 40 * HOUR, NOON + 40 * HOUR)
time_steps = st.one_of(
    st.integers(0, 90_000),
    st.integers(0, 6 * HOUR),
    st.sampled_from([0, 59_999, 60_000, 25 * HOUR]),
)

services_states = st.builds(
    ServicesState,
    points=st.integers(0, 2_000),
    parking=st.one_of(
        st.none(),
        st.builds(
            ParkingSession,
            st.sampled_from(["P-CENTRE", "P-STATION", "P-GONE"]),
            operators,
            terminals,
            times,
        ),
    ),
    memberships=st.lists(
        st.builds(
            Membership,
            st.just("gym"),
            st.just(frozenset({"gym-north"})),
            times,
            st.just(frozenset({"tourist-shops"})),
        ),
        max_size=1,
    ).map(tuple),
)
tourist = st.builds(
    HeldProduct,
    st.just("tourist-48h"),
    st.just(NOON - 50 * HOUR),
    st.just("city-tourism"),
    st.just(3_900),
    st.just(48),
    st.just("hours"),
    networks=st.none(),
    venues=st.just(("museum-city", "cinema-lux")),
    discounts=st.just(("tourist-shops",)),
)
card_states = st.builds(
    CardState,
    card_id=st.sampled_from(["card-1", "card-2"]),
    balance=st.integers(0, 50_000),
    status=st.sampled_from(["active", "active", "active", "blocked"]),
    category=st.sampled_from(["adult", "senior", "student", "staff"]),
    services=st.one_of(st.none(), services_states),
    products=st.lists(tourist, max_size=1).map(tuple),
)
