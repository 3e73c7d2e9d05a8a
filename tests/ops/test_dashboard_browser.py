"""The control-room dashboard in a real headless Chromium (Playwright driving Debian's
`chromium`), against a running gateway with the simulator tapping on it: sign in, see live taps
arrive, see the taps/s chart move, block a card from the page and see a terminal refuse it.

Screenshots are saved under `test-artifacts/` (or `$CITYCARD_ARTIFACTS`). Without Playwright or
a Chromium the test skips, except under CI=true, where it fails: CI must run it for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.wire import protocol as wire
from tests.ops.control_helpers import GATES, World, world

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
#: Chromium's switches for a container: no sandbox (we run as root), nothing fetched from outside.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CITYCARD_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_path() -> str:
    found = os.environ.get("CITYCARD_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    reason = ""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed"
    if not found:
        reason = "no chromium on PATH (apt-get install chromium)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run under CI=true (it must run there): {reason}")
        pytest.skip(reason)
    assert found
    return found


@pytest.fixture
async def w(redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(redis_url, tmp_path, silent_after_s=30.0) as w:
        yield w


async def test_dashboard_live_feed_chart_and_block(w: World, redis_url: str) -> None:
    from playwright.async_api import async_playwright, expect

    executable = chromium_path()
    out = artifacts_dir()
    # The simulator: a fleet of its own terminals and cards tapping at 20/s for the whole test.
    sim = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for in `finally`
        [sys.executable, "-m", "ops.cli", "sim", "--url", w.gw.url, "--redis-url", redis_url,
         "--terminals", "12", "--cards", "60", "--rate", "20", "--duration", "90", "--seed", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    gate = await w.terminal(GATES[0])
    try:
        assert (await gate.tap("card-1"))["result"] == "approved"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[Any] = []
            page.on("pageerror", lambda e: errors.append(e))

            # Not signed in: the dashboard sends the browser to the login page.
            await page.goto(f"{w.base}/")
            await page.wait_for_url("**/login")
            await page.fill("#token", "cco.admin-op.wrong")
            await page.click("#sign-in")
            await expect(page.locator("#login-error")).not_to_be_empty()
            await page.fill("#token", w.tokens["admin"])
            await page.click("#sign-in")
            await page.wait_for_url(f"{w.base}/")
            await expect(page.locator("#conn")).to_have_text("live", timeout=10_000)
            await expect(page.locator("#who")).to_contain_text("admin-op (admin)")

            # Live taps arrive in the feed, and the taps/s chart gains points.
            await expect(page.locator("#feed tbody tr").nth(5)).to_be_visible(timeout=20_000)
            # The simulator's terminals, enrolled after the room started, are listed online.
            await expect(page.locator("#terminals tbody tr.online").nth(6)).to_be_visible(
                timeout=10_000)
            points = "state.rate ? state.rate.data[0].length : 0"
            before = await page.evaluate(points)
            with anyio.fail_after(15):
                # Polled from here: the page's CSP (script-src 'self') forbids wait_for_function.
                while await page.evaluate(points) < before + 2:  # noqa: ASYNC110
                    await anyio.sleep(0.2)
            first = await page.evaluate(
                "Array.from(document.querySelectorAll('#feed tbody tr td:nth-child(2)'))"
                ".map(td => td.textContent)")
            feed = ("Array.from(document.querySelectorAll('#feed tbody tr td:nth-child(2)'))"
                    ".map(td => td.textContent)")
            later = first
            with anyio.move_on_after(15):  # a loaded machine may starve the simulator a while
                while later == first:
                    await anyio.sleep(0.5)
                    later = await page.evaluate(feed)
            await page.screenshot(path=str(out / "dashboard-live.png"), full_page=True)
            assert later != first, "the live feed did not move"

            # Block a card from the page: the terminal is pushed the deny list and refuses it.
            await page.fill("#a-card", "card-1")
            await page.fill("#a-reason", "reported stolen by phone")
            await page.click("#a-block")
            await expect(page.locator("#a-result")).to_contain_text("block_card: done",
                                                                    timeout=10_000)
            with anyio.fail_after(5):
                while True:
                    frame = wire.decode_gateway_message(await gate.ws.recv())
                    if frame["type"] == wire.DENY_LIST:
                        break
            refused = await gate.tap("card-1")
            assert refused["result"] == "declined" and refused["reason"] == "card_blocked"
            # The refusal shows in the live feed, marked declined.
            row = page.locator("#feed tbody tr.declined", has_text="card_blocked")
            await expect(row.first).to_be_visible(timeout=10_000)
            await page.screenshot(path=str(out / "dashboard-blocked.png"), full_page=True)
            await browser.close()
        assert not errors, errors
    finally:
        sim.terminate()
        sim.wait(20)
        await gate.ws.close()
