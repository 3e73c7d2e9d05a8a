"""`CardInfo` (a kiosk showing the card): approved, nothing charged, the state unchanged, the
category, products not yet expired and points reported; a blocked or unknown card declined."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from policies import CardInfo, CardState, decide, default_tariff, reasons
from policies.transit_state import HeldProduct

TARIFF = default_tariff()
CMD = CardInfo(terminal_id="kiosk-1", operator="city")


@given(st.integers(-500, 10_000), st.sampled_from(["adult", "senior", "student"]))
def test_card_info_charges_nothing_and_changes_nothing(balance: int, category: str) -> None:
    state = CardState(card_id="c", balance=balance, status="active", category=category)
    out = decide(state, CMD, 1_765_000_000_000, TARIFF)
    d = out.decision
    assert (d.approved, d.reason, d.amount, d.balance) == (True, reasons.OK, 0, balance)
    assert out.state is state
    info = d.explain[0]
    assert info["rule"] == "card_info" and info["category"] == category


def test_products_listed_until_they_expire() -> None:
    now = 1_765_000_000_000
    live = HeldProduct("PASS-7D", now - 10, "city", 2000, 7, "days")
    used = HeldProduct("PASS-1D", now - 5 * 86_400_000, "city", 500, 1, "days",
                       activated_ms=now - 5 * 86_400_000, expires_ms=now - 4 * 86_400_000)
    state = CardState(card_id="c", balance=1, status="active", products=(live, used))
    info = decide(state, CMD, now, TARIFF).decision.explain[0]
    assert [p["product"] for p in info["products"]] == ["PASS-7D"]  # type: ignore[index, union-attr]


def test_blocked_and_unknown_cards() -> None:
    blocked = CardState(card_id="c", balance=1, status="blocked")
    assert decide(blocked, CMD, 0, TARIFF).decision.reason == reasons.CARD_BLOCKED
    assert decide(None, CMD, 0, TARIFF).decision.reason == reasons.UNKNOWN_CARD


def test_the_last_recycling_day_is_reported() -> None:
    from datetime import date

    from policies.services.state import ServicesState

    day = date(2026, 12, 7).toordinal()
    state = CardState(card_id="c", balance=1, status="active",
                      services=ServicesState(recycle_day=(day, 120)))
    info = decide(state, CMD, 0, TARIFF).decision.explain[0]
    assert info["recycling"] == {"day": "2026-12-07", "credit": 120}
