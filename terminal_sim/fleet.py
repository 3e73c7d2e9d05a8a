"""A seeded fleet of simulated terminals and cards, and enrolling them in a gateway's store.

Terminal keys are derived from the seed, so the same seed gives the same terminals, keys and
cards, and a simulator process can rebuild its share of the fleet from the seed alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import anyio
from nacl.signing import SigningKey

from gateway.provisioning import enroll_terminal, issue_card
from gateway.store.interface import Store

#: Opening balance of every simulated card, in minor units.
OPENING_BALANCE = 20_000
#: Enrolments in flight at once while provisioning.
PROVISION_CONCURRENCY = 64

#: (kind, operator, network, op, share of the fleet)
KINDS: tuple[tuple[str, str, str, str, int], ...] = (
    ("gate", "metro", "METRO", "fare", 45),
    ("bus", "citybus", "BUS", "fare", 30),
    ("retail", "bakery", "", "purchase", 20),
    ("kiosk", "city", "", "topup", 5),
)
PURCHASE_AMOUNTS = (120, 250, 380, 990)
TOPUP_AMOUNT = 2_000


@dataclass(frozen=True, slots=True)
class SimTerminal:
    terminal_id: str
    kind: str
    operator: str
    network: str
    op: str
    seed: bytes

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def public_key_hex(self) -> str:
        return bytes(self.signing_key.verify_key).hex()


def make_fleet(n: int, seed: int) -> list[SimTerminal]:
    """n terminals whose kinds follow KINDS' shares, interleaved so any slice is mixed."""
    weights = [k[4] for k in KINDS]
    total = sum(weights)
    fleet: list[SimTerminal] = []
    counts = [0] * len(KINDS)
    for i in range(n):
        # Deterministic largest-deficit interleave: the kind furthest below its share goes next.
        j = max(range(len(KINDS)), key=lambda k: weights[k] * (i + 1) / total - counts[k])
        counts[j] += 1
        kind, operator, network, op, _ = KINDS[j]
        tid = f"sim{seed}-{kind}-{i:05d}"
        key_seed = hashlib.sha256(f"citycard-sim/{seed}/{tid}".encode()).digest()
        fleet.append(SimTerminal(tid, kind, operator, network, op, key_seed))
    return fleet


def make_cards(m: int, seed: int) -> list[str]:
    return [f"sim{seed}-card-{i:07d}" for i in range(m)]


async def provision(
    store: Store, fleet: list[SimTerminal], cards: list[str], balance: int = OPENING_BALANCE
) -> None:
    """Enroll every terminal and issue every card (overwriting earlier runs of the same seed)."""
    limiter = anyio.CapacityLimiter(PROVISION_CONCURRENCY)

    async def one_terminal(t: SimTerminal) -> None:
        async with limiter:
            await enroll_terminal(
                store,
                t.terminal_id,
                t.public_key_hex,
                kind=t.kind,
                operator=t.operator,
                network=t.network,
            )

    async def one_card(card: str) -> None:
        async with limiter:
            await issue_card(store, card, balance=balance)

    async with anyio.create_task_group() as tg:
        for t in fleet:
            tg.start_soon(one_terminal, t)
        for c in cards:
            tg.start_soon(one_card, c)
