"""The daily clearing report (`ops.settlement.ClearingReport`) as one CSV a spreadsheet can
filter: every row carries the day, the currency and a `row_type`, so "all payees", "one payee's
tills" or "what is wrong" is a single column filter.

| row_type | one per | columns filled |
|---|---|---|
| `payee` | operator or merchant | payee, charged, credited, net, postings |
| `product` | payee and product | payee, product, net (what that product netted the payee) |
| `terminal` | payee and terminal | payee, terminal, net (a taxi handheld, a shop till, a gate) |
| `total` | report | charged (what cardholders paid), credited, net, postings |
| `rejected` | journal entry that could not be settled | entry_id, problem |

Money is in two columns each: `*_minor`, integer minor units (what to sum), and the same amount
as a decimal string in the report's currency (`net` = "12.50" for 1250 EUR cents). The ledger
keeps only net sums per product and terminal, so their charged / credited / postings are empty.
A non-empty `problem` marks a row that must not be paid out as is: a rejected entry, a payee
whose breakdowns do not sum to its net, a total whose sums do not add up (the checks of
`ClearingReport.problems()`). The file is written whole even then; `citycard report clearing`
exits non-zero.

`day_clearing` builds the report of one local day from a `Store` page by page (the pure
`ops.settlement.clearing_report` over each page of the day's entries, merged), so a big day
never sits in memory; `write_clearing_csv` is the pure writer.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from typing import TextIO

from gateway.store.interface import JOURNAL_READ_MAX, parse_journal_id
from ops.reports.journal import JOURNAL_MARGIN_MS, day_bounds, entry_time, read_day
from ops.settlement import ClearingReport, JournalReader, PayeeLedger, clearing_report
from policies.gtfs.money import format_minor, minor_digits

COLUMNS: tuple[str, ...] = (
    "day",
    "timezone",
    "currency",
    "row_type",
    "payee",
    "product",
    "terminal",
    "entry_id",
    "charged_minor",
    "charged",
    "credited_minor",
    "credited",
    "net_minor",
    "net",
    "postings",
    "problem",
)


def currency_digits(currency: str) -> int:
    """Minor digits of an ISO 4217 code (EUR: 2); ValueError for a code not in the table."""
    digits = minor_digits(currency)
    if digits is None:
        raise ValueError(f"unknown currency {currency!r} (expected an ISO 4217 code such as EUR)")
    return digits


def merge_into(total: ClearingReport, part: ClearingReport) -> None:
    """Add `part` (a report of more entries of the same day) to `total`."""
    for name, x in part.payees.items():
        ledger = total.payees.get(name)
        if ledger is None:
            ledger = total.payees[name] = PayeeLedger()
        ledger.charged += x.charged
        ledger.credited += x.credited
        ledger.postings += x.postings
        for product, amount in x.by_product.items():
            ledger.by_product[product] = ledger.by_product.get(product, 0) + amount
        for terminal, amount in x.by_terminal.items():
            ledger.by_terminal[terminal] = ledger.by_terminal.get(terminal, 0) + amount
    total.cardholders_paid += part.cardholders_paid
    total.cardholders_credited += part.cardholders_credited
    total.entries += part.entries
    total.rejected.extend(part.rejected)


async def day_clearing(
    store: JournalReader,
    day: date,
    timezone: str = "UTC",
    *,
    page: int = JOURNAL_READ_MAX,
    margin_ms: int = JOURNAL_MARGIN_MS,
) -> ClearingReport:
    """The clearing report of the local `day`, reading only the day's part of the journal.

    Entries decided on other days (read because of the clock margin) are left out before
    counting; an entry without a readable `time` (an admin write, or a broken entry, which the
    report then rejects) counts for the day its journal id falls on."""
    bounds = day_bounds(day, timezone)
    report = ClearingReport(day.isoformat(), timezone)
    chunk: list[tuple[str, dict[str, str]]] = []
    async for entry_id, fields in read_day(store, day, timezone, margin_ms=margin_ms, page=page):
        t = entry_time(fields)
        if t is None:
            t = parse_journal_id(entry_id)[0]
        if not bounds[0] <= t < bounds[1]:
            continue
        chunk.append((entry_id, fields))
        if len(chunk) >= page:
            merge_into(report, clearing_report(chunk, day=day, timezone=timezone))
            chunk = []
    if chunk:
        merge_into(report, clearing_report(chunk, day=day, timezone=timezone))
    return report


def _breakdown_problem(ledger: PayeeLedger) -> str:
    nets_ok = sum(ledger.by_product.values()) == ledger.net
    return "" if nets_ok and sum(ledger.by_terminal.values()) == ledger.net else (
        "breakdowns do not sum to the payee's net"
    )


def _total_problem(report: ClearingReport) -> str:
    found = []
    ledgers = report.payees.values()
    if sum(x.charged for x in ledgers) != report.cardholders_paid:
        found.append("payees' charged does not sum to what cardholders paid")
    if sum(x.credited for x in ledgers) != report.cardholders_credited:
        found.append("payees' credited does not sum to what cards were credited")
    if report.rejected:
        found.append(f"{len(report.rejected)} rejected journal entries (rows below)")
    return "; ".join(found)


def clearing_rows(report: ClearingReport, currency: str) -> Iterator[dict[str, str]]:
    """The CSV rows of `report` (see the module docstring), payees in name order."""
    digits = currency_digits(currency)
    base = {"day": report.day or "", "timezone": report.timezone, "currency": currency}

    def money(name: str, amount: int | None) -> dict[str, str]:
        if amount is None:
            return {f"{name}_minor": "", name: ""}
        return {f"{name}_minor": str(amount), name: format_minor(amount, digits)}

    def row(row_type: str, **cols: str) -> dict[str, str]:
        out = dict.fromkeys(COLUMNS, "")
        out.update(base)
        out["row_type"] = row_type
        out.update(cols)
        return out

    for name in sorted(report.payees):
        x = report.payees[name]
        yield row(
            "payee",
            payee=name,
            **money("charged", x.charged),
            **money("credited", x.credited),
            **money("net", x.net),
            postings=str(x.postings),
            problem=_breakdown_problem(x),
        )
        for product, amount in sorted(x.by_product.items()):
            yield row("product", payee=name, product=product, **money("net", amount))
        for terminal, amount in sorted(x.by_terminal.items()):
            yield row("terminal", payee=name, terminal=terminal, **money("net", amount))
    yield row(
        "total",
        **money("charged", report.cardholders_paid),
        **money("credited", report.cardholders_credited),
        **money("net", report.net_paid),
        postings=str(sum(x.postings for x in report.payees.values())),
        problem=_total_problem(report),
    )
    for entry_id, why in report.rejected:
        yield row("rejected", entry_id=entry_id, problem=why)


def write_clearing_csv(report: ClearingReport, out: TextIO, currency: str) -> int:
    """Write the report as CSV to `out` (opened with newline=""); returns the rows written."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for r in clearing_rows(report, currency):
        writer.writerow(r)
        n += 1
    return n
