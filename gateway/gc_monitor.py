"""Cyclic-GC pauses of the gateway process: measured, and kept short.

A full collection walks every tracked object; with tens of thousands of resident card actors that
is a pause every tap in flight waits out, and while cards are being activated their objects pile
up in the middle generation and make its collections long too (a 73 ms pause measured at 2,500
activating taps/s). The gateway therefore freezes what exists at start-up (modules, tariff,
config: never garbage) into the permanent generation, and after every young collection freezes
its survivors too: objects that outlived a young collection are almost all long-lived (resident
card actors and their state), so only young collections ever run, each over at most
GEN0_THRESHOLD new objects (under 2 ms measured). Freed objects are still freed by reference
counting; only reference cycles that survive a young collection and die later are never
reclaimed, and `snapshot()` reports the frozen count so operators can watch that it follows the
resident card count and does not creep. Every pause is recorded (`GcMonitor.snapshot()`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

#: Allocations (net container objects) between young collections; CPython's default is 700.
GEN0_THRESHOLD = 2_000
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10


@dataclass
class GcMonitor:
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    max_pause_ms: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    total_pause_ms: float = 0.0
    _started: float = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        gen = int(info["generation"])
        gc.freeze()  # the survivors: long-lived from now on (see the module docstring)
        pause = (time.perf_counter() - self._started) * 1000.0
        self.collections[gen] += 1
        self.total_pause_ms += pause
        if pause > self.max_pause_ms[gen]:
            self.max_pause_ms[gen] = pause

    def install(self) -> GcMonitor:
        gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
        gc.collect()
        gc.freeze()
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def snapshot(self) -> dict[str, object]:
        return {
            "collections": list(self.collections),
            "max_pause_ms": [round(p, 2) for p in self.max_pause_ms],
            "total_pause_ms": round(self.total_pause_ms, 1),
            "frozen": gc.get_freeze_count(),
        }
