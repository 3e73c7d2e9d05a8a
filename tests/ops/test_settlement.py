"""Operator settlement: the clearing report sums exactly to what cardholders paid, per payee,
product and terminal, from the journal the card actor really writes (MemoryStore)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import anyio
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.card import CardActor, CardDeps, TapRequest
from gateway.store.memory_store import MemoryStore
from ops.settlement import (
    ClearingReport,
    SettlementError,
    clearing_report,
    daily_report,
    postings,
    read_entries,
)
from policies import CardState, Command, Decision, FareTap, TopUp
from policies.services.commands import (
    ParkingEntry,
    ParkingExit,
    RecycleDeposit,
    RedeemPoints,
    RetailPayment,
    TaxiFare,
    VenueEntry,
)
from policies.services.state import ServicesState
from tests.policies.services.helpers import HOUR, NOON, TARIFF, at
from tests.policies.services.strategies import commands, time_steps

ZONE = "Europe/Berlin"


async def _sign(req: TapRequest, decision: Decision, gateway_time: int) -> bytes:
    return b"signed"


async def _run(
    cards: dict[str, CardState], taps: Sequence[tuple[str, Command, int]]
) -> tuple[MemoryStore, dict[str, CardState | None]]:
    """Issue `cards`, pass every (card, command, time) through a real CardActor, and return the
    store (with its journal) and the cards' final states."""
    store = MemoryStore()
    for card, state in cards.items():
        await store.put_card(card, orjson.dumps(state.to_dict()))
    actors = {card: CardActor(card, CardDeps(store, lambda: TARIFF, _sign)) for card in cards}
    for actor in actors.values():
        await actor.on_activate()
    for seq, (card, command, now) in enumerate(taps, start=1):
        await actors[card].handle(
            TapRequest(
                command.terminal_id, command.operator, seq, f"tap-{seq}", card, "h", command, now
            )
        )
    return store, {card: actor.state for card, actor in actors.items()}


DAY_TAPS: list[tuple[str, Command, int]] = [
    ("c-1", RetailPayment("till-1", "bakery", 450, "bakery", "bakery"), NOON),
    ("c-1", RetailPayment("till-2", "bakery", 300, "bakery", "bakery"), NOON + 1),
    ("c-2", TaxiFare("taxi-17", "cityCabs", 2_340, "trip-1"), NOON + 2),
    ("c-2", TaxiFare("taxi-18", "cityCabs", 1_000), NOON + 3),
    ("c-1", ParkingEntry("pk-in", "parkco", "P-CENTRE"), NOON + 4),
    ("c-1", ParkingExit("pk-out", "parkco", "P-CENTRE"), NOON + 4 + HOUR),  # 4 periods: 3.00
    ("c-2", RecycleDeposit("kiosk-7", "green-city", "pet", 2_500), NOON + 5),  # credit 1.00
    ("c-2", RedeemPoints("kiosk-2", "city", 100), NOON + 6),  # credit 0.50 by city-rewards
    ("c-1", TopUp("kiosk-1", "city", 2_000), NOON + 7),
    ("c-1", VenueEntry("museum-1", "museums", "museum-city"), NOON + 8),  # 9.00
    ("c-2", TaxiFare("taxi-17", "cityCabs", 99_999), NOON + 9),  # declined: over the tap limit
    ("c-1", FareTap("gate-1", "metro", "METRO", "gate-1"), at("2026-03-05 09:00")),  # next day
]


@pytest.mark.anyio
async def test_daily_report_from_the_journal() -> None:
    cards = {
        "c-1": CardState("c-1", 5_000, "active"),
        "c-2": CardState("c-2", 8_000, "active", services=ServicesState(points=100)),
    }
    store, final = await _run(cards, DAY_TAPS)
    report = await daily_report(store, date(2026, 3, 4), ZONE)
    assert report.problems() == []
    got = {name: (x.charged, x.credited, x.net) for name, x in report.payees.items()}
    assert got == {
        "bakery": (750, 0, 750),
        "cityCabs": (3_340, 0, 3_340),
        "parkco": (300, 0, 300),
        "museums": (900, 0, 900),
        "green-city": (0, 100, -100),
        "city-rewards": (0, 50, -50),
        "city": (0, 2_000, -2_000),
    }
    assert report.cardholders_paid == 750 + 3_340 + 300 + 900
    assert report.cardholders_credited == 2_150
    # The drivers' earnings ledger: the taxi operator's breakdown by handheld.
    assert report.payees["cityCabs"].by_terminal == {"taxi-17": 2_340, "taxi-18": 1_000}
    assert report.payees["bakery"].by_terminal == {"till-1": 450, "till-2": 300}
    assert report.payees["parkco"].by_product == {"parking:P-CENTRE": 300}
    # The metro fare of the next day is in the next day's report only.
    next_day = await daily_report(store, date(2026, 3, 5), ZONE)
    assert {name: x.net for name, x in next_day.payees.items()} == {"metro": 250}
    everything = await daily_report(store, None, ZONE)
    opening = sum(s.balance for s in cards.values())
    closing = sum(s.balance for s in final.values() if s is not None)
    assert everything.net_paid == opening - closing
    assert sum(x.net for x in everything.payees.values()) == opening - closing
    out = everything.to_dict()
    assert out["problems"] == [] and out["net_paid"] == opening - closing
    orjson.dumps(out)


