"""The top-up and information kiosk in headless Chromium against a running gateway and control
room on the city tariff: enrol with a one-time code, show a presented card (balance, category,
products), pay (the stub acquirer, clearly marked) and top up, buy a pass from the balance and
see it among the card's products; a payment for a top-up the card refuses is voided. Every
result comes from a verified signed authorisation. Screenshots are saved as artefacts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from ops.control.handhelds import create_code
from tests.ops.apps_helpers import card_state, enrolled_app
from tests.ops.control_helpers import World, world
from tests.ops.test_dashboard_browser import artifacts_dir

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
CARD = "card-1"  # 5,000 in the shared world


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def w(redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(redis_url, tmp_path, tariff_path=REPO / "tariffs" / "city-2026.json") as wd:
        yield wd


async def test_kiosk_shows_tops_up_and_sells_a_pass(w: World) -> None:
    from playwright.async_api import expect

    out = artifacts_dir()
    made = await create_code(w.redis, kind="kiosk", operator="city-kiosks")
    async with enrolled_app(w, "kiosk", made.code, (520, 1100)) as (_, page, errors):
        await expect(page.locator("#provider")).to_have_text("stub")

        # The card as it is.
        await page.fill("#card", CARD)
        await page.click("#show")
        await expect(page.locator("#balance")).to_have_text("50.00 USD", timeout=10_000)
        await expect(page.locator("#category")).to_have_text("adult")

        # Pay 20.00 (stub) and top up: the balance goes up once.
        await page.fill("#topup-amount", "20.00")
        await page.click("#topup")
        await expect(page.locator("#result")).to_contain_text("TOPPED UP 20.00 USD",
                                                              timeout=10_000)
        await expect(page.locator("#balance")).to_have_text("70.00 USD", timeout=10_000)
        assert (await card_state(w, CARD))["balance"] == 7_000

        # Buy the 1-day pass from the balance: it is listed among the card's products.
        await page.select_option("#product", "PASS-1D")
        await page.click("#buy")
        await expect(page.locator("#result")).to_contain_text("BOUGHT PASS-1D", timeout=10_000)
        await expect(page.locator("#products tbody")).to_contain_text("PASS-1D")
        st = await card_state(w, CARD)
        assert st["balance"] == 7_000 - 500
        assert [p["product"] for p in st["products"]] == ["PASS-1D"]
        await page.screenshot(path=str(out / "kiosk-pass.png"), full_page=True)

        # A top-up the card refuses (a blocked card): declined, and the payment voided.
        from gateway.provisioning import block_card

        assert await block_card(w.redis, "card-2")
        await page.fill("#card", "card-2")
        await page.fill("#topup-amount", "10.00")
        await page.click("#topup")
        await expect(page.locator("#result")).to_contain_text("card_blocked", timeout=10_000)
        await expect(page.locator("#result")).to_contain_text("voided")
        assert (await card_state(w, "card-2"))["balance"] == 5_000
    assert not errors, errors
    from ops.control import audit

    steps = [orjson.loads(line) for line in (await audit.export(w.redis, "jsonl")).splitlines()]
    payments = [(e["reason"], e["result"]) for e in steps if e["action"] == "kiosk_payment"]
    assert payments == [("authorise", "done"), ("capture", "done"), ("authorise", "done"),
                        ("void", "done")]
