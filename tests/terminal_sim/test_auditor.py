"""The auditor finds what is wrong: a balance off by a charge, a tap journaled twice or never, an
approval no terminal heard of, a lost update hidden by a matching final balance, a ledger that
does not add up, an approval after a block."""

from __future__ import annotations

from typing import Any

import anyio

from gateway.store.memory_store import MemoryStore
from terminal_sim.auditor import Auditor, Seen

P = "run1"


def seen(
    tap: int, card: str, result: str, amount: int, balance: int, t: int, op: str = "m"
) -> Seen:
    return Seen("term-1", f"{P}-{tap}", card, result, "ok", amount, balance, t, op)


def entry(
    tap: int, card: str, result: str, amount: int, balance: int, ver: int, op: str = "m"
) -> dict[str, str]:
    return {
        "op": "commit", "card": card, "ver": str(ver), "terminal": "term-1", "tap": f"{P}-{tap}",
        "result": result, "amount": str(amount), "balance": str(balance), "operator": op,
        "time": "0",
    }


def good() -> tuple[Auditor, list[dict[str, str]], dict[str, Any]]:
    a = Auditor(9, {"A": 1000, "B": 500}, tap_prefix=P)
    a.saw(seen(1, "A", "approved", 250, 750, 10))
    a.saw(seen(2, "A", "approved", -2000, 2750, 20, "kiosk"))
    a.saw(seen(3, "B", "declined", 0, 500, 30))
    a.saw(seen(4, "A", "approved", 0, 2750, 40))  # a repeat tap
    journal = [
        entry(1, "A", "approved", 250, 750, 2),
        entry(2, "A", "approved", -2000, 2750, 3, "kiosk"),
        entry(3, "B", "declined", 0, 500, 1),
        entry(4, "A", "approved", 0, 2750, 3),
        {"op": "commit", "tap": "other-run-1", "terminal": "t", "card": "A", "result": "approved",
         "amount": "99", "balance": "0", "operator": "m"},
    ]
    states = {"A": {"balance": 2750, "status": "active"}, "B": {"balance": 500, "status": "active"}}
    return a, journal, states


def test_a_consistent_run_passes() -> None:
    a, journal, states = good()
    rep = a.compare(journal, states)
    assert rep.ok, rep.lines()
    assert rep.checked_cards == 2 and rep.approved_taps == 3 and rep.chains_verified == 2
    assert rep.ledgers == {"m": 250, "kiosk": -2000}


def test_balance_difference_names_card_and_seed() -> None:
    a, journal, states = good()
    states["A"]["balance"] = 3000
    rep = a.compare(journal, states)
    assert [d.check for d in rep.differences] == ["balance"]
    line = rep.lines()[0]
    assert "seed=9" in line and "card=A" in line


def test_journal_problems() -> None:
    a, journal, states = good()
    rep = a.compare([*journal, entry(1, "A", "approved", 250, 750, 2)], states)
    assert any(d.check == "journal entries of a decided tap" for d in rep.differences)
    rep = a.compare([e for e in journal if e.get("tap") != f"{P}-1"], states)
    assert any(d.check == "journal entries of a decided tap" for d in rep.differences)
    rep = a.compare([*journal, entry(77, "B", "approved", 100, 400, 2)], states)
    assert any(d.check == "journaled tap no terminal sent" for d in rep.differences)
    bad = [dict(e) for e in journal]
    bad[0]["amount"] = "200"
    rep = a.compare(bad, states)
    assert any(d.check == "journal vs signed auth" for d in rep.differences)
    assert any(d.check == "operator ledger" for d in rep.differences)


def test_lost_update_is_caught_even_when_the_final_balance_matches() -> None:
    # Two charges of 250 both decided on balance 1000 (the second overwrote the first) and a
    # top-up of 250 from the state nobody saw: opening - sum(amounts) matches, the chain does not.
    a = Auditor(1, {"A": 1000}, tap_prefix=P)
    a.saw(seen(1, "A", "approved", 250, 750, 10))
    a.saw(seen(2, "A", "approved", 250, 750, 11))
    a.saw(seen(3, "A", "approved", -250, 1000, 12))
    a.saw(seen(4, "A", "approved", 500, 500, 13))
    journal = [
        entry(1, "A", "approved", 250, 750, 2),
        entry(2, "A", "approved", 250, 750, 3),
        entry(3, "A", "approved", -250, 1000, 4),
        entry(4, "A", "approved", 500, 500, 5),
    ]
    rep = a.compare(journal, {"A": {"balance": 250, "status": "active"}})
    assert [d.check for d in rep.differences] == ["signed balances do not chain"]


def test_spot_balances_must_be_on_the_chain() -> None:
    a, journal, states = good()
    a.saw(seen(5, "A", "declined", 0, 1234, 50))
    rep = a.compare([*journal, entry(5, "A", "declined", 0, 1234, 3)], states)
    assert any("never on the card" in str(d.actual) for d in rep.differences)


def test_blocks_unknown_cards_and_unresolved_taps() -> None:
    a = Auditor(1, {"A": 1000}, tap_prefix=P, blocked=["A"], unknown=["X"])
    a.saw(seen(1, "A", "approved", 250, 750, 10))
    a.saw(Seen("term-1", f"{P}-2", "A", "unresolved", "", 0, 0, 0, "m"))
    a.saw(Seen("term-1", f"{P}-3", "X", "declined", "unknown_card", 0, 0, 5, "m"))
    journal = [
        entry(1, "A", "approved", 250, 750, 2),
        {"op": "put_card", "card": "A", "ver": "3", "state": '{"status":"blocked","balance":750}'},
        # the unanswered tap was decided after all: it counts, and it is reported
        entry(2, "A", "approved", 100, 650, 4),
    ]
    states: dict[str, Any] = {"A": {"balance": 650, "status": "blocked"}, "X": None}
    rep = a.compare(journal, states)
    checks = [d.check for d in rep.differences]
    assert checks == ["approved after the block"]
    assert rep.unresolved_taps == 1 and rep.unresolved_journaled == 1 and rep.blocked_checked == 1
    states["A"]["status"] = "active"
    assert "status" in [d.check for d in a.compare(journal[:2], states).differences]
    states["X"] = {"balance": 0}
    assert "unknown card has state" in [d.check for d in a.compare(journal, states).differences]


def test_check_reads_a_store() -> None:
    async def main() -> None:
        store = MemoryStore()
        a = Auditor(1, {"A": 1000}, tap_prefix=P)
        await store.put_card("A", b'{"card_id":"A","balance":1000,"status":"active"}')
        rep = await a.check(store)
        assert rep.ok and rep.checked_cards == 1

    anyio.run(main)


def test_cap_progress_past_the_cap_is_a_difference() -> None:
    a, journal, states = good()
    caps_ok = {"caps": [{"cap": "adult-day", "period": "2026-01-05", "spent": 500, "amount": 500}]}
    caps_bad = {"caps": [{"cap": "adult-day", "period": "2026-01-05", "spent": 650, "amount": 500}]}
    a.saw(Seen("term-1", f"{P}-1", "A", "approved", "ok", 250, 750, 10, "m", caps_ok))
    assert a.compare(journal, states).ok
    a.saw(Seen("term-1", f"{P}-1", "A", "approved", "ok", 250, 750, 10, "m", caps_bad))
    assert [d.check for d in a.compare(journal, states).differences] == ["past cap adult-day"]
