"""The shared simulated-terminal connection logic (terminal_sim.link)."""

from __future__ import annotations

import asyncio

import pytest

from terminal_sim.driver import TapDriver
from terminal_sim.fleet import make_fleet
from terminal_sim.wsclient import HandshakeError, WsClosed


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [WsClosed(1011, "closed during the handshake"),
     HandshakeError("connection reset during the upgrade")],
)
async def test_a_close_during_the_reconnect_handshake_is_retried(error: Exception) -> None:
    """A gateway that closes the connection mid-handshake (WsClosed) or resets it during the
    HTTP upgrade (HandshakeError, e.g. a gateway restarting) does not end the terminal's
    reconnecting: the next attempt goes ahead."""
    driver = TapDriver(
        "ws://127.0.0.1:9/", make_fleet(1, 1), ["c1"], {}, rate=1.0, duration=1.0, seed=1
    )
    term = driver.terminals[0]
    attempts: list[int] = []

    async def flaky_open() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise error

    term.open = flaky_open  # type: ignore[method-assign]
    term._start_reconnect()
    async with asyncio.timeout(5):
        while term.reconnecting:  # noqa: ASYNC110 - the reconnect task signals nothing else
            await asyncio.sleep(0.01)
    assert len(attempts) == 2
    assert driver.result.reconnects == 1
