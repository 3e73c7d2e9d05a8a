"""Tariff validation: every number the rules trust is checked once, with the field named."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from policies import Tariff, default_tariff


def _valid() -> dict[str, Any]:
    return default_tariff().to_dict()


def test_default_tariff() -> None:
    t = default_tariff()
    assert t.version == "city-2026.1"
    assert t.currency == "EUR"
    assert dict(t.network_fares) == {"METRO": 250, "BUS": 200, "TRAM": 200}
    assert t.double_tap_window_ms == 60_000
    assert (t.max_balance, t.max_purchase, t.max_topup) == (50_000, 20_000, 20_000)


def test_round_trip_through_orjson() -> None:
    t = default_tariff()
    assert Tariff.from_dict(orjson.loads(orjson.dumps(t.to_dict()))) == t


def test_fares_cannot_be_changed_after_validation() -> None:
    fares = {"METRO": 250}
    t = Tariff("v", "EUR", fares, 0, 0, 0, 0)
    fares["METRO"] = -1
    assert t.network_fares["METRO"] == 250
    with pytest.raises(TypeError):
        t.network_fares["METRO"] = 1  # type: ignore[index]


def test_zero_values_are_allowed() -> None:
    d = _valid() | {"network_fares": {"FREE": 0}, "double_tap_window_ms": 0, "max_topup": 0}
    assert Tariff.from_dict(d).network_fares == {"FREE": 0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": ""}, "version"),
        ({"version": 1}, "version"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "E1R"}, "currency"),
        ({"network_fares": []}, "network_fares"),
        ({"network_fares": {"METRO": -1}}, r"network_fares\['METRO'\]"),
        ({"network_fares": {"METRO": 2.5}}, r"network_fares\['METRO'\]"),
        ({"network_fares": {"METRO": True}}, r"network_fares\['METRO'\]"),
        ({"network_fares": {"": 100}}, "network_fares key"),
        ({"double_tap_window_ms": -1}, "double_tap_window_ms"),
        ({"double_tap_window_ms": 1.0}, "double_tap_window_ms"),
        ({"max_balance": False}, "max_balance"),
        ({"max_purchase": -5}, "max_purchase"),
        ({"max_purchase": 2**64}, "max_purchase"),
        ({"max_topup": "100"}, "max_topup"),
        ({"max_fare": 1}, "unknown field.*max_fare"),
    ],
)
def test_from_dict_rejects_bad_fields(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Tariff.from_dict(_valid() | change)


def test_from_dict_rejects_missing_fields() -> None:
    d = _valid()
    del d["max_topup"]
    with pytest.raises(ValueError, match=r"missing field.*max_topup"):
        Tariff.from_dict(d)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="max_balance"):
        Tariff("v", "EUR", {}, 0, -1, 0, 0)
