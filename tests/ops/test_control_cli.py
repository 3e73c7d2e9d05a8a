"""`citycard operators`, `citycard admin` and `citycard watch`, run as an operator runs them
(child processes) against a running gateway and control room: the same role checks, reasons and
audit log as the dashboard."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest

from gateway.wire import protocol as wire
from ops.control import audit
from tests.ops.control_helpers import GATES, World, world

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "ops.cli"]


@pytest.fixture
async def w(redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with world(redis_url, tmp_path) as w:
        yield w


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)

    return await anyio.to_thread.run_sync(run)


async def test_operators_are_made_listed_and_disabled(w: World, redis_url: str) -> None:
    made = await cli("operators", "add", "night-desk", "--role", "supervisor",
                     "--redis-url", redis_url)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().rsplit(" ", 1)[-1]
    assert token.startswith("cco.night-desk.") and "cannot be shown again" in made.stderr
    listed = (await cli("operators", "list", "--redis-url", redis_url)).stdout
    assert "night-desk\tsupervisor\tactive" in listed and token not in listed
    again = await cli("operators", "add", "night-desk", "--role", "admin",
                      "--redis-url", redis_url)
    assert again.returncode == 2
    assert (await cli("operators", "disable", "night-desk", "--redis-url", redis_url)
            ).returncode == 0
    refused = await cli("admin", "block", "card-1", "--reason", "test", "--token", token,
                        "--redis-url", redis_url)
    assert refused.returncode == 1 and "refused (not_authenticated)" in refused.stderr


async def test_admin_block_from_the_command_line(w: World, redis_url: str) -> None:
    gate = await w.terminal(GATES[2])
    sup = w.tokens["supervisor"]
    # No reason: refused, and the refusal is in the audit log.
    bare = await cli("admin", "block", "card-2", "--token", sup, "--redis-url", redis_url)
    assert bare.returncode == 1 and "refused (reason_required)" in bare.stderr, bare.stderr
    viewer = await cli("admin", "block", "card-2", "--reason", "x", "--token",
                       w.tokens["viewer"], "--redis-url", redis_url)
    assert viewer.returncode == 1 and "refused (forbidden)" in viewer.stderr, viewer.stderr
    done = await cli("admin", "block", "card-2", "--reason", "lost, reported by phone",
                     "--token", sup, "--redis-url", redis_url, "--request-id", "cli-req-1")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["result"]["status"] == "blocked"
    with anyio.fail_after(5):
        while wire.decode_gateway_message(await gate.ws.recv())["type"] != wire.DENY_LIST:
            pass
    assert (await gate.tap("card-2"))["reason"] == "card_blocked"
    replay = await cli("admin", "block", "card-2", "--reason", "again", "--token", sup,
                       "--redis-url", redis_url, "--request-id", "cli-req-1")
    assert replay.returncode == 1 and "refused (replayed)" in replay.stderr, replay.stderr
    unknown = await cli("admin", "adjust", "no-such-card", "--credit", "100", "--reason", "r",
                        "--token", sup, "--redis-url", redis_url)
    assert unknown.returncode == 1 and "unknown_card" in unknown.stderr, unknown.stderr

    results = [(r["operator"], r["action"], r["result"][:7]) for r in await audit.read(w.redis)]
    assert ("supervisor-op", "block_card", "refused") in results
    assert ("viewer-op", "block_card", "refused") in results
    assert ("supervisor-op", "block_card", "done") in results
    # The audit log exports (admin only), and the export itself is audited.
    assert (await cli("admin", "audit", "--token", sup, "--redis-url", redis_url)
            ).returncode == 2
    exported = await cli("admin", "audit", "--format", "csv", "--token", w.tokens["admin"],
                         "--redis-url", redis_url)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert any(r["action"] == "block_card" and r["reason"] == "lost, reported by phone"
               and r["result"] == "done" for r in rows)
    assert any(r["action"] == "export_audit" for r in await audit.read(w.redis))


async def test_watch_prints_the_filtered_stream(w: World) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "watch", "--url", w.base, "--token", w.tokens["viewer"], "--declines",
             "--plain", "--max-messages", "1"],
            capture_output=True, text=True, timeout=60)

    async with anyio.create_task_group() as tg:
        out: list[subprocess.CompletedProcess[str]] = []

        async def watch() -> None:
            out.append(await anyio.to_thread.run_sync(run))

        tg.start_soon(watch)
        gate = await w.terminal(GATES[1])
        with anyio.fail_after(30):
            while not out:
                await gate.tap("card-1")  # approved: filtered out
                await gate.tap("card-poor")  # declined: shown
                await anyio.sleep(0.3)
    lines = [orjson.loads(line) for line in out[0].stdout.splitlines() if line.startswith("{")]
    taps = [m for m in lines if m.get("type") == "tap"]
    assert taps and all(m["result"] == "declined" for m in taps), out[0].stdout
    assert taps[0]["card"] == "card-poor"
