"""Operator settlement: a daily clearing report of who is owed what, from the journal.

Every approved tap's events carry the party it is attributed to in `operator`: the merchant of a
retail payment, the car park or taxi operator, the venue, the transit operator, the kiosk that
loaded money or credited recycling, the rewards programme that funded redeemed points. This
module turns journal entries into one `Posting` per money-moving event and sums them per payee:

- `charged`: what cards paid to the payee (positive amounts);
- `credited`: what the payee credited to cards (top-ups it collected, recycling credits and
  redeemed points it funds; negative amounts, reported as positive numbers);
- `net = charged - credited`: positive, the clearing house owes the payee; negative, the payee
  owes the clearing house.

The payees' `charged` sum to exactly what cardholders paid, their `credited` to exactly what was
credited to cards, and their `net` to exactly how much the cards' balances went down
(`ClearingReport.problems()` re-checks these sums). Each payee also gets a breakdown by product
and by terminal: for a taxi operator the terminal is the driver's handheld, so that breakdown is
the drivers' earnings ledger; for a merchant it is per till.

`clearing_report` is a pure function over entries (id, fields) as `Store.read_journal` returns
them; `read_entries` / `daily_report` are the thin async reader over the `Store` API, and
`python -m ops.settlement --redis-url URL --day 2026-01-01 --timezone Europe/Berlin` prints a
day's report as JSON. Entries whose money fields do not add up are not silently dropped: they
are listed in `rejected`, and a report with rejected entries must not be paid out as is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import orjson

from gateway.store.interface import JOURNAL_READ_MAX


class SettlementError(ValueError):
    """A journal entry whose money fields cannot be read or do not add up."""


class JournalReader(Protocol):
    async def read_journal(
        self, *, count: int, after: str | None = None
    ) -> list[tuple[str, dict[str, str]]]: ...


@dataclass(frozen=True, slots=True)
class Posting:
    """One money-moving event: `amount` > 0 charged to the card for `payee`, < 0 credited to the
    card by `payee`."""

    entry_id: str
    card: str
    payee: str
    terminal: str
    product: str
    event_type: str
    amount: int
    time_ms: int


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise SettlementError(f"{what}: not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise SettlementError(f"{what}: not an integer: {value[:40]!r}") from None
    raise SettlementError(f"{what}: not an integer")


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def postings(entry_id: str, fields: Mapping[str, object]) -> tuple[Posting, ...]:
    """The money-moving postings of one journal entry (none for a decline, an admin write or an
    approval of amount 0). `SettlementError` when the entry's money fields are inconsistent."""
    if fields.get("op") != "commit" or fields.get("result") != "approved":
        if fields.get("op") == "commit" and _int(fields.get("amount", 0), "amount") != 0:
            raise SettlementError("a declined entry moved money")
        return ()
    card = _str(fields.get("card"))
    total = _int(fields.get("amount"), "amount")
    raw_events = fields.get("events")
    if raw_events is None:
        # An entry without events (older writers): attribute it to the terminal's operator.
        if total == 0:
            return ()
        return (
            Posting(
                entry_id,
                card,
                _str(fields.get("operator")),
                _str(fields.get("terminal")),
                _str(fields.get("product")),
                "",
                total,
                _int(fields.get("time"), "time"),
            ),
        )
    try:
        events = orjson.loads(raw_events if isinstance(raw_events, str | bytes) else b"")
    except orjson.JSONDecodeError:
        raise SettlementError("events: not JSON") from None
    if not isinstance(events, list):
        raise SettlementError("events: not a list")
    out: list[Posting] = []
    event_sum = 0
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise SettlementError(f"events[{i}]: not an object")
        amount = _int(event.get("amount"), f"events[{i}].amount")
        event_sum += amount
        if amount == 0:
            continue
        payee = _str(event.get("operator"))
        if not payee:
            raise SettlementError(f"events[{i}]: money moved with no operator to attribute it to")
        out.append(
            Posting(
                entry_id,
                card,
                payee,
                _str(event.get("terminal_id"), _str(fields.get("terminal"))),
                _str(event.get("product"), _str(fields.get("product"))),
                _str(event.get("type")),
                amount,
                _int(event.get("time_ms", fields.get("time")), f"events[{i}].time_ms"),
            )
        )
    if event_sum != total:
        raise SettlementError(f"events sum to {event_sum}, the decision to {total}")
    return tuple(out)


@dataclass(slots=True)
class PayeeLedger:
    """What one operator or merchant is owed (net > 0) or owes (net < 0)."""

    charged: int = 0
    credited: int = 0
    postings: int = 0
    by_product: dict[str, int] = field(default_factory=dict)
    by_terminal: dict[str, int] = field(default_factory=dict)

    @property
    def net(self) -> int:
        return self.charged - self.credited

    def add(self, p: Posting) -> None:
        if p.amount > 0:
            self.charged += p.amount
        else:
            self.credited -= p.amount
        self.postings += 1
        self.by_product[p.product] = self.by_product.get(p.product, 0) + p.amount
        self.by_terminal[p.terminal] = self.by_terminal.get(p.terminal, 0) + p.amount

    def to_dict(self) -> dict[str, object]:
        return {
            "charged": self.charged,
            "credited": self.credited,
            "net": self.net,
            "postings": self.postings,
            "by_product": dict(sorted(self.by_product.items())),
            "by_terminal": dict(sorted(self.by_terminal.items())),
        }


