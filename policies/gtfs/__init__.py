"""GTFS Fares v2 in the pure core: load a feed from text, price journeys against it.

`parse_feed(files, name=...)` turns {file name: text} into an immutable, cross-checked
`FareFeed` (or raises `FeedError` naming file, line and field). `quote_journey(feed, legs,
rider_category=..., fare_media=...)` prices a list of `Leg`s into a `JourneyQuote` (or raises
`QuoteError` with a reason code); `start_journey` + `extend_journey` do the same one leg at a
time, for a gateway that charges at each tap. Like the rest of policies/, nothing here opens a
file, reads a clock or draws a random number; the agency timezone is the only outside data used.
"""

from policies.gtfs.errors import QUOTE_ERROR_CODES, FeedError, QuoteError
from policies.gtfs.model import FareFeed
from policies.gtfs.money import format_minor
from policies.gtfs.parse import FEED_FILES, UNSUPPORTED_FILES, parse_feed
from policies.gtfs.quote import (
    AppliedTransfer,
    JourneyQuote,
    Leg,
    LegQuote,
    extend_journey,
    quote_journey,
    start_journey,
)

__all__ = [
    "FEED_FILES",
    "QUOTE_ERROR_CODES",
    "UNSUPPORTED_FILES",
    "AppliedTransfer",
    "FareFeed",
    "FeedError",
    "JourneyQuote",
    "Leg",
    "LegQuote",
    "QuoteError",
    "extend_journey",
    "format_minor",
    "parse_feed",
    "quote_journey",
    "start_journey",
]
