"""Microbenchmark of the pure core: decisions per second of `policies.decide` on one core.

Run: python bench/decide_bench.py [calls]. The target is >= 50,000 decisions/s per path, which
leaves the actor, store and signing most of a tap's time budget. Each path feeds the same input
state every call (decide is pure, so this measures decide, not a growing state), with a card that
already remembers a few taps so the double-tap scan and pruning do real work.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from policies import CardState, FareTap, Outcome, Purchase, TopUp, decide, default_tariff

TARGET_PER_S = 50_000


def _rate(name: str, calls: int, step: Callable[[int], Outcome], expect: str) -> float:
    outcome = step(0)
    if outcome.decision.reason != expect:  # guard: benchmark the path we claim to
        raise SystemExit(f"{name}: expected reason {expect!r}, got {outcome.decision.reason!r}")
    for i in range(min(calls, 10_000)):  # warm-up
        step(i)
    start = time.perf_counter()
    for i in range(calls):
        step(i)
    elapsed = time.perf_counter() - start
    rate = calls / elapsed
    verdict = "ok" if rate >= TARGET_PER_S else "BELOW TARGET"
    per_call_us = elapsed * 1e6 / calls
    print(f"{name:<22} {rate:>10,.0f} decisions/s  ({per_call_us:5.2f} us/call)  {verdict}")
    return rate


def main(argv: list[str]) -> int:
    calls = int(argv[1]) if len(argv) > 1 else 200_000
    tariff = default_tariff()
    base_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    taps = tuple((f"gate-{i}", base_ms - 10_000 * i) for i in range(1, 4))
    card = CardState("card-0001", 10**12, "active", "adult", taps)
    fare = FareTap("term-0001", "metro-op", "METRO", "gate-A")
    repeat = FareTap("term-0001", "metro-op", "METRO", "gate-1")
    buy = Purchase("till-0001", "shop-op", 1_250, "bakery")
    top = TopUp("kiosk-0001", "city", 2_000)
    small_card = CardState("card-0002", 1_000, "active")

    rates = [
        _rate("FareTap (charge)", calls, lambda i: decide(card, fare, base_ms + i, tariff), "ok"),
        _rate(
            "FareTap (repeat_tap)",
            calls,
            lambda i: decide(card, repeat, base_ms + i, tariff),
            "repeat_tap",
        ),
        _rate("Purchase (charge)", calls, lambda i: decide(card, buy, base_ms + i, tariff), "ok"),
        _rate(
            "TopUp (credit)", calls, lambda i: decide(small_card, top, base_ms + i, tariff), "ok"
        ),
    ]
    return 0 if min(rates) >= TARGET_PER_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