@pytest.mark.anyio
async def test_reader_pages_through_the_journal() -> None:
    store, _ = await _run({"c-1": CardState("c-1", 5_000, "active")}, DAY_TAPS[:2])
    entries = [e async for e in read_entries(store, page=1)]
    assert len(entries) == 3  # put_card, then two commits
    assert [e[1]["op"] for e in entries] == ["put_card", "commit", "commit"]


def _entry(**fields: object) -> dict[str, object]:
    event = {
        "type": "retail_payment",
        "amount": 100,
        "operator": "shop",
        "terminal_id": "t",
        "time_ms": NOON,
        "product": "retail:x",
    }
    base: dict[str, object] = {
        "op": "commit",
        "card": "c",
        "result": "approved",
        "amount": "100",
        "operator": "acquirer",
        "terminal": "t",
        "product": "retail:x",
        "time": str(NOON),
        "events": orjson.dumps([event]).decode(),
    }
    base.update(fields)
    return base


def test_payee_is_the_event_operator() -> None:
    (posting,) = postings("1-0@00", _entry())
    assert (posting.payee, posting.amount, posting.terminal) == ("shop", 100, "t")
    legacy = _entry()
    del legacy["events"]
    (old,) = postings("1-0@00", legacy)
    assert old.payee == "acquirer"


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": "99"},  # events do not add up to the decision
        {"events": "not json"},
        {"events": orjson.dumps([{"amount": 100, "operator": ""}]).decode()},
        {"amount": "1e3"},
        {"result": "declined", "amount": "100"},
    ],
)
def test_inconsistent_entries_are_rejected_not_dropped(fields: dict[str, object]) -> None:
    with pytest.raises(SettlementError):
        postings("1-0@00", _entry(**fields))
    report = clearing_report([("1-0@00", _entry(**fields)), ("2-0@00", _entry())])
    assert report.rejected and report.rejected[0][0] == "1-0@00"
    assert report.problems()
    assert report.cardholders_paid == 100  # the good entry is still counted


def test_declines_and_admin_writes_move_nothing() -> None:
    declined = _entry(result="declined", amount="0")
    admin = {"op": "put_card", "card": "c", "state": "{}"}
    report: ClearingReport = clearing_report([("1", declined), ("2", admin)])
    assert (report.entries, report.payees, report.problems()) == (2, {}, [])


CARD_IDS = ("c-1", "c-2", "c-3")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 20_000), min_size=3, max_size=3),
    st.lists(st.tuples(st.sampled_from(CARD_IDS), commands, time_steps), max_size=40),
)
def test_report_sums_exactly_to_what_cardholders_paid(
    balances: list[int], taps: list[tuple[str, Command, int]]
) -> None:
    cards = {card: CardState(card, b, "active") for card, b in zip(CARD_IDS, balances, strict=True)}
    now = NOON
    timed = []
    for card, command, step in taps:
        now += step
        timed.append((card, command, now))

    store, final = anyio.run(_run, cards, timed)
    report = anyio.run(daily_report, store, None, ZONE)
    assert report.problems() == []
    paid = credited = 0
    for _entry_id, fields in anyio.run(_all_entries, store):
        if fields.get("op") == "commit":
            amount = int(fields["amount"])
            paid += max(amount, 0)
            credited += max(-amount, 0)
    assert report.cardholders_paid == paid == sum(x.charged for x in report.payees.values())
    assert report.cardholders_credited == credited
    opening = sum(balances)
    closing = sum(s.balance for s in final.values() if s is not None)
    assert sum(x.net for x in report.payees.values()) == opening - closing
    # Every day's reports together are the whole: nothing falls between two days.
    days = {d for d in (_day(t) for _, _, t in timed)}
    per_day = [anyio.run(daily_report, store, d, ZONE) for d in days]
    assert sum(r.cardholders_paid for r in per_day) == paid


async def _all_entries(store: MemoryStore) -> list[tuple[str, dict[str, str]]]:
    return [e async for e in read_entries(store)]


def _day(ms: int) -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ms // 1000, ZoneInfo(ZONE)).date()
