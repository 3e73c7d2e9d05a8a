"""Transit products end to end: real websocket terminals, a real Redis, a tariff file with a
(made-up, zonal) GTFS feed. Tap on / tap off at gates with registered locations, a pass bought
at a kiosk, an operator's correction from an `ops` terminal, the tariff reloaded (by call and by
SIGHUP) with its version in every decision and journal entry."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from gateway.config import GatewayConfig
from gateway.provisioning import enroll_terminal, issue_card
from gateway.server import Gateway, open_gateway
from tests.gateway.test_server import _key, authenticate, balance, verified
from tests.policies.transit_helpers import ZONAL_FILES

pytestmark = pytest.mark.anyio

CARD = "card-t1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def tariff_data(version: str) -> dict[str, Any]:
    return {
        "version": version,
        "currency": "EUR",
        "network_fares": {"METRO": 250},
        "double_tap_window_ms": 60_000,
        "max_balance": 50_000,
        "max_purchase": 20_000,
        "max_topup": 20_000,
        "transit": {
            "gtfs": {"feed": "zonal"},
            "categories": {"adult": {}, "senior": {"flat_percent": 50}},
            "caps": [{"id": "day", "kind": "daily", "amount": 5_000}],
            "products": {
                "DAY": {
                    "name": "day pass",
                    "prices": {"adult": 600},
                    "duration": {"amount": 1, "unit": "days"},
                    "operator": "city-transit",
                }
            },
        },
    }


def write_tariff(folder: Path, version: str) -> Path:
    path = folder / "tariff.json"
    path.write_bytes(orjson.dumps(tariff_data(version)))
    return path


@pytest.fixture
async def gw(redis_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    feed = tmp_path / "zonal"
    feed.mkdir()
    for name, text in ZONAL_FILES.items():
        (feed / name).write_text(text)
    path = write_tariff(tmp_path, "zonal-1")
    config = GatewayConfig(
        port=0, redis_url=redis_url, data_dir=tmp_path, heartbeat_s=5, tariff_path=path
    )
    async with open_gateway(config) as gateway:
        for tid, kind, operator, network, location in (
            ("in-A1", "gate", "rail-op", "RAIL", "A1"),
            ("in-A2", "gate", "rail-op", "RAIL", "A2"),
            ("in-C1", "gate", "rail-op", "RAIL", "C1"),
            ("in-B1", "gate", "rail-op", "RAIL", "B1"),
            ("out-B1", "gate", "station-co", "RAIL", "B1"),
            ("kiosk-1", "kiosk", "city-kiosks", "", ""),
            ("ops-1", "ops", "city-ops", "", ""),
        ):
            await enroll_terminal(
                gateway.store,
                tid,
                bytes(_key(tid).verify_key).hex(),
                kind=kind,
                operator=operator,
                network=network,
                location=location,
            )
        await issue_card(gateway.store, CARD, balance=5_000)
        yield gateway


async def journal(gw: Gateway) -> list[dict[str, str]]:
    """The journal entries of decided taps (not the admin writes)."""
    entries = await gw.store.read_journal(count=1_000)
    return [entry for _, entry in entries if entry.get("op") == "commit"]


async def test_tap_on_tap_off_pass_and_correction(gw: Gateway) -> None:
    entry = await authenticate(gw, "in-A1")
    exit_ = await authenticate(gw, "out-B1")
    kiosk = await authenticate(gw, "kiosk-1")
    ops = await authenticate(gw, "ops-1")
    # Entries at other gates: a second tap at one gate within a minute is a repeat tap.
    entry_a2, entry_c1, entry_b1 = [await authenticate(gw, t) for t in ("in-A2", "in-C1", "in-B1")]
    try:
        # Zone A -> the dearest destination (C, 450) at entry; leaving at B (300): 150 back.
        on = await entry.tap("on-1", CARD, "tap_on")
        assert (on["result"], on["amount"], on["balance"]) == ("approved", 450, 4_550)
        assert verified(gw, on)
        assert on["detail"]["tariff_version"] == "zonal-1"
        # The terminal sees how far the card is toward its caps.
        day_cap = next(c for c in on["detail"]["caps"] if c["cap"] == "day")
        assert (day_cap["spent"], day_cap["amount"]) == (450, 5_000), on["detail"]["caps"]
        explain = on["detail"]["explain"]
        assert {"rule": "tap_on", "journey": "J1"}.items() <= next(
            s for s in explain if s["rule"] == "tap_on"
        ).items()
        off = await exit_.tap("off-1", CARD, "tap_off")
        assert (off["result"], off["amount"], off["balance"]) == ("approved", -150, 4_700)
        # A retried tap id gets the very same answer, not a second credit.
        again = await exit_.tap("off-1", CARD, "tap_off", seq=exit_.seq)
        assert again == off
        # Two tap ons: the first (J2) is left incomplete at its 450; the ops desk corrects it.
        assert (await entry_a2.tap("on-2", CARD, "tap_on"))["amount"] == 450
        assert (await entry_c1.tap("on-3", CARD, "tap_on"))["amount"] == 450  # C -> A: 450
        fix = await ops.tap("fix-1", CARD, "fare_correction", journey="J2", amount=300)
        assert (fix["result"], fix["amount"]) == ("approved", -150), fix
        # A pass from the kiosk; the next entry rides on it.
        bought = await kiosk.tap("buy-1", CARD, "buy_product", product="DAY")
        assert (bought["result"], bought["amount"]) == ("approved", 600)
        ride = await entry_b1.tap("on-4", CARD, "tap_on")
        assert (ride["result"], ride["amount"]) == ("approved", 0)
        assert ride["detail"]["explain"][1]["rule"] == "incomplete_trip"
        # What each kind of terminal may do is the KIND_OPS table's business.
        refused = await kiosk.tap("buy-2", CARD, "tap_on")
        assert (refused["result"], refused["reason"]) == ("declined", "unsupported_operation")
        refused = await entry.tap("buy-3", CARD, "buy_product", product="DAY")
        assert refused["reason"] == "unsupported_operation"
        unknown = await kiosk.tap("buy-4", CARD, "buy_product", product="NOPE")
        assert unknown["reason"] == "unknown_product"
    finally:
        for t in (entry, exit_, kiosk, ops, entry_a2, entry_c1, entry_b1):
            await t.ws.close()
    # Stored: 5000 - 450 + 150 - 450 - 450 + 150 - 600 = 3350.
    assert await balance(gw, CARD) == 3_350
    entries = await journal(gw)
    assert entries and all(e["tariff"] == "zonal-1" for e in entries)
    credit = next(e for e in entries if e.get("tap") == "off-1")
    events = orjson.loads(credit["events"])
    assert (events[0]["type"], events[0]["operator"], events[0]["amount"]) == (
        "tap_off",
        "rail-op",
        -150,
    )


async def test_reload_applies_to_taps_decided_after_the_swap(gw: Gateway, tmp_path: Path) -> None:
    gate = await authenticate(gw, "in-A1")
    try:
        first = await gate.tap("r-1", CARD, "fare")
        assert first["detail"]["tariff_version"] == "zonal-1"
        write_tariff(tmp_path, "zonal-2")
        assert gw.tariff.reload().version == "zonal-2"
        second = await gate.tap("r-2", CARD, "fare", stop="B1")
        assert second["detail"]["tariff_version"] == "zonal-2"
        # An invalid file is refused; the gateway keeps deciding with zonal-2.
        (tmp_path / "tariff.json").write_text('{"version": ""}')
        with pytest.raises(ValueError):
            gw.tariff.reload()
        third = await gate.tap("r-3", CARD, "fare", stop="C1")
        assert third["detail"]["tariff_version"] == "zonal-2"
        # SIGHUP reloads too (the gateway registered its handler: the default would kill us).
        if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, signal.SIG_IGN, None):
            pytest.skip("no SIGHUP handler in this process")
        write_tariff(tmp_path, "zonal-3")
        os.kill(os.getpid(), signal.SIGHUP)
        with anyio.fail_after(5):
            while gw.tariff.get().version != "zonal-3":  # noqa: ASYNC110 (polls another thread)
                await anyio.sleep(0.01)
        fourth = await gate.tap("r-4", CARD, "fare", stop="A2")
        assert fourth["detail"]["tariff_version"] == "zonal-3"
    finally:
        await gate.ws.close()
    versions = [e["tariff"] for e in await journal(gw)]
    assert versions == ["zonal-1", "zonal-2", "zonal-2", "zonal-3"]
