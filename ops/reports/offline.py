"""`citycard report offline --date D`: what terminals decided offline on a local day, and what
could not be collected.

From the journal entries of offline taps (`offline` set by the gateway when the terminal
uploaded them; docs/protocol.md section 8, *Offline taps*), per operator: how many offline
taps, how many the terminal approved, the amount the gateway then charged for them, and the
**uncollected** amount: rides the terminal let through that the card could not pay (blocked,
unknown, out of money), the first-ride risk the operator carries. Offline taps whose assumed
amount broke the policy's per-tap limit are counted apart (a terminal fault).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

from ops.reports.journal import JournalReader, day_bounds, in_day, read_day


@dataclass
class OfflineLine:
    taps: int = 0
    approved_offline: int = 0
    #: what the terminals assumed for the taps they approved
    assumed: int = 0
    #: what the gateway charged for them (its real decision)
    charged: int = 0
    uncollected_taps: int = 0
    uncollected: int = 0
    over_limit: int = 0


@dataclass
class OfflineReport:
    day: str
    timezone: str
    by_operator: dict[str, OfflineLine] = field(default_factory=lambda: defaultdict(OfflineLine))

    def total(self) -> OfflineLine:
        t = OfflineLine()
        for line in self.by_operator.values():
            for name in vars(t):
                setattr(t, name, getattr(t, name) + getattr(line, name))
        return t


def add_entry(report: OfflineReport, fields: dict[str, str], max_tap_amount: int) -> None:
    if fields.get("op") != "commit" or "offline" not in fields:
        return
    line = report.by_operator[fields.get("operator", "")]
    line.taps += 1
    assumed = int(fields.get("offline_amount", "0"))
    if fields["offline"] == "approved":
        line.approved_offline += 1
        line.assumed += assumed
        if fields.get("result") == "approved":
            line.charged += int(fields.get("amount", "0"))
    uncollected = int(fields.get("uncollected", "0"))
    if uncollected:
        line.uncollected_taps += 1
        line.uncollected += uncollected
    if assumed > max_tap_amount:
        line.over_limit += 1


async def day_offline(
    store: JournalReader, day: date, timezone: str, max_tap_amount: int
) -> OfflineReport:
    """The offline report of the local `day` (entries by the time the tap happened)."""
    report = OfflineReport(day.isoformat(), timezone)
    bounds = day_bounds(day, timezone)
    async for _, fields in read_day(store, day, timezone):
        if in_day(fields, bounds):
            add_entry(report, fields, max_tap_amount)
    return report


COLUMNS = ("operator", "offline_taps", "approved_offline", "assumed", "charged",
           "uncollected_taps", "uncollected", "over_limit")


def write_offline_csv(report: OfflineReport, out: TextIO) -> int:
    w = csv.writer(out)
    w.writerow(COLUMNS)
    rows = sorted(report.by_operator.items())
    for op, line in [*rows, ("TOTAL", report.total())]:
        w.writerow([op, line.taps, line.approved_offline, line.assumed, line.charged,
                    line.uncollected_taps, line.uncollected, line.over_limit])
    return len(rows) + 1
