"""One log line per incident, not one per failure.

When a dependency fails (Redis restarting, loading its AOF, a key holder gone), every tap in
flight fails the same way: a line and a traceback each would flood the log (10,057 tracebacks in
16 s were measured before this existed) and bury the one line an operator needs. An
`IncidentLog` logs the first failure of an incident (with its traceback, once), counts the rest,
repeats a one-line count at most every `repeat_s` while the incident lasts, and logs one line
with the total when the next success ends it. Messages never carry the failing key (card keys
are personal data).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

#: While an incident lasts, a one-line count is logged at most this often.
REPEAT_S: Final = 60.0


class IncidentLog:
    """Failures of one kind of operation (`what`), logged per incident."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        repeat_s: float = REPEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.what = what
        self._repeat_s = repeat_s
        self._clock = clock
        self.failures = 0  # in the current incident
        self.incidents = 0  # since start
        self._started = 0.0
        self._last_line = 0.0

    @property
    def open(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException, *, traceback: bool = True) -> None:
        now = self._clock()
        self.failures += 1
        if self.failures == 1:
            self.incidents += 1
            self._started = self._last_line = now
            self._log.warning(
                "%s failing: %s: %s (one line per incident; counted until it recovers)",
                self.what,
                type(exc).__name__,
                exc,
                exc_info=exc if traceback else None,
            )
        elif now - self._last_line >= self._repeat_s:
            self._last_line = now
            self._log.warning(
                "%s still failing after %.0f s: %d failures so far; last %s: %s",
                self.what,
                now - self._started,
                self.failures,
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        if not self.failures:
            return
        self._log.warning(
            "%s recovered after %.1f s: %d failures in this incident",
            self.what,
            self._clock() - self._started,
            self.failures,
        )
        self.failures = 0
