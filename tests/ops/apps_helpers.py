"""What the handheld-app browser tests share: a headless Chromium page on one of the apps,
enrolled with a one-time code and online; the page errors it saw; a card's stored state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from tests.ops.control_helpers import World
from tests.ops.test_dashboard_browser import CHROMIUM_ARGS, chromium_path


@asynccontextmanager
async def enrolled_app(
    w: World, app: str, code: str, viewport: tuple[int, int] = (480, 900)
) -> AsyncIterator[tuple[Any, Any, list[Any]]]:
    """(browser, page, page errors) of `/apps/<app>` enrolled with `code` and online."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        errors: list[Any] = []
        page.on("pageerror", lambda e: errors.append(e))
        await page.goto(f"{w.base}/apps/{app}")
        await page.fill("#code", code)
        await page.click("#enrol-btn")
        await expect(page.locator("#status")).to_have_text("online", timeout=10_000)
        try:
            yield browser, page, errors
        finally:
            await browser.close()


async def card_state(w: World, card: str) -> dict[str, Any]:
    rec = await w.gw.store.load_card(card)
    assert rec is not None
    return dict(orjson.loads(rec.state))
