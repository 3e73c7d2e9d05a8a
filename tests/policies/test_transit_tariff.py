"""The transit section of the tariff: validated once, against itself and the feed; round trips."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from policies import Tariff, default_tariff
from policies.transit_tariff import NO_TRANSIT_RULES, TransitRules
from tests.policies.gtfs.helpers import CTRAN, MDOT, feed
from tests.policies.transit_helpers import BASE, CATEGORIES, at

CITY_FILE = Path(__file__).resolve().parents[2] / "tariffs" / "city-2026.json"

SECTION: dict[str, Any] = {
    "gtfs": {"feed": "ctran", "fare_media": "2"},
    "valid_from": "2025-09-14",
    "valid_until": "2026-12-31",
    "categories": CATEGORIES,
    "caps": [
        {"id": "day", "kind": "daily", "category": "adult", "amount": 500},
        {"id": "all", "kind": "monthly", "amount": 9_000},
    ],
    "products": {
        "DAY": {
            "name": "1-day",
            "prices": {"adult": 500},
            "duration": {"amount": 1, "unit": "days"},
            "networks": ["LOCAL", "METRO"],
            "venues": ["museum-city"],
            "discounts": ["d1"],
            "operator": "city",
        }
    },
    "tap_off_window_ms": 7_200_000,
    "negative_limit": 300,
}


def build(section: dict[str, Any], with_feed: bool = True, **top: Any) -> Tariff:
    return Tariff.from_dict(
        {**BASE, **top, "transit": section}, feed=feed(CTRAN) if with_feed else None
    )


def test_v1_tariff_is_unchanged() -> None:
    t = default_tariff()
    assert t.transit is NO_TRANSIT_RULES and t.transit.plain
    assert "transit" not in t.to_dict()


def test_full_section_round_trips() -> None:
    t = build(SECTION)
    rules = t.transit
    assert not rules.plain
    assert rules.timezone == "America/Los_Angeles"  # from the feed
    assert rules.valid_from_ms == at("2025-09-14T00:00")
    assert rules.valid_until_ms == at("2027-01-01T00:00")
    assert dict(rules.network_route) == {"LOCAL": "002", "REGIONAL": "060", "EXPRESS": "105"}
    assert [c.cap_id for c in rules.caps_by_category["adult"]] == ["day", "all"]
    assert [c.cap_id for c in rules.caps_by_category["youth"]] == ["all"]
    plain = orjson.loads(orjson.dumps(t.to_dict()))
    assert plain["transit"] == {**SECTION}
    again = Tariff.from_dict(plain, feed=feed(CTRAN))
    assert again == t


def test_the_shipped_city_tariff_is_valid() -> None:
    from gateway.tariffs.tariff_io import load_tariff_file

    t = load_tariff_file(CITY_FILE)
    assert t.version == "city-2026.2" and t.currency == "USD"
    assert t.transit.feed is not None and t.transit.feed.version == "20250914-20260110"
    assert set(t.transit.products) == {"PASS-1D", "PASS-7D", "PASS-31D", "TOURIST-48H"}
    assert t.transit.products["TOURIST-48H"].venues


def test_a_tariff_without_feed_works_with_flat_fares() -> None:
    section = {k: v for k, v in SECTION.items() if k != "gtfs"}
    section["categories"] = {name: {"flat_percent": 50} for name in ("adult", "youth")}
    section["products"] = {"DAY": {**SECTION["products"]["DAY"], "networks": ["METRO"]}}
    section["caps"] = [{"id": "day", "kind": "daily", "amount": 500}]
    t = build({**section, "timezone": "Europe/Berlin"}, with_feed=False)
    assert t.transit.feed is None and t.transit.timezone == "Europe/Berlin"


def _broken(path: list[str | int], value: Any) -> dict[str, Any]:
    section = copy.deepcopy(SECTION)
    target: Any = section
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return section


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["gtfs", "fare_media"], "9", "fare_media.*'9' is not in feed"),
        (["categories", "adult", "gtfs"], "ELDER", "'ELDER' is not a rider category"),
        (["categories", "adult", "flat_percent"], -1, "flat_percent"),
        (["categories", "adult", "colour"], "red", "unknown field.*colour"),
        (["default_category"], "nobody", "default_category"),
        (["caps", 0, "kind"], "yearly", "kind: expected one of"),
        (["caps", 0, "amount"], -5, "amount"),
        (["caps", 0, "category"], "nobody", "unknown category"),
        (["caps", 1, "id"], "day", "duplicate id"),
        (["products", "DAY", "prices"], {"nobody": 1}, "unknown category"),
        (["products", "DAY", "prices"], {"youth": 1}, "default category"),
        (["products", "DAY", "prices", "adult"], 2.5, "prices"),
        (["products", "DAY", "duration", "unit"], "fortnights", "duration.unit"),
        (["products", "DAY", "duration", "amount"], 0, "duration.amount"),
        (["products", "DAY", "networks"], ["SPACE"], "unknown network 'SPACE'"),
        (["products", "DAY", "venues"], ["a", "a"], "duplicate"),
        (["valid_from"], "2025-13-01", "valid_from"),
        (["valid_until"], "2025-01-01", "before valid_from"),
        (["timezone"], "Mars/Olympus", "unknown timezone"),
        (["tap_off_window_ms"], 0, "tap_off_window_ms"),
        (["negative_limit"], -1, "negative_limit"),
        (["surprise"], 1, "unknown field.*surprise"),
    ],
)
def test_invalid_sections_are_refused(path: list[str | int], value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(_broken(path, value))


def test_feed_and_tariff_must_agree() -> None:
    with pytest.raises(ValueError, match="was not loaded"):
        build(SECTION, with_feed=False)
    with pytest.raises(ValueError, match="prices in USD, the tariff in EUR"):
        build(SECTION, currency="EUR")
    with pytest.raises(ValueError, match="names none"):
        Tariff.from_dict({**BASE, "transit": {}}, feed=feed(CTRAN))
    with pytest.raises(ValueError, match="no transit section"):
        Tariff.from_dict(BASE, feed=feed(CTRAN))
    # Maryland's fare media and categories are not C-TRAN's.
    with pytest.raises(ValueError, match="'2' is not in feed 'mdot-metro-fares-v2'"):
        Tariff.from_dict({**BASE, "transit": SECTION}, feed=feed(MDOT))
    mdot = {**SECTION, "gtfs": {"feed": "mdot", "fare_media": "charmcard"}}
    with pytest.raises(ValueError, match="'ADULT' is not a rider category"):
        Tariff.from_dict({**BASE, "transit": mdot}, feed=feed(MDOT))


def test_rules_built_in_code_are_validated_too() -> None:
    with pytest.raises(ValueError, match="timezone"):
        TransitRules(timezone="Nowhere/Special")
    with pytest.raises(ValueError, match="negative_limit"):
        TransitRules(negative_limit=-1)
