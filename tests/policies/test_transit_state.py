"""The card's transit and product data: plain-data round trips, tolerance, bounds; the mapping of
wire taps onto transit commands."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import BuyProduct, CardState, FareCorrection, FareTap, TapOff, TapOn
from policies.gtfs.quote import HeldPass, JourneyState
from policies.gtfs.transfers import SubJourney
from policies.transit_state import (
    MAX_PRODUCTS,
    AutoTopup,
    HeldProduct,
    IncompleteTrip,
    OpenTrip,
    TransitJourney,
    TransitMemory,
)
from policies.transit_taps import transit_command_from_tap

JOURNEY = TransitJourney(
    "feed-1",
    "ADULT",
    JourneyState(10, SubJourney(10, 20, 1, "LOCAL", 125), (HeldPass("P", 10, 99),)),
)
PRODUCT = HeldProduct(
    "TOURIST",
    5,
    "city-tourism",
    4_500,
    48,
    "hours",
    None,
    7,
    7 + 48 * 3_600_000,
    ("museum-city", "zoo"),
    ("tourist-shops",),
)
FULL = CardState(
    "card-9",
    -120,
    "active",
    "student",
    (("g1", 3),),
    category_until_ms=1_800_000_000_000,
    products=(PRODUCT, HeldProduct("DAY", 6, "op", 500, 1, "days", ("METRO",))),
    transit=TransitMemory(
        journey=JOURNEY,
        trip=OpenTrip(
            "J3", "RAIL", "R1", "A1", 100, 450, 450, "rail-op", "in-1", "fare:X", JOURNEY
        ),
        incomplete=(IncompleteTrip("J1", "METRO", 50, 250, "metro-op"),),
        spend_days=((739_530, 300), (739_531, 450)),
        spend_months=((24_309, 750),),
        trips=3,
    ),
    auto_topup=AutoTopup(500, 2_000, 99),
)


def plain(state: CardState) -> Any:
    return orjson.loads(orjson.dumps(state.to_dict()))


def test_full_state_round_trips() -> None:
    assert CardState.from_dict(plain(FULL)) == FULL


def test_v1_cards_store_exactly_as_before() -> None:
    v1 = CardState("c", 100, "active", "adult", (("g", 1),))
    assert plain(v1) == {
        "card_id": "c",
        "balance": 100,
        "status": "active",
        "category": "adult",
        "recent_taps": [["g", 1]],
    }


def test_bounds_keep_the_newest() -> None:
    d = plain(FULL)
    d["products"] = [d["products"][1]] * (MAX_PRODUCTS + 3)
    d["transit"]["incomplete"] = [[f"J{i}", "METRO", i, 1, "o"] for i in range(20)]
    d["transit"]["spend_days"] = [[739_500 + i, 1] for i in range(20)]
    state = CardState.from_dict(d)
    assert len(state.products) == MAX_PRODUCTS
    assert state.transit is not None
    assert state.transit.incomplete[-1].ref == "J19" and len(state.transit.incomplete) == 8
    assert state.transit.spend_days[-1] == (739_519, 1) and len(state.transit.spend_days) == 7


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["category_until_ms"], "soon", "category_until_ms"),
        (["products", 0, "price"], -1, "price"),
        (["products", 0, "duration"], [1, "fortnights"], "duration unit"),
        (["products", 0, "activated_ms"], None, "go together"),
        (["products", 0, "colour"], 1, "unknown field"),
        (["transit", "trip", "charged"], -5, "charged"),
        (["transit", "incomplete", 0], ["J1"], "expected"),
        (["transit", "journey", "sub"], [1, 2], "5 values"),
        (["transit", "spend_days", 0], [0, 5], "period"),
        (["transit", "trips"], -1, "trips"),
        (["transit", "extra"], 1, "unknown field"),
        (["auto_topup", "amount"], 0, "amount"),
    ],
)
def test_bad_stored_data_is_refused_with_the_field_named(
    path: list[str | int], value: Any, message: str
) -> None:
    d = plain(FULL)
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        CardState.from_dict(d)


ids = st.text("abcJ0123-:", min_size=1, max_size=6)
ints = st.integers(-(2**40), 2**40)
amounts = st.integers(0, 10**6)
journeys = st.builds(
    TransitJourney,
    ids,
    st.one_of(st.none(), ids),
    st.builds(
        JourneyState,
        st.one_of(st.none(), ints),
        st.one_of(
            st.none(),
            st.builds(SubJourney, ints, ints, amounts, st.one_of(st.none(), ids), amounts),
        ),
        st.lists(st.builds(HeldPass, ids, ints, ints), max_size=3).map(tuple),
    ),
)
memories = st.builds(
    TransitMemory,
    st.one_of(st.none(), journeys),
    st.one_of(
        st.none(),
        st.builds(
            OpenTrip,
            ids,
            ids,
            st.one_of(st.none(), ids),
            st.one_of(st.none(), ids),
            ints,
            amounts,
            amounts,
            ids,
            ids,
            ids,
            st.one_of(st.none(), journeys),
        ),
    ),
    st.lists(st.builds(IncompleteTrip, ids, ids, ints, amounts, ids), max_size=8).map(tuple),
    st.dictionaries(st.integers(1, 10**6), amounts, max_size=7).map(
        lambda d: tuple(sorted(d.items()))
    ),
    st.dictionaries(st.integers(0, 10**5), amounts, max_size=2).map(
        lambda d: tuple(sorted(d.items()))
    ),
    st.integers(0, 10**6),
)


@given(memories, st.one_of(st.none(), ints))
def test_any_transit_memory_round_trips(memory: TransitMemory, until: int | None) -> None:
    state = CardState("c", 0, "active", transit=memory, category_until_ms=until)
    assert CardState.from_dict(plain(state)) == state


def test_wire_taps_map_onto_transit_commands() -> None:
    where = {"terminal_id": "gate-1", "operator": "metro-op", "network": "METRO", "location": "S12"}
    assert transit_command_from_tap("fare", {}, **where) == FareTap(
        "gate-1", "metro-op", "METRO", "gate-1", None, "S12"
    )
    assert transit_command_from_tap(
        "tap_on", {"route": "050", "stop": "8126", "network": "LOCAL"}, **where
    ) == TapOn("gate-1", "metro-op", "LOCAL", "gate-1", "050", "8126")
    assert transit_command_from_tap("tap_off", {}, **{**where, "location": ""}) == TapOff(
        "gate-1", "metro-op", "METRO", "gate-1", None, None
    )
    assert transit_command_from_tap("buy_product", {"product": "DAY"}, **where) == BuyProduct(
        "gate-1", "metro-op", "DAY"
    )
    assert transit_command_from_tap(
        "fare_correction", {"journey": "J4", "amount": 120}, **where
    ) == FareCorrection("gate-1", "metro-op", "J4", 120)
    assert transit_command_from_tap("fare_correction", {"journey": "J4"}, **where) is None
    assert transit_command_from_tap("buy_product", {}, **where) is None
    assert transit_command_from_tap("purchase", {"amount": 1}, **where) is None


def test_evolve_is_replace() -> None:
    from dataclasses import fields, replace

    from policies.evolve import evolve

    changes = {"balance": 7, "recent_taps": (("x", 1),), "transit": None, "products": ()}
    assert evolve(FULL, **changes) == replace(FULL, **changes)  # type: ignore[arg-type]
    assert evolve(FULL) == FULL and evolve(FULL) is not FULL
    assert not hasattr(type(FULL), "__post_init__")
    assert {f.name for f in fields(FULL)} >= set(changes)
