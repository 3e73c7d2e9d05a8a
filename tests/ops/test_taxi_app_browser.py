"""The taxi driver's app in headless Chromium (Playwright driving Debian's `chromium`) against a
running gateway and control room: enrol with a one-time code (the key made by WebCrypto in the
page), start a trip, refuse an amount over the tariff's limit before any card, charge a card and
show the verified result; a charge whose answer was lost is retried after a reload with the
same tap id and charged once; an authorisation tampered with on the way (a proxy flips a byte of
its signature) shows as an error, never as approved; a used or wrong code is refused; a revoked
handheld is told so. Screenshots are saved as test artefacts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ops.control.handhelds import create_code
from tests.ops.apps_helpers import card_state, enrolled_app
from tests.ops.control_helpers import World, world
from tests.ops.test_dashboard_browser import artifacts_dir

pytestmark = pytest.mark.anyio

CARD = "card-1"  # 5,000 in the shared world


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FlippingProxy:
    """TCP between the app and the gateway that, while `armed`, flips one hex digit of the
    signature of the next `auth` the gateway sends (the websocket frames from a server are
    unmasked, so the JSON is readable on the wire)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.flipped = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, tamper: bool) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if tamper and self.armed and b'"type":"auth"' in data and b'"sig":"' in data:
                        i = data.index(b'"sig":"') + 7 + 10
                        flipped = b"0" if data[i : i + 1] != b"0" else b"1"
                        data = data[:i] + flipped + data[i + 1 :]
                        self.armed = False
                        self.flipped += 1
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r, uw, False), pipe(ur, w, True))


@pytest.fixture
async def w(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[World, FlippingProxy]]:
    proxy = FlippingProxy(0)  # told the gateway's port once it listens
    proxy_port = await proxy.start()
    try:
        async with world(redis_url, tmp_path,
                         apps_gateway_url=f"ws://127.0.0.1:{proxy_port}/") as wd:
            proxy.target_port = int(wd.gw.url.rsplit(":", 1)[1].strip("/"))
            yield wd, proxy
    finally:
        assert proxy.server is not None
        proxy.server.close()


async def balance(wd: World, card: str) -> int:
    return int((await card_state(wd, card))["balance"])


async def test_taxi_app_end_to_end(w: tuple[World, FlippingProxy]) -> None:
    from playwright.async_api import expect

    wd, proxy = w
    out = artifacts_dir()
    made = await create_code(wd.redis, kind="taxi", operator="citytaxi")
    async with enrolled_app(wd, "taxi", made.code) as (browser, page, errors):
        # Enrolled with the page's own key.
        await expect(page.locator("#tid")).to_have_text(made.terminal_id)
        await expect(page.locator("#max-tap")).to_have_text("150.00 EUR")
        rec = await wd.gw.store.get_terminal(made.terminal_id)
        assert rec is not None and rec.kind == "taxi" and rec.status == "active"

        # A trip; an amount over the limit is refused before a card is asked.
        await page.click("#start-trip")
        await page.fill("#amount", "151.00")
        await page.fill("#card", CARD)
        await page.click("#charge")
        await expect(page.locator("#charge-error")).to_contain_text("over the limit")
        assert await balance(wd, CARD) == 5_000

        # Charge 12.50: approved, verified, shown with the signing key.
        await page.fill("#amount", "12.50")
        await page.click("#charge")
        await expect(page.locator("#result")).to_contain_text("APPROVED 12.50 EUR", timeout=10_000)
        await expect(page.locator("#day-total")).to_have_text("12.50 EUR")
        await page.screenshot(path=str(out / "taxi-approved.png"), full_page=True)
        assert await balance(wd, CARD) == 5_000 - 1_250

        # The answer of a charge is lost (the phone died after sending it, before it stored
        # the answer): the tap is pending in storage, and after a reload it is retried with
        # the same tap id and content.
        await page.evaluate(
            """() => { const trips = JSON.parse(localStorage.getItem('citycard.trips'));
                       localStorage.setItem('citycard.pending',
                                            JSON.stringify(trips.pop().tap));
                       localStorage.setItem('citycard.trips', JSON.stringify(trips)); }""")
        await page.reload()
        await expect(page.locator("#status")).to_have_text("online", timeout=10_000)
        await expect(page.locator("#result")).to_contain_text("APPROVED 12.50 EUR", timeout=10_000)
        assert await page.evaluate("localStorage.getItem('citycard.pending')") is None
        assert await balance(wd, CARD) == 5_000 - 1_250  # charged once

        # A tampered authorisation: shown as an error, never as approved, and not charged twice.
        await page.click("#start-trip")
        proxy.armed = True
        await page.fill("#amount", "3.00")
        await page.fill("#card", CARD)
        await page.click("#charge")
        await expect(page.locator("#result")).to_contain_text("did not verify", timeout=10_000)
        assert proxy.flipped == 1
        assert "APPROVED" not in (await page.locator("#result").text_content() or "")
        await page.screenshot(path=str(out / "taxi-tampered.png"), full_page=True)
        # The retry (same tap id) gets the untampered original: approved, charged once.
        await expect(page.locator("#result")).to_contain_text("APPROVED 3.00 EUR", timeout=15_000)
        assert await balance(wd, CARD) == 5_000 - 1_250 - 300

        # Revoked: the open connection is closed at once, and the app says so.
        from gateway.store.deny_store import publish_control

        rec = await wd.gw.store.get_terminal(made.terminal_id)
        assert rec is not None
        from dataclasses import replace

        await wd.gw.store.put_terminal(replace(rec, status="revoked"))
        await publish_control(wd.redis, {"type": "revoke", "terminal": made.terminal_id})
        await expect(page.locator("#status")).to_have_text("refused: terminal_revoked",
                                                           timeout=10_000)
        await expect(page.locator("#result")).to_contain_text("revoked")
        await page.screenshot(path=str(out / "taxi-revoked.png"), full_page=True)

        # A second handheld: a wrong code is refused, and so is the spent one.
        other = await browser.new_page()
        await other.goto(f"{wd.base}/apps/taxi")
        await other.fill("#code", "AAAA-BBBB-CCCC-DDDD")
        await other.click("#enrol-btn")
        await expect(other.locator("#enrol-error")).to_contain_text("unknown")
        await other.fill("#code", made.code)
        await other.click("#enrol-btn")
        await expect(other.locator("#enrol-error")).to_contain_text("already used")
    assert not errors, errors

