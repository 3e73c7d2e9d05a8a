"""Payments for kiosk top-ups: the interface a real acquirer plugs into, and a stub.

A kiosk top-up is two steps: the customer pays (a card payment at the kiosk, through an
acquirer), then the kiosk loads the money onto the city card with a `topup` tap. The payment is
authorised first and captured only once the top-up was approved, so a declined top-up (a card
at its balance limit, a blocked card) is voided and the customer is not charged.

`StubAcquirer` is **a stub, not a payment provider**: it approves every amount up to
`STUB_MAX_AMOUNT` without moving any money, and says so in every answer (`"provider": "stub"`).
A real integration implements `Acquirer` against the acquirer's API (authorise, capture, void
with an idempotency key per kiosk payment).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final, Protocol

#: The stub approves payments up to this amount (minor units).
STUB_MAX_AMOUNT: Final = 20_000
#: Authorisations the stub remembers (bounded: oldest forgotten).
STUB_MAX_PAYMENTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    approved: bool
    amount: int
    currency: str
    provider: str
    reason: str = ""


class Acquirer(Protocol):
    """What a kiosk top-up needs from a payment provider."""

    async def authorise(self, amount: int, currency: str, reference: str) -> Payment: ...
    async def capture(self, payment_id: str) -> Payment: ...
    async def void(self, payment_id: str) -> Payment: ...


class StubAcquirer:
    """Approves without moving money. For tests and demonstrations only."""

    provider: Final = "stub"

    def __init__(self) -> None:
        self._payments: dict[str, Payment] = {}
        self._by_reference: dict[str, str] = {}
        self.state: dict[str, str] = {}  # payment id -> authorised | captured | voided

    async def authorise(self, amount: int, currency: str, reference: str) -> Payment:
        known = self._by_reference.get(reference)
        if known is not None:  # the same kiosk payment asked again: the same answer
            return self._payments[known]
        ok = 0 < amount <= STUB_MAX_AMOUNT
        pid = "stub-" + secrets.token_hex(8)
        p = Payment(pid, ok, amount, currency, self.provider,
                    "" if ok else f"the stub approves 1 to {STUB_MAX_AMOUNT}")
        if len(self._payments) >= STUB_MAX_PAYMENTS:
            oldest = next(iter(self._payments))
            del self._payments[oldest]
            self.state.pop(oldest, None)
        self._payments[pid] = p
        self._by_reference[reference] = pid
        self.state[pid] = "authorised" if ok else "declined"
        return p

    async def capture(self, payment_id: str) -> Payment:
        return self._settle(payment_id, "captured")

    async def void(self, payment_id: str) -> Payment:
        return self._settle(payment_id, "voided")

    def _settle(self, payment_id: str, to: str) -> Payment:
        p = self._payments[payment_id]
        if self.state.get(payment_id) == "authorised":
            self.state[payment_id] = to
        return p
