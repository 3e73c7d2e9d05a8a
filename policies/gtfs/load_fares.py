"""Loading the fare tables: media, rider categories, products, leg rules and transfer rules.

This module owns the Fares v2 files proper and their cross-references (a leg rule's product,
network, areas and timeframes; a product's rider category and fare medium; a transfer rule's
product). It accepts both spec eras' column names and records, as notes, what it tolerated (a
missing fare_transfer_type column) or ignored (columns this engine does not implement).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from policies.gtfs.errors import FeedError
from policies.gtfs.model import (
    Duration,
    FareMedium,
    FareProduct,
    LegRule,
    Offer,
    RiderCategory,
    TransferRule,
)
from policies.gtfs.money import minor_digits
from policies.gtfs.table import Row, Table

_FROM_TIMEFRAME = ("from_timeframe_group_id", "from_timeframe_id")
_TO_TIMEFRAME = ("to_timeframe_group_id", "to_timeframe_id")
_LEG_UNSUPPORTED_MATCHING = ("contains_area_id", "min_distance", "max_distance", "distance_type")
_LEG_IGNORED = ("eligible_cap_id", "is_symmetrical")
_PRODUCT_IGNORED = (
    "bundle_amount",
    "offset_amount",
    "offset_unit",
    "service_id",
    "timeframe_id",
    "timeframe_type",
    "cap_required",
    "eligible_cap_id",
    "min_amount",
    "max_amount",
)


def _ignored_columns(table: Table, columns: Collection[str], notes: list[str]) -> None:
    for column in columns:
        # "0" is the do-nothing value of every flag and count among the ignored columns.
        lines = [row.line for row in table.rows if row.get(column) not in ("", "0")]
        if lines:
            notes.append(
                f"{table.file}: column {column} is not implemented and was ignored "
                f"({len(lines)} row(s), first line {lines[0]})"
            )


def load_fare_media(table: Table | None, notes: list[str]) -> dict[str, FareMedium]:
    if table is None:
        return {}
    table.require_columns("fare_media_id", "fare_media_type")
    media: dict[str, FareMedium] = {}
    for row in table.rows:
        media_id = row.require("fare_media_id")
        if media_id in media:
            raise row.error("fare_media_id", f'"{media_id}" appears twice')
        kind = row.optional_enum("fare_media_type", range(5))
        if kind is None:
            raise row.error("fare_media_type", "a value is required")
        media[media_id] = FareMedium(media_id, row.get("fare_media_name"), kind)
    _ignored_columns(table, ("rider_category_id",), notes)  # not a fare_media.txt column
    return media


def load_rider_categories(
    table: Table | None, notes: list[str]
) -> tuple[dict[str, RiderCategory], str | None]:
    if table is None:
        return {}, None
    table.require_columns("rider_category_id")
    categories: dict[str, RiderCategory] = {}
    for row in table.rows:
        category_id = row.require("rider_category_id")
        if category_id in categories:
            raise row.error("rider_category_id", f'"{category_id}" appears twice')
        is_default = row.optional_enum("is_default_fare_category", (0, 1)) == 1
        categories[category_id] = RiderCategory(
            category_id, row.get("rider_category_name"), is_default
        )
    defaults = [c.rider_category_id for c in categories.values() if c.is_default]
    if len(defaults) > 1:
        notes.append(
            f"rider_categories.txt: {len(defaults)} default categories ({', '.join(defaults)}); "
            "none is used as the fallback"
        )
    return categories, defaults[0] if len(defaults) == 1 else None


def _reference(row: Row, field: str, known: Collection[str], target: str) -> str | None:
    value = row.get(field)
    if not value:
        return None
    if value not in known:
        raise row.error(field, f'"{value}" is not a {target}')
    return value


def _duration(row: Row) -> Duration | None:
    amount = row.optional_int("duration_amount", minimum=1)
    unit = row.optional_enum("duration_unit", range(7))
    start = row.optional_enum("duration_start", (0, 1))
    kind = row.optional_enum("duration_type", (1, 2))
    if amount is None and unit is None:
        if start is not None or kind is not None:
            raise row.error("duration_amount", "required when duration_start or _type is set")
        return None
    if amount is None:
        raise row.error("duration_amount", "required when duration_unit is set")
    if unit is None:
        raise row.error("duration_unit", "required when duration_amount is set")
    return Duration(start or 0, amount, unit, kind or 1)


def load_products(
    table: Table,
    media: Mapping[str, FareMedium],
    categories: Mapping[str, RiderCategory],
    notes: list[str],
) -> tuple[dict[str, FareProduct], str, int]:
    """fare_product_id -> product (one offer per row), the feed's currency and its digits."""
    table.require_columns("fare_product_id", "amount", "currency")
    currency: str | None = None
    digits = 0
    names: dict[str, str] = {}
    offers: dict[str, list[Offer]] = {}
    seen: dict[tuple[str, str | None, str | None], int] = {}
    for row in table.rows:
        product_id = row.require("fare_product_id")
        row_currency = row.require("currency")
        if currency is None:
            found = minor_digits(row_currency)
            if found is None:
                raise row.error("currency", f'"{row_currency}" is not a currency this engine knows')
            currency, digits = row_currency, found
        elif row_currency != currency:
            raise row.error(
                "currency", f'"{row_currency}" differs from "{currency}"; one currency per feed'
            )
        category = _reference(
            row, "rider_category_id", categories, "rider_category_id of rider_categories.txt"
        )
        medium = _reference(row, "fare_media_id", media, "fare_media_id of fare_media.txt")
        key = (product_id, category, medium)
        if key in seen:
            raise row.error(
                "fare_product_id",
                f'"{product_id}" for this rider category and fare medium already on line '
                f"{seen[key]}",
            )
        seen[key] = row.line
        amount = row.amount("amount", digits, currency)
        names.setdefault(product_id, row.get("fare_product_name"))
        offers.setdefault(product_id, []).append(
            Offer(category, medium, amount, row.line, _duration(row))
        )
    if currency is None:
        raise FeedError(table.file, None, None, "no fare products")
    _ignored_columns(table, _PRODUCT_IGNORED, notes)
    products = {pid: FareProduct(pid, names[pid], tuple(rows)) for pid, rows in offers.items()}
    return products, currency, digits


