"""kill -9 the gateway during load, restart it, and audit: every tap a terminal saw approved is
in Redis exactly once, and every balance equals what the approved taps say it must be
(terminal_sim.auditor does the checking, from the signed answers the terminals kept)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import anyio

from gateway.provisioning import gateway_keys
from gateway.store.redis_server import free_port
from gateway.store.redis_store import RedisStore
from terminal_sim.auditor import Auditor, AuditReport, Seen
from terminal_sim.driver import DriverResult, TapDriver
from terminal_sim.fleet import OPENING_BALANCE, make_cards, make_fleet
from terminal_sim.run import provision_fleet, start_gateway_process

SEED = 7


async def _audit(redis_url: str, result: DriverResult, cards: list[str]) -> AuditReport:
    operators = {t.terminal_id: t.operator for t in make_fleet(30, SEED)}
    auditor = Auditor(SEED, dict.fromkeys(cards, OPENING_BALANCE), tap_prefix=f"s{SEED}")
    for terminal, tap, card, res, reason, amount, balance, gt in result.outcomes:
        op = operators[terminal]
        auditor.saw(Seen(terminal, tap, card, res, reason, amount, balance, gt, op))
    async with RedisStore.connect(redis_url) as store:
        return await auditor.check(store)


def test_kill_9_during_load_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    n_terminals, n_cards = 30, 60
    anyio.run(provision_fleet, redis_url, n_terminals, n_cards, SEED)
    port = free_port()
    proc = start_gateway_process(port, redis_url, tmp_path)
    keys = gateway_keys(redis_url)
    fleet, cards = make_fleet(n_terminals, SEED), make_cards(n_cards, SEED)
    driver = TapDriver(
        f"ws://127.0.0.1:{port}/",
        fleet,
        cards,
        keys,
        rate=300,
        duration=4.0,
        seed=SEED,
        drain_s=20.0,
        keep_approved=True,
    )
    box: dict[str, DriverResult] = {}
    runner = threading.Thread(target=lambda: box.setdefault("r", asyncio.run(driver.run())))
    runner.start()
    restarted = None
    try:
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.5)
        restarted = start_gateway_process(port, redis_url, tmp_path)
        runner.join(60)
        assert not runner.is_alive()
    finally:
        for p in (proc, restarted):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
    result = box["r"]
    assert result.reconnects > 0, "the kill did not interrupt the load"
    assert result.errors == 0 and result.signature_failures == 0, result.error_codes
    assert result.approved + result.declined == result.taps_sent
    assert result.approved > 0
    report = anyio.run(_audit, redis_url, result, cards)
    assert report.ok, "\n".join(report.lines())
    # Every tap a terminal saw approved is journaled exactly once, with the same amount; nothing
    # was approved that no terminal heard about; every balance is what the approvals say.
    assert report.approved_taps == result.approved == len(result.approved_taps)
    assert report.checked_cards == len(cards)
    assert report.unresolved_taps == 0
    assert report.journal_entries >= result.approved
