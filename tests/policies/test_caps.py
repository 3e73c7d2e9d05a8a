"""Fare caps: daily, ISO-weekly, rolling 7-day and monthly, each at its boundary in the tariff's
timezone (C-TRAN's America/Los_Angeles: UTC-7 in October, UTC-8 from 2025-11-02 02:00)."""

from __future__ import annotations

from typing import Any

from policies import CardState, decide
from tests.policies.transit_helpers import at, card, ctran_tariff, metro, rule, run

MIN = 60_000


def tariff(*caps: dict[str, Any]) -> Any:
    return ctran_tariff(caps=list(caps))


def amounts(state: CardState, times: list[str], t: Any) -> tuple[list[int], CardState]:
    """METRO (flat 250) taps at distinct gates at the given local times."""
    final, outs = run(state, [(metro(f"g{i}"), at(s)) for i, s in enumerate(times)], t)
    return [o.decision.amount for o in outs], final


def test_daily_cap_resets_at_local_midnight_not_utc() -> None:
    t = tariff({"id": "day", "kind": "daily", "amount": 600})
    charged, _ = amounts(
        card(),
        [
            "2025-10-06T16:50",  # 23:50 UTC
            "2025-10-06T17:10",  # 00:10 UTC the next day: still the same local day
            "2025-10-06T23:59",  # 100 of headroom left: 250 capped to 100
            "2025-10-06T23:59:30",  # capped: 0
            "2025-10-07T00:00:10",  # a new local day
        ],
        t,
    )
    assert charged == [250, 250, 100, 0, 250]


def test_partial_cap_is_explained_and_reported() -> None:
    t = tariff({"id": "day", "kind": "daily", "amount": 600})
    state, outs = run(
        card(),
        [
            (metro("a"), at("2025-10-06T08:00")),
            (metro("b"), at("2025-10-06T09:00")),
            (metro("c"), at("2025-10-06T10:00")),
        ],
        t,
    )
    last = outs[2]
    assert last.decision.amount == 100
    assert rule(last, "cap") == {
        "rule": "cap",
        "cap": "day",
        "kind": "daily",
        "fare": 250,
        "charged": 100,
        "saved": 150,
    }
    (progress,) = last.decision.caps
    assert (progress.cap_id, progress.period, progress.spent, progress.amount) == (
        "day",
        "2025-10-06",
        600,
        600,
    )
    assert progress.remaining == 0 and progress.saved == 150
    assert rule(last, "caps_progress")["caps"] == [
        {"cap": "day", "period": "2025-10-06", "spent": 600, "amount": 600}
    ]
    assert last.decision.to_dict()["caps"][0]["remaining"] == 0
    # Every transit decision reports progress, even the first one.
    assert outs[0].decision.caps[0].spent == 250
    assert state.transit is not None and state.transit.spend_days[-1][1] == 600


def test_weekly_cap_is_the_iso_week_in_local_time() -> None:
    # 2025-10-05 is a Sunday, 2025-10-06 a Monday: a new ISO week starts at local midnight.
    t = tariff({"id": "week", "kind": "weekly", "amount": 500})
    charged, state = amounts(
        card(),
        ["2025-09-29T08:00", "2025-10-05T23:50", "2025-10-05T23:55", "2025-10-06T00:05"],
        t,
    )
    assert charged == [250, 250, 0, 250]
    out = decide(state, metro("z"), at("2025-10-06T00:10"), t)
    assert out.decision.caps[0].period == "2025-10-06..2025-10-12"


def test_rolling_seven_day_cap() -> None:
    # Spend of day d counts until the end of day d + 6.
    t = tariff({"id": "7d", "kind": "rolling_7d", "amount": 500})
    charged, state = amounts(
        card(),
        ["2025-10-01T12:00", "2025-10-03T12:00", "2025-10-07T23:59"],
        t,
    )
    assert charged == [250, 250, 0]
    # 2025-10-08: the 1st has left the window (10-02 .. 10-08), 250 of headroom.
    out = decide(state, metro("y"), at("2025-10-08T00:01"), t)
    assert out.decision.amount == 250
    assert out.decision.caps[0].period == "2025-10-02..2025-10-08"


def test_monthly_cap_resets_on_the_first_local_day() -> None:
    t = tariff({"id": "month", "kind": "monthly", "amount": 500})
    charged, _ = amounts(
        card(),
        [
            "2025-10-01T00:01",
            "2025-10-31T16:59",  # 23:59 UTC
            "2025-10-31T17:30",  # already 2025-11-01 in UTC, still October locally: capped
            "2025-11-01T00:00:01",
        ],
        t,
    )
    assert charged == [250, 250, 0, 250]


def test_daily_cap_across_the_dst_change() -> None:
    # 2025-11-02 has 25 hours in Los Angeles: 00:30 and 23:30 are the same local day.
    t = tariff({"id": "day", "kind": "daily", "amount": 250})
    charged, _ = amounts(card(), ["2025-11-02T00:30", "2025-11-02T23:30", "2025-11-03T00:00"], t)
    assert charged == [250, 0, 250]


def test_caps_per_category_and_for_everyone() -> None:
    t = tariff(
        {"id": "adult-day", "kind": "daily", "category": "adult", "amount": 400},
        {"id": "youth-day", "kind": "daily", "category": "youth", "amount": 125},
        {"id": "all-month", "kind": "monthly", "amount": 10_000},
    )
    # Youth pays half the flat METRO fare (125); its daily cap is 125.
    youth, _ = amounts(card(category="youth"), ["2025-10-06T08:00", "2025-10-06T09:00"], t)
    assert youth == [125, 0]
    adult, state = amounts(card(), ["2025-10-06T08:00", "2025-10-06T09:00"], t)
    assert adult == [250, 150]
    out = decide(state, metro("q"), at("2025-10-06T10:00"), t)
    assert [p.cap_id for p in out.decision.caps] == ["adult-day", "all-month"]


def test_every_cap_type_binds_together() -> None:
    t = tariff(
        {"id": "day", "kind": "daily", "amount": 500},
        {"id": "week", "kind": "weekly", "amount": 1_000},
        {"id": "7d", "kind": "rolling_7d", "amount": 1_250},
        {"id": "month", "kind": "monthly", "amount": 1_500},
    )
    days = [f"2025-10-{d:02d}T{h}" for d in range(6, 13) for h in ("08:00", "09:00", "10:00")]
    charged, _ = amounts(card(100_000), days, t)
    # Mon 6th: 250 + 250 (day cap 500) + 0; Tue 7th: 500 (week cap 1000 reached); rest 0.
    assert charged[:6] == [250, 250, 0, 250, 250, 0]
    assert sum(charged) == 1_000
    # The next Monday (13th) opens a new week but the rolling 7 days (7th..13th) hold 500 of
    # the 1250 and the month 1000 of 1500: 250 + 250 then the day cap.
    more, _ = amounts(
        card(100_000),
        [*days, "2025-10-13T08:00", "2025-10-13T09:00", "2025-10-13T10:00"],
        t,
    )
    assert more[-3:] == [250, 250, 0]