def load_leg_rules(
    table: Table,
    products: Mapping[str, FareProduct],
    networks: Collection[str],
    areas: Collection[str],
    timeframe_groups: Collection[str],
    notes: list[str],
) -> tuple[tuple[LegRule, ...], bool]:
    """The leg rules in file order, and whether the file uses rule_priority."""
    table.require_columns("fare_product_id")
    uses_priority = table.has("rule_priority")
    rules: list[LegRule] = []
    for row in table.rows:
        product = _reference(
            row, "fare_product_id", products, "fare_product_id of fare_products.txt"
        )
        if product is None:
            raise row.error("fare_product_id", "a value is required")
        network = _reference(row, "network_id", networks, "network_id of routes.txt/networks.txt")
        from_area = _reference(row, "from_area_id", areas, "area_id of areas.txt")
        to_area = _reference(row, "to_area_id", areas, "area_id of areas.txt")
        timeframes = []
        for aliases in (_FROM_TIMEFRAME, _TO_TIMEFRAME):
            field = next((a for a in aliases if row.get(a)), aliases[0])
            timeframes.append(
                _reference(row, field, timeframe_groups, "timeframe_group_id of timeframes.txt")
            )
        priority = row.optional_int("rule_priority", minimum=0) or 0
        unsupported = [c for c in _LEG_UNSUPPORTED_MATCHING if row.get(c)]
        if unsupported:
            notes.append(
                f"{table.file} line {row.line}: {', '.join(unsupported)} not implemented; "
                "the rule is left out rather than matched too widely"
            )
            continue
        rules.append(
            LegRule(
                row.line,
                row.get("leg_group_id") or None,
                network,
                from_area,
                to_area,
                timeframes[0],
                timeframes[1],
                priority,
                product,
            )
        )
    _ignored_columns(table, _LEG_IGNORED, notes)
    return tuple(rules), uses_priority


def load_transfer_rules(
    table: Table | None,
    products: Mapping[str, FareProduct],
    leg_groups: Collection[str],
    notes: list[str],
) -> tuple[TransferRule, ...]:
    if table is None:
        return ()
    if not table.has("fare_transfer_type"):
        notes.append(
            f"{table.file}: no fare_transfer_type column (required by the spec); every rule "
            "read as 0 (from-leg fare + transfer cost)"
        )
    rules: list[TransferRule] = []
    for row in table.rows:
        groups = []
        for field in ("from_leg_group_id", "to_leg_group_id"):
            group = row.get(field) or None
            if group is not None and group not in leg_groups:
                notes.append(
                    f"{table.file} line {row.line}: {field} {group} is no leg_group_id of "
                    "fare_leg_rules.txt; the rule can never apply"
                )
            groups.append(group)
        count = row.optional_int("transfer_count", minimum=-1)
        if count == 0:
            raise row.error("transfer_count", '"0" is not -1 or a positive count')
        if count is None and groups[0] is not None and groups[0] == groups[1]:
            notes.append(
                f"{table.file} line {row.line}: transfer_count is empty for a transfer within "
                f"leg group {groups[0]} (required by the spec); read as -1 (no limit)"
            )
        limit = row.optional_int("duration_limit", minimum=1)
        limit_type = row.optional_enum("duration_limit_type", range(4))
        if limit is not None and limit_type is None:
            raise row.error("duration_limit_type", "required when duration_limit is set")
        if table.has("fare_transfer_type"):
            transfer_type = row.optional_enum("fare_transfer_type", range(3))
            if transfer_type is None:
                raise row.error("fare_transfer_type", "a value is required")
        else:
            transfer_type = 0
        product = _reference(
            row, "fare_product_id", products, "fare_product_id of fare_products.txt"
        )
        if row.get("is_symmetrical") == "1" and groups[0] != groups[1]:
            notes.append(
                f"{table.file} line {row.line}: is_symmetrical is not a fare_transfer_rules "
                "column; the rule applies in the given direction only"
            )
        rules.append(
            TransferRule(
                row.line, groups[0], groups[1], count, limit, limit_type, transfer_type, product
            )
        )
    return tuple(rules)


def unused_products(
    products: Mapping[str, FareProduct],
    leg_rules: Collection[LegRule],
    transfer_rules: Collection[TransferRule],
) -> list[str]:
    used = {r.fare_product_id for r in leg_rules} | {
        r.fare_product_id for r in transfer_rules if r.fare_product_id
    }
    return [
        f"fare_products.txt: {pid} (line {p.offers[0].line}) is used by no leg or transfer rule"
        for pid, p in products.items()
        if pid not in used
    ]
