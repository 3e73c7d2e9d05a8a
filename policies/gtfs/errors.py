"""The two ways the GTFS fare engine says no: `FeedError` (bad feed) and `QuoteError` (bad journey).

This module owns both exception types and the reason codes a refused quote carries. A feed error
always names the file, the line and the field, because the person reading it is a tariff writer
with a spreadsheet open; a quote error carries a stable machine code (`code`) for the gateway
and a sentence for people.
"""

from __future__ import annotations

from typing import Final

UNKNOWN_ROUTE: Final = "unknown_route"
UNKNOWN_STOP: Final = "unknown_stop"
UNKNOWN_CATEGORY: Final = "unknown_category"
UNKNOWN_FARE_MEDIA: Final = "unknown_fare_media"
NO_FARE_RULE: Final = "no_fare_rule"
OUTSIDE_VALIDITY: Final = "outside_validity"
INVALID_LEG: Final = "invalid_leg"

QUOTE_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        UNKNOWN_ROUTE,
        UNKNOWN_STOP,
        UNKNOWN_CATEGORY,
        UNKNOWN_FARE_MEDIA,
        NO_FARE_RULE,
        OUTSIDE_VALIDITY,
        INVALID_LEG,
    }
)


class FeedError(ValueError):
    """The feed cannot be used. The message reads `<file> line <n>, <field>: <what is wrong>`."""

    def __init__(self, file: str, line: int | None, field: str | None, problem: str) -> None:
        where = file
        if line is not None:
            where += f" line {line}"
        if field is not None:
            where += f", {field}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem


class QuoteError(ValueError):
    """A journey the feed cannot price. `code` is one of QUOTE_ERROR_CODES."""

    def __init__(self, code: str, message: str, *, leg_index: int | None = None) -> None:
        assert code in QUOTE_ERROR_CODES, code
        prefix = f"leg {leg_index}: " if leg_index is not None else ""
        super().__init__(f"{code}: {prefix}{message}")
        self.code = code
        self.leg_index = leg_index
        self.reason = message
