"""The services tariff section and card state: plain-data round trips and refusals that name the
bad field, and how both hang off `Tariff` and `CardState` without changing v1 data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from policies import CardState, Tariff, default_tariff
from policies.services.state import (
    MAX_TRIPS,
    Membership,
    ParkingSession,
    ServicesState,
)
from policies.services.tariff import (
    NO_SERVICES,
    ServicesTariff,
    Window,
    demo_services,
)


def test_demo_section_round_trips_through_json() -> None:
    section = demo_services()
    assert ServicesTariff.from_dict(orjson.loads(orjson.dumps(section.to_dict()))) == section


def test_tariff_carries_the_section_and_v1_files_still_load() -> None:
    tariff = default_tariff()
    assert tariff.services == demo_services()
    assert Tariff.from_dict(orjson.loads(orjson.dumps(tariff.to_dict()))) == tariff
    v1 = tariff.to_dict()
    del v1["services"]
    plain = Tariff.from_dict(v1)
    assert plain.services is NO_SERVICES
    assert "services" not in plain.to_dict()


def _section() -> dict[str, Any]:
    return demo_services().to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone"),
        (lambda d: d.update(bogus=1), "unknown field"),
        (lambda d: d["parking"]["P-CENTRE"].update(period_min=0), "period_min"),
        (lambda d: d["parking"]["P-CENTRE"].pop("lost_amount"), "lost_amount"),
        (lambda d: d["taxi"].update(max_per_day=-1), "max_per_day"),
        (lambda d: d["venues"]["museum-city"]["hours"][0].update(to="25:00"), "hours"),
        (lambda d: d["venues"]["museum-city"]["hours"][0].update(days=["someday"]), "days"),
        (lambda d: d["venues"]["museum-city"]["hours"][0].update(to="10:00"), "equal"),
        (lambda d: d["venues"]["museum-city"].update(price="9"), "price"),
        (lambda d: d["recycling"]["materials"]["pet"].update(max_deposit_g=0), "max_deposit_g"),
        (lambda d: d["discounts"][0].update(percent=101), "percent"),
        (lambda d: d["discounts"].append(dict(d["discounts"][0])), "unique"),
        (lambda d: d["discounts"][0].update(entitlement="yes"), "entitlement"),
        (lambda d: d["rewards"].update(redeem_unit_points=0), "redeem_unit_points"),
        (lambda d: d["facilities"]["depot-staff-gate"].update(categories="staff"), "categories"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(change: Any, message: str) -> None:
    d = _section()
    change(d)
    with pytest.raises(ValueError, match=message):
        ServicesTariff.from_dict(d)


def test_windows() -> None:
    evening = Window(frozenset({2}), 18 * 60, 7 * 60)  # Wednesday 18:00 to Thursday 07:00
    assert evening.contains(2, 23 * 60) and evening.contains(3, 6 * 60 + 59)
    assert not evening.contains(3, 7 * 60) and not evening.contains(2, 6 * 60)
    all_day = Window.from_dict({"from": "00:00", "to": "24:00"}, "w")
    assert all(all_day.contains(d, m) for d in range(7) for m in (0, 719, 1439))


def test_state_round_trip_and_defaults() -> None:
    state = CardState(
        "card-1",
        500,
        "active",
        services=ServicesState(
            points=12,
            parking=ParkingSession("P-CENTRE", "parkco", "pk-1", 1_000),
            last_exit=("P-STATION", 900),
            taxi_day=(739_679, 2_000),
            trips=(("taxi-1", "trip-1", 2_000),),
            recycle_day=(739_679, 40),
            venue_taps=(("gym-north", 800),),
            used=(("tourist-48h@1", "museum-city"),),
            memberships=(Membership("gym", frozenset({"gym-north"}), 10**13),),
        ),
    )
    assert CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state
    assert ServicesState().to_dict() == {}
    assert "services" not in CardState("c", 0, "active").to_dict()


def test_state_lists_are_bounded_on_load() -> None:
    d = {"trips": [["t", f"trip-{i}", 100] for i in range(MAX_TRIPS + 5)]}
    assert len(ServicesState.from_dict(d).trips) == MAX_TRIPS


@pytest.mark.parametrize(
    "bad",
    [
        {"points": -1},
        {"points": "7"},
        {"parking": {"facility": "P"}},
        {"taxi_day": [1]},
        {"trips": [["t", "x"]]},
        {"memberships": [{"id": "m", "venues": "gym", "until_ms": 1}]},
        {"extra": 1},
    ],
)
def test_bad_state_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="services"):
        CardState.from_dict({"card_id": "c", "balance": 0, "status": "active", "services": bad})


def test_products_must_name_venues_and_discounts_the_services_define() -> None:
    from dataclasses import replace

    from policies.transit_tariff import ProductDef, TransitRules

    def with_tourist_card(venues: tuple[str, ...], discounts: tuple[str, ...]) -> Tariff:
        product = ProductDef(
            "T48", "tourist", {"adult": 4_500}, 48, "hours", None, venues, discounts
        )
        return replace(default_tariff(), transit=TransitRules(products={"T48": product}))

    assert with_tourist_card(("museum-city",), ("tourist-shops",)).services == demo_services()
    with pytest.raises(ValueError, match="'opera' is not a venue"):
        with_tourist_card(("opera",), ())
    with pytest.raises(ValueError, match="'half-price' is not a discount"):
        with_tourist_card((), ("half-price",))
    # Without a services section there is nothing to check the products against.
    product = ProductDef("T48", "tourist", {"adult": 4_500}, 48, "hours", None, ("opera",), ())
    plain = replace(default_tariff(), services=NO_SERVICES)
    replace(plain, transit=TransitRules(products={"T48": product}))
