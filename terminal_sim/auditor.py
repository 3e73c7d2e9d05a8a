"""The auditor: from what the terminals saw -- the signed authorisations, nothing else -- it works
out what every card's balance, every operator's ledger and (when the core reports it) every cap
must be, then compares with the gateway's state in Redis. Any difference fails the run; each is
printed with its card and the run's seed so the run can be replayed.

Inputs: the opening balance of every card the simulator issued, the cards it blocked, and one
`Seen` per tap (approved / declined with the signed amount and balance, or unresolved when no
answer ever came). Checks:

1. **Balances.** opening - sum(signed approved amounts) = the card's balance in Redis; the status
   is `blocked` exactly for the cards the simulator blocked; a card the gateway did not know is
   still unknown (a refused token never creates state).
2. **Chains.** The approved, money-moving authorisations of a card must line up: there is an order
   (near gateway_time order) in which each one's balance-before (balance + amount) is the previous
   one's balance-after, from the opening balance to the final one. A lost update or a double charge
   breaks the chain even when the final balance happens to match. Every declined or free
   authorisation's balance must be one of the balances on that chain.
3. **Journal.** Every decided tap of a known card is journaled exactly once, with the same result,
   amount and balance the terminal was told; nothing is journaled that no terminal was answered
   (taps left unresolved are reported and their journaled outcome taken into the balances); no
   card is approved anything after its block.
4. **Ledgers.** Per operator, the signed approved amounts add up to the journal's.
5. **Caps.** When an authorisation's (unsigned) detail reports cap progress (`detail["caps"]`,
   a list of {cap, period, spent, amount}), no card is ever past a cap.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.store.interface import JOURNAL_READ_MAX, Store

#: Chains longer than this are not searched (reported as unverified, not as a difference).
MAX_CHAIN = 400
#: Search steps per card before giving up on the chain check.
CHAIN_BUDGET = 50_000


@dataclass(frozen=True, slots=True)
class Seen:
    """What one terminal ended up with for one tap."""

    terminal_id: str
    tap_id: str
    card: str
    #: approved | declined | unresolved (no answer) | failed (a non-retryable error: not charged)
    result: str
    reason: str
    amount: int
    balance: int
    gateway_time: int
    operator: str
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    card: str
    check: str
    expected: object
    actual: object
    detail: str = ""

    def line(self, seed: int | None) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return (
            f"AUDIT seed={seed} card={self.card} {self.check}: expected {self.expected!r}, "
            f"got {self.actual!r}{extra}"
        )


@dataclass
class AuditReport:
    seed: int | None
    checked_cards: int = 0
    differences: list[Difference] = field(default_factory=list)
    approved_taps: int = 0
    journal_entries: int = 0
    unresolved_taps: int = 0
    unresolved_journaled: int = 0
    chains_verified: int = 0
    chains_unverified: int = 0
    ledgers: dict[str, int] = field(default_factory=dict)
    blocked_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def lines(self, limit: int = 50) -> list[str]:
        out = [d.line(self.seed) for d in self.differences[:limit]]
        if len(self.differences) > limit:
            out.append(f"AUDIT seed={self.seed}: ... and {len(self.differences) - limit} more")
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "auditor_checked_cards": self.checked_cards,
            "auditor_differences": len(self.differences),
            "auditor_examples": self.lines(20),
            "auditor_approved_taps": self.approved_taps,
            "auditor_journal_entries": self.journal_entries,
            "auditor_unresolved_taps": self.unresolved_taps,
            "auditor_chains_verified": self.chains_verified,
            "auditor_chains_unverified": self.chains_unverified,
            "auditor_blocked_cards": self.blocked_checked,
            "auditor_operators": len(self.ledgers),
        }


class Auditor:
    """Collects what terminals saw (`saw`), then `check`s the gateway's state.

    `tap_prefix`: the run's tap ids start with it (journal entries of other runs are ignored).
    `unknown`: card tokens the gateway was never told about."""

    def __init__(
        self,
        seed: int | None,
        openings: Mapping[str, int],
        *,
        tap_prefix: str,
        blocked: Iterable[str] = (),
        unknown: Iterable[str] = (),
    ) -> None:
        self.seed = seed
        self.openings = dict(openings)
        self.tap_prefix = tap_prefix
        self.blocked = set(blocked)
        self.unknown = set(unknown)
        self.seen: dict[tuple[str, str], Seen] = {}

    def saw(self, s: Seen) -> None:
        self.seen[(s.terminal_id, s.tap_id)] = s

    # ------------------------------------------------------------------ reading the gateway

    async def _journal(self, store: Store) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        after = None
        while True:
            chunk = await store.read_journal(count=JOURNAL_READ_MAX, after=after)
            if not chunk:
                return out
            out.extend(e for _, e in chunk)
            after = chunk[-1][0]

    async def _states(self, store: Store, cards: list[str]) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {}
        for i in range(0, len(cards), 256):
            part = cards[i : i + 256]
            recs = await asyncio.gather(*(store.load_card(c) for c in part))
            for c, rec in zip(part, recs, strict=True):
                out[c] = None if rec is None else orjson.loads(rec.state)
        return out

    async def check(self, store: Store) -> AuditReport:
        # The journal only returns entries from before Redis's current millisecond.
        await asyncio.sleep(0.01)
        journal = await self._journal(store)
        states = await self._states(store, sorted(set(self.openings) | self.unknown))
        return self.compare(journal, states)

    # ------------------------------------------------------------------ the comparison

    def compare(
        self, journal: list[dict[str, str]], states: Mapping[str, dict[str, Any] | None]
    ) -> AuditReport:
        rep = AuditReport(self.seed)
        diffs = rep.differences
        prefix = self.tap_prefix + "-"
        ours = [
            e for e in journal if e.get("op") == "commit" and e.get("tap", "").startswith(prefix)
        ]
        rep.journal_entries = len(ours)
        counts = Counter((e["terminal"], e["tap"]) for e in ours)
        by_tap = {(e["terminal"], e["tap"]): e for e in ours}
        last_put: dict[str, dict[str, str]] = {}
        for e in journal:
            if e.get("op") == "put_card" and e.get("card") in self.openings:
                last_put[e["card"]] = e

        # --- per tap: what the terminal was told vs the journal
        steps: dict[str, list[tuple[int, int, int, str]]] = defaultdict(
            list
        )  # card -> (gt, amt, bal, tap)
        spot: dict[str, list[tuple[int, str]]] = defaultdict(list)  # card -> (balance, tap)
        unresolved_amount: Counter[str] = Counter()
        seen_ledger: Counter[str] = Counter()
        caps_seen: dict[str, list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
        for key, s in self.seen.items():
            n = counts.get(key, 0)
            entry = by_tap.get(key)
            known = s.card in self.openings
            if s.result in ("approved", "declined"):
                if s.result == "approved":
                    rep.approved_taps += 1
                    seen_ledger[s.operator] += s.amount
                if not known:
                    # An offline tap is journaled for an unknown card too (first-ride risk).
                    if n and (entry is None or "offline" not in entry):
                        diffs.append(Difference(s.card, "unknown card journaled", 0, n, s.tap_id))
                    continue
                if n != 1:
                    diffs.append(
                        Difference(s.card, "journal entries of a decided tap", 1, n, s.tap_id)
                    )
                    continue
                assert entry is not None
                told = (s.result, s.amount, s.balance)
                wrote = (
                    entry.get("result"),
                    int(entry.get("amount", "0")),
                    int(entry.get("balance", "0")),
                )
                if told != wrote:
                    diffs.append(
                        Difference(s.card, "journal vs signed auth", told, wrote, s.tap_id)
                    )
                if s.result == "approved" and s.amount != 0:
                    steps[s.card].append((s.gateway_time, s.amount, s.balance, s.tap_id))
                else:
                    spot[s.card].append((s.balance, s.tap_id))
                if s.detail is not None and s.result == "approved":
                    caps_seen[s.card].append((s.gateway_time, s.detail))
            else:
                rep.unresolved_taps += 1
                if n > 1:
                    diffs.append(
                        Difference(
                            s.card, "journal entries of an unanswered tap", "<= 1", n, s.tap_id
                        )
                    )
                if n == 1 and entry is not None:
                    if s.result == "failed":
                        diffs.append(
                            Difference(s.card, "journaled after an error answer", 0, 1, s.tap_id)
                        )
                    rep.unresolved_journaled += 1
                    if entry.get("result") == "approved":
                        amt = int(entry.get("amount", "0"))
                        unresolved_amount[s.card] += amt
                        seen_ledger[s.operator] += amt
                        if amt:
                            steps[s.card].append(
                                (
                                    int(entry.get("time", "0")),
                                    amt,
                                    int(entry.get("balance", "0")),
                                    s.tap_id,
                                )
                            )
        for key, e in by_tap.items():
            if key not in self.seen:
                diffs.append(
                    Difference(
                        e.get("card", "?"),
                        "journaled tap no terminal sent",
                        "absent",
                        e.get("result"),
                        key[1],
                    )
                )

        # --- no approval after a block
        for card, put in last_put.items():
            try:
                st = orjson.loads(put.get("state", "{}"))
            except orjson.JSONDecodeError:
                continue
            if st.get("status") != "blocked" or card not in self.blocked:
                continue
            ver = int(put.get("ver", "0"))
            for e in ours:
                if (
                    e.get("card") == card
                    and e.get("result") == "approved"
                    and int(e.get("ver", "0")) >= ver
                ):
                    diffs.append(
                        Difference(
                            card,
                            "approved after the block",
                            "declined",
                            "approved",
                            e.get("tap", ""),
                        )
                    )

        # --- balances, statuses, chains, caps
        for card, opening in sorted(self.openings.items()):
            rep.checked_cards += 1
            st = states.get(card)
            charged = sum(a for _, a, _, t in steps[card])
            expected = opening - charged
            if st is None:
                diffs.append(Difference(card, "card missing in Redis", expected, None))
                continue
            if st.get("balance") != expected:
                diffs.append(
                    Difference(
                        card,
                        "balance",
                        expected,
                        st.get("balance"),
                        f"opening {opening}, {len(steps[card])} charges/credits",
                    )
                )
            want_status = "blocked" if card in self.blocked else "active"
            if card in self.blocked:
                rep.blocked_checked += 1
            if st.get("status") != want_status:
                diffs.append(Difference(card, "status", want_status, st.get("status")))
            if steps[card] or spot[card]:
                verdict = _chain(opening, steps[card], spot[card])
                if verdict is None:
                    rep.chains_unverified += 1
                elif verdict:
                    diffs.append(
                        Difference(
                            card, "signed balances do not chain", "a consistent order", verdict
                        )
                    )
                else:
                    rep.chains_verified += 1
            diffs.extend(_cap_problems(card, caps_seen.get(card, [])))
        for card in sorted(self.unknown):
            rep.checked_cards += 1
            if states.get(card) is not None:
                diffs.append(Difference(card, "unknown card has state", None, "state"))

        # --- operator ledgers
        journal_ledger: Counter[str] = Counter()
        for e in ours:
            if e.get("result") == "approved":
                journal_ledger[e.get("operator", "")] += int(e.get("amount", "0"))
        for op in sorted(set(seen_ledger) | set(journal_ledger)):
            if seen_ledger[op] != journal_ledger[op]:
                diffs.append(
                    Difference(
                        f"operator:{op}", "operator ledger", seen_ledger[op], journal_ledger[op]
                    )
                )
        rep.ledgers = dict(seen_ledger)
        return rep


def _cap_problems(card: str, reported: list[tuple[int, Mapping[str, Any]]]) -> list[Difference]:
    """No reported cap progress may show a card past its cap."""
    out: list[Difference] = []
    for _, detail in reported:
        caps = detail.get("caps")
        for c in caps if isinstance(caps, list) else ():
            if not isinstance(c, dict):
                continue
            spent, amount = c.get("spent"), c.get("amount")
            if isinstance(spent, int) and isinstance(amount, int) and spent > amount:
                out.append(Difference(card, f"past cap {c.get('cap')}", f"<= {amount}", spent))
    return out


def _chain(
    opening: int, steps: list[tuple[int, int, int, str]], spot: list[tuple[int, str]]
) -> str | None:
    """'' if the steps chain from `opening` (and every spot balance is on the chain), a short
    description of the break otherwise, None if the search was too large to finish."""
    if len(steps) > MAX_CHAIN:
        return None
    ordered = sorted(steps)
    by_before: dict[int, list[int]] = defaultdict(list)
    for i, (_, amount, after, _) in enumerate(ordered):
        by_before[after + amount].append(i)
    used = [False] * len(ordered)
    path: list[int] = []
    budget = [CHAIN_BUDGET]

    def dfs(balance: int) -> bool:
        if len(path) == len(ordered):
            return True
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
        for i in by_before.get(balance, ()):
            if not used[i]:
                used[i] = True
                path.append(i)
                if dfs(ordered[i][2]):
                    return True
                used[i] = False
                path.pop()
        return False

    try:
        found = dfs(opening)
    except _TooLong:
        return None
    if not found:
        stuck = [t for i, (_, _, _, t) in enumerate(ordered) if not used[i]][:3]
        return f"no order from {opening} uses every charge; e.g. {', '.join(stuck)}"
    balances = {opening} | {ordered[i][2] for i in path}
    for bal, tap in spot:
        if bal not in balances:
            return f"tap {tap} reported balance {bal}, never on the card"
    return ""


class _TooLong(Exception):
    pass