@dataclass(slots=True)
class ClearingReport:
    day: str | None
    """ISO local date the report covers; None: every entry given."""
    timezone: str
    payees: dict[str, PayeeLedger] = field(default_factory=dict)
    cardholders_paid: int = 0
    cardholders_credited: int = 0
    entries: int = 0
    """Journal entries read (whatever their kind)."""
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(entry id, problem) of entries that could not be settled."""

    @property
    def net_paid(self) -> int:
        """How much the cards' balances went down in total: what the payees' nets sum to."""
        return self.cardholders_paid - self.cardholders_credited

    def add(self, p: Posting) -> None:
        ledger = self.payees.get(p.payee)
        if ledger is None:
            ledger = self.payees[p.payee] = PayeeLedger()
        ledger.add(p)
        if p.amount > 0:
            self.cardholders_paid += p.amount
        else:
            self.cardholders_credited -= p.amount

    def problems(self) -> list[str]:
        """Re-checks of the sums; empty for a report that can be paid out."""
        found = [f"rejected entry {eid}: {why}" for eid, why in self.rejected]
        ledgers = self.payees.values()
        if sum(x.charged for x in ledgers) != self.cardholders_paid:
            found.append("payees' charged does not sum to what cardholders paid")
        if sum(x.credited for x in ledgers) != self.cardholders_credited:
            found.append("payees' credited does not sum to what cards were credited")
        for name, x in self.payees.items():
            if sum(x.by_product.values()) != x.net or sum(x.by_terminal.values()) != x.net:
                found.append(f"payee {name}: breakdowns do not sum to its net")
        return found

    def to_dict(self) -> dict[str, object]:
        return {
            "day": self.day,
            "timezone": self.timezone,
            "cardholders_paid": self.cardholders_paid,
            "cardholders_credited": self.cardholders_credited,
            "net_paid": self.net_paid,
            "entries": self.entries,
            "payees": {name: self.payees[name].to_dict() for name in sorted(self.payees)},
            "rejected": [list(r) for r in self.rejected],
            "problems": self.problems(),
        }


def local_day(time_ms: int, zone: ZoneInfo) -> date:
    """The local date of epoch ms (whole seconds suffice: a day starts on a whole second)."""
    try:
        return datetime.fromtimestamp(time_ms // 1000, zone).date()
    except (OverflowError, OSError, ValueError):
        raise SettlementError(f"time {time_ms} is outside the calendar") from None


def clearing_report(
    entries: Iterable[tuple[str, Mapping[str, object]]],
    *,
    day: date | None = None,
    timezone: str = "UTC",
) -> ClearingReport:
    """Sum `entries` (journal id, fields) per payee; with `day`, only postings whose event time
    falls on that local date of `timezone`. Pure: reads nothing but its arguments."""
    zone = ZoneInfo(timezone)
    report = ClearingReport(None if day is None else day.isoformat(), timezone)
    for entry_id, fields in entries:
        report.entries += 1
        try:
            found = postings(entry_id, fields)
        except SettlementError as exc:
            report.rejected.append((entry_id, str(exc)))
            continue
        try:
            kept = [p for p in found if day is None or local_day(p.time_ms, zone) == day]
        except SettlementError as exc:
            report.rejected.append((entry_id, str(exc)))
            continue
        for p in kept:
            report.add(p)
    return report


async def read_entries(
    store: JournalReader, *, after: str | None = None, page: int = JOURNAL_READ_MAX
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Every journal entry after the cursor `after`, paging through `Store.read_journal`."""
    cursor = after
    while True:
        batch = await store.read_journal(count=page, after=cursor)
        if not batch:
            return
        for entry in batch:
            yield entry
        cursor = batch[-1][0]


async def daily_report(
    store: JournalReader, day: date | None, timezone: str = "UTC"
) -> ClearingReport:
    """The clearing report of `day` (local date in `timezone`) over the whole journal."""
    entries = [entry async for entry in read_entries(store)]
    return clearing_report(entries, day=day, timezone=timezone)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.settlement", description="Daily clearing report as JSON."
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--day", type=date.fromisoformat, help="YYYY-MM-DD; default: all days")
    parser.add_argument("--timezone", default="UTC", help="IANA zone of the clearing day")
    args = parser.parse_args(argv)

    import anyio

    from gateway.store.redis_store import RedisStore

    async def run() -> ClearingReport:
        async with RedisStore.connect(args.redis_url) as store:
            return await daily_report(store, args.day, args.timezone)

    report = anyio.run(run)
    sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
