"""`parse_feed`: a GTFS feed's files, as text, to one validated, immutable `FareFeed`.

This module owns the order in which the files are loaded (each loader needs the ids the earlier
ones defined), which files are required, the feed's version (feed_info.txt's feed_version, else a
hash of the files read) and the indexes built once for the calculator. No file is opened here:
the caller (gateway/tariffs/fares_io.py) reads them and passes the text in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType

from policies.gtfs.errors import FeedError
from policies.gtfs.load_fares import (
    load_fare_media,
    load_leg_rules,
    load_products,
    load_rider_categories,
    load_transfer_rules,
    unused_products,
)
from policies.gtfs.load_places import load_places
from policies.gtfs.load_time import (
    calendar_span,
    coverage_gaps,
    load_agency,
    load_feed_info,
    load_services,
    load_timeframes,
)
from policies.gtfs.model import FareFeed, MatchIndex
from policies.gtfs.table import Table, read_table

FEED_FILES = (
    "agency.txt",
    "feed_info.txt",
    "calendar.txt",
    "calendar_dates.txt",
    "routes.txt",
    "networks.txt",
    "route_networks.txt",
    "stops.txt",
    "areas.txt",
    "stop_areas.txt",
    "timeframes.txt",
    "fare_media.txt",
    "rider_categories.txt",
    "fare_products.txt",
    "fare_leg_rules.txt",
    "fare_transfer_rules.txt",
)
"""Every file `parse_feed` reads; others (trips.txt, stop_times.txt, ...) are ignored."""

UNSUPPORTED_FILES = ("fare_leg_join_rules.txt", "fare_attributes.txt", "fare_rules.txt")
"""Fare files this engine does not implement: their presence is reported in `FareFeed.notes`."""

REQUIRED_FILES = (
    "agency.txt",
    "routes.txt",
    "stops.txt",
    "fare_products.txt",
    "fare_leg_rules.txt",
)


def parse_feed(files: Mapping[str, str], *, name: str) -> FareFeed:
    """Parse and cross-check a feed given as {file name: text}. Raises `FeedError`."""
    for required in REQUIRED_FILES:
        if required not in files:
            raise FeedError(required, None, None, "the file is missing")
    tables = {f: read_table(f, files[f]) for f in FEED_FILES if f in files}

    def opt(file: str) -> Table | None:
        return tables.get(file)

    notes: list[str] = [
        f"{file}: not implemented, ignored" for file in UNSUPPORTED_FILES if file in files
    ]
    agency = load_agency(tables["agency.txt"])
    info = load_feed_info(opt("feed_info.txt"))
    services = load_services(opt("calendar.txt"), opt("calendar_dates.txt"))
    span_from, span_to = calendar_span(services)
    valid_from = info.start if info.start is not None else span_from
    valid_to = info.end if info.end is not None else span_to
    timeframes = load_timeframes(opt("timeframes.txt"), services, notes)
    notes.extend(coverage_gaps(timeframes, services, valid_from, valid_to))
    places = load_places(
        tables["routes.txt"],
        opt("networks.txt"),
        opt("route_networks.txt"),
        tables["stops.txt"],
        opt("areas.txt"),
        opt("stop_areas.txt"),
    )
    media = load_fare_media(opt("fare_media.txt"), notes)
    categories, default_category = load_rider_categories(opt("rider_categories.txt"), notes)
    products, currency, digits = load_products(
        tables["fare_products.txt"], media, categories, notes
    )
    leg_rules, uses_priority = load_leg_rules(
        tables["fare_leg_rules.txt"],
        products,
        places.networks,
        places.areas,
        {t.timeframe_group_id for t in timeframes},
        notes,
    )
    leg_groups = frozenset(r.leg_group_id for r in leg_rules if r.leg_group_id is not None)
    transfer_rules = load_transfer_rules(
        opt("fare_transfer_rules.txt"), products, leg_groups, notes
    )
    notes.extend(unused_products(products, leg_rules, transfer_rules))
    index = MatchIndex(
        networks=frozenset(r.network_id for r in leg_rules if r.network_id is not None),
        from_areas=frozenset(r.from_area_id for r in leg_rules if r.from_area_id is not None),
        to_areas=frozenset(r.to_area_id for r in leg_rules if r.to_area_id is not None),
        transfer_from_groups=frozenset(
            r.from_leg_group_id for r in transfer_rules if r.from_leg_group_id is not None
        ),
        transfer_to_groups=frozenset(
            r.to_leg_group_id for r in transfer_rules if r.to_leg_group_id is not None
        ),
        leg_groups=leg_groups,
    )
    return FareFeed(
        name=name,
        version=info.version or content_hash(files),
        agency_names=agency.names,
        timezone=agency.timezone,
        zone=agency.zone,
        currency=currency,
        minor_digits=digits,
        valid_from=valid_from,
        valid_to=valid_to,
        fare_media=MappingProxyType(media),
        rider_categories=MappingProxyType(categories),
        default_category=default_category,
        products=MappingProxyType(products),
        leg_rules=leg_rules,
        transfer_rules=transfer_rules,
        timeframes=timeframes,
        services=MappingProxyType(services),
        route_network=MappingProxyType(dict(places.route_network)),
        networks=places.networks,
        stops=places.stops,
        stop_areas=MappingProxyType(dict(places.stop_areas)),
        areas=places.areas,
        uses_rule_priority=uses_priority,
        index=index,
        notes=tuple(notes),
    )


def content_hash(files: Mapping[str, str]) -> str:
    """A version for feeds without feed_info.feed_version: hash of the files `parse_feed` reads.

    BOM and line ends are normalised first, so a checkout with other line ends (git autocrlf)
    gives the same version."""
    digest = hashlib.sha256()
    for file in FEED_FILES:
        if file in files:
            text = files[file].removeprefix("\ufeff").replace("\r\n", "\n")
            data = text.encode("utf-8")
            digest.update(f"{file}\0{len(data)}\0".encode())
            digest.update(data)
    return "sha256:" + digest.hexdigest()[:16]
