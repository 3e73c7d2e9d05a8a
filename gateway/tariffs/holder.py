"""The tariff in force in a running gateway, and its reload (on SIGHUP or by call)."""

from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path

import anyio

from gateway.tariffs.tariff_io import TariffError, load_tariff_file
from policies import Tariff, default_tariff

log = logging.getLogger(__name__)


class TariffHolder:
    """The tariff in force; replaced whole when a new version is loaded, never mutated.

    `reload()` (also on SIGHUP) re-reads `path`: a valid tariff applies to every tap decided
    after the swap (a tap being decided keeps the tariff it started with); an invalid one is
    refused, logged, and the current tariff stays."""

    def __init__(self, tariff: Tariff, path: Path | None = None) -> None:
        self.current = tariff
        self.path = path

    def get(self) -> Tariff:
        return self.current

    def reload(self) -> Tariff:
        """Load `path` again and swap it in; `TariffError` (current tariff kept) if invalid."""
        if self.path is None:
            raise TariffError("no tariff file to reload (the gateway runs the default tariff)")
        old = self.current
        try:
            new = load_tariff(self.path)
        except TariffError as exc:
            log.error("tariff reload refused, keeping %s: %s", old.version, exc)
            raise
        self.current = new
        log.warning("tariff reloaded: %s -> %s (%s)", old.version, new.version, self.path)
        return new


def load_tariff(path: Path | None) -> Tariff:
    """The tariff in file `path` (and its GTFS feed); the built-in default when None."""
    if path is None:
        return default_tariff()
    return load_tariff_file(path)


async def reload_tariff_on_sighup(holder: TariffHolder) -> None:
    """Reload the tariff file on every SIGHUP (reading it in a worker thread)."""
    try:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                # An invalid file is logged by reload(); the current tariff stays.
                with contextlib.suppress(TariffError):
                    await anyio.to_thread.run_sync(holder.reload)
    except (NotImplementedError, RuntimeError) as exc:
        # Signals need the main thread of a POSIX process; elsewhere use TariffHolder.reload().
        log.info("SIGHUP tariff reload unavailable here: %s", exc)
