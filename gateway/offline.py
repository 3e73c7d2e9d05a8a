"""What a terminal may decide while it cannot reach the gateway: the signed offline policy.

A terminal that says `"offline": true` in `hello` gets an `offline_policy` after `welcome`:
the flat fares of the current tariff (what a gate or validator charges offline), the largest
amount one offline tap may approve, and bounds on the queue of offline taps it may hold
(count, approved total, age). The terminal checks the signature, keeps the policy with its
signed deny list, and while offline decides with both, signing each offline tap with its own
key; on reconnect it uploads them as ordinary taps carrying `offline_result`,
`offline_amount` and `offline_sig`. The gateway then decides each with the real rules at the
tap's own time, charges it once (tap ids), and journals what the terminal let through but the
card could not pay (`uncollected`: the first-ride risk), for `citycard report offline`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.wire import protocol as wire
from policies import Tariff

#: Largest amount (minor units) one offline tap may approve (a fare, a taxi ride, a bakery).
OFFLINE_MAX_TAP_AMOUNT: Final = 1_000
#: Most offline taps a terminal may hold before it must decline (then upload).
OFFLINE_MAX_QUEUE_TAPS: Final = 2_000
#: Largest sum of approved offline amounts a terminal may hold.
OFFLINE_MAX_QUEUE_TOTAL: Final = 200_000
#: Oldest offline tap accepted: the terminal-time plausibility window's past bound.
OFFLINE_MAX_AGE_MS: Final = wire.MAX_TERMINAL_TIME_BEHIND_MS
#: A signed policy frame is reused for this long (a reconnect storm signs it once).
POLICY_FRAME_REUSE_S: Final = 60.0


class PolicySigner(Protocol):
    def offline_policy_frame(
        self,
        version: int,
        gateway_time: int,
        limits: tuple[int, int, int, int],
        fares: tuple[tuple[str, int], ...],
    ) -> Awaitable[bytes]: ...


@dataclass(frozen=True, slots=True)
class OfflineLimits:
    max_tap_amount: int = OFFLINE_MAX_TAP_AMOUNT
    max_queue_taps: int = OFFLINE_MAX_QUEUE_TAPS
    max_queue_total: int = OFFLINE_MAX_QUEUE_TOTAL
    max_age_ms: int = OFFLINE_MAX_AGE_MS

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.max_tap_amount, self.max_queue_taps, self.max_queue_total, self.max_age_ms)


class OfflinePolicy:
    """Builds (and briefly reuses) the signed `offline_policy` frame from the current tariff."""

    def __init__(
        self,
        signer: PolicySigner,
        tariff: Callable[[], Tariff],
        limits: OfflineLimits,
        now_ms: Callable[[], int],
    ) -> None:
        self._signer = signer
        self._tariff = tariff
        self.limits = limits
        self._now_ms = now_ms
        self._cached: tuple[str, float, bytes] | None = None  # (tariff version, made at, frame)

    def fares(self, tariff: Tariff) -> tuple[tuple[str, int], ...]:
        return tuple(
            sorted((n, a) for n, a in tariff.network_fares.items() if wire.is_identifier(n))
        )

    def version(self, tariff: Tariff) -> int:
        """Changes with the tariff's fares and the limits (CRC32 of both)."""
        text = f"{tariff.version}|{self.fares(tariff)}|{self.limits.as_tuple()}"
        return zlib.crc32(text.encode())

    async def frame(self) -> bytes:
        tariff = self._tariff()
        cached = self._cached
        now = time.monotonic()
        if cached is not None and cached[0] == tariff.version and now - cached[1] < (
            POLICY_FRAME_REUSE_S
        ):
            return cached[2]
        frame = await self._signer.offline_policy_frame(
            self.version(tariff), self._now_ms(), self.limits.as_tuple(), self.fares(tariff)
        )
        self._cached = (tariff.version, now, frame)
        return frame
