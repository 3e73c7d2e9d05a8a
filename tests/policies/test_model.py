"""CardState persistence and the plain-data shapes of decisions and events."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

import policies
from policies import MAX_RECENT_TAPS, CardState, Decision, Event


def _valid() -> dict[str, Any]:
    return {
        "card_id": "card-1",
        "balance": 1_000,
        "status": "active",
        "category": "child",
        "recent_taps": [["gate-1", 1_000], ["gate-2", 2_000]],
    }


def test_round_trip_through_orjson() -> None:
    state = CardState("card-1", 1_000, "blocked", "senior", (("g", 5), ("h", 6)))
    assert CardState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state


def test_to_dict_is_plain_data() -> None:
    d = _valid()
    assert CardState.from_dict(d).to_dict() == d


def test_optional_fields_default() -> None:
    state = CardState.from_dict({"card_id": "c", "balance": 0, "status": "active"})
    assert state == CardState("c", 0, "active", "adult", ())


def test_too_many_recent_taps_keeps_newest() -> None:
    d = _valid()
    d["recent_taps"] = [[f"g{i}", i] for i in range(MAX_RECENT_TAPS + 3)]
    state = CardState.from_dict(d)
    assert len(state.recent_taps) == MAX_RECENT_TAPS
    assert state.recent_taps[-1] == (f"g{MAX_RECENT_TAPS + 2}", MAX_RECENT_TAPS + 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"card_id": ""}, "card_id"),
        ({"card_id": 7}, "card_id"),
        ({"balance": "10"}, "balance"),
        ({"balance": 1.5}, "balance"),
        ({"balance": True}, "balance"),
        ({"balance": 2**53}, "balance.*2\\*\\*53"),
        ({"status": "lost"}, "status"),
        ({"category": None}, "category"),
        ({"recent_taps": "g1"}, "recent_taps"),
        ({"recent_taps": [["g1"]]}, r"recent_taps\[0\]"),
        ({"recent_taps": [["g1", "5"]]}, r"recent_taps\[0\] time"),
        ({"recent_taps": [[1, 5]]}, r"recent_taps\[0\] gate"),
        ({"colour": "red"}, "unknown field.*colour"),
    ],
)
def test_from_dict_rejects_bad_fields(change: dict[str, object], message: str) -> None:
    d = _valid() | change
    with pytest.raises(ValueError, match=message):
        CardState.from_dict(d)


@pytest.mark.parametrize("missing", ["card_id", "balance", "status"])
def test_from_dict_rejects_missing_fields(missing: str) -> None:
    d = _valid()
    del d[missing]
    with pytest.raises(ValueError, match=f"missing field.*{missing}"):
        CardState.from_dict(d)


@pytest.mark.parametrize("bad", [None, [], "card", 5])
def test_from_dict_rejects_non_mappings(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a mapping"):
        CardState.from_dict(bad)


def test_values_are_frozen() -> None:
    state = CardState("c", 1, "active")
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.balance = 2  # type: ignore[misc]
    # slots: no stray attributes can be attached on the hot path
    assert not hasattr(state, "__dict__")


def test_decision_and_event_to_dict() -> None:
    decision = Decision(
        True, "ok", 250, 750, "fare:METRO", "v1", ({"rule": "flat_fare", "fare": 250},)
    )
    assert orjson.loads(orjson.dumps(decision.to_dict())) == {
        "approved": True,
        "reason": "ok",
        "amount": 250,
        "balance": 750,
        "product": "fare:METRO",
        "tariff_version": "v1",
        "explain": [{"rule": "flat_fare", "fare": 250}],
    }
    event = Event("fare_charged", "c", 250, 750, "op", "t", 5, "ok", "v1", "fare:METRO")
    assert orjson.loads(orjson.dumps(event.to_dict())) == {
        "type": "fare_charged",
        "card_id": "c",
        "amount": 250,
        "balance": 750,
        "operator": "op",
        "terminal_id": "t",
        "time_ms": 5,
        "reason": "ok",
        "tariff_version": "v1",
        "product": "fare:METRO",
    }


def test_public_names() -> None:
    for name in policies.__all__:
        assert hasattr(policies, name), name
    assert {"decide", "CardState", "Command", "Outcome", "reasons"} <= set(policies.__all__)
