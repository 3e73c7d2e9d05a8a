"""The ticket inspector's app in headless Chromium against a running gateway and control room:
enrol with a one-time code, check a card that paid a fare at a metro gate a moment ago (VALID,
recent fare), one that did not (NO VALID TICKET), both from verified signed answers, recorded in
the journal and charging nothing. Screenshot saved as an artefact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ops.control.handhelds import create_code
from tests.ops.apps_helpers import card_state, enrolled_app
from tests.ops.control_helpers import GATES, World, world
from tests.ops.test_dashboard_browser import artifacts_dir

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def w(redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(redis_url, tmp_path) as wd:
        yield wd


async def balance(wd: World, card: str) -> int:
    return int((await card_state(wd, card))["balance"])


async def test_inspector_checks_cards(w: World) -> None:
    from playwright.async_api import expect

    gate = await w.terminal(GATES[0])
    paid = await gate.tap("card-1")
    assert paid["result"] == "approved"
    before = {c: await balance(w, c) for c in ("card-1", "card-2")}
    made = await create_code(w.redis, kind="inspector", operator="metro", network="METRO")
    async with enrolled_app(w, "inspector", made.code) as (_, page, errors):
        await page.fill("#card", "card-1")
        await page.click("#check")
        await expect(page.locator("#result")).to_contain_text("VALID (recent_fare)",
                                                              timeout=10_000)
        await expect(page.locator("#result")).to_contain_text("category adult")
        await page.fill("#card", "card-2")
        await page.click("#check")
        await expect(page.locator("#result")).to_contain_text("NO VALID TICKET",
                                                              timeout=10_000)
        await expect(page.locator("#log tbody tr")).to_have_count(2)
        await page.screenshot(path=str(artifacts_dir() / "inspector.png"), full_page=True)
    assert not errors, errors
    assert {c: await balance(w, c) for c in before} == before  # nothing charged
    entries = [e for _, e in await w.gw.store.read_journal(count=100)
               if e.get("terminal") == made.terminal_id]
    assert [(e["card"], e["result"], e["amount"]) for e in entries] == [
        ("card-1", "approved", "0"), ("card-2", "declined", "0")]

