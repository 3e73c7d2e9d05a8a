"""The file side of the tariff: read a tariff file and the GTFS feed it names into a `Tariff`.

This module owns the only file reads of the tariff: the JSON file (docs/tariff.md) and, when its
`transit.gtfs.feed` names one, the GTFS Fares v2 feed folder, resolved relative to the tariff
file (gateway/tariffs/fares_io.py reads the feed). Everything else — validation, cross-checks
between the city's rules and the feed — is the pure `Tariff.from_dict`. Any problem is a
`TariffError` whose message starts with the file and names the field (or the feed's file, line
and field).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from gateway.tariffs.fares_io import load_feed_dir
from policies import Tariff
from policies.gtfs import FareFeed, FeedError

MAX_TARIFF_BYTES = 4 * 1024 * 1024
"""A tariff file larger than this is refused rather than parsed."""


class TariffError(ValueError):
    """The tariff file (or its feed) cannot be used; the message says where and why."""


def feed_path(tariff_file: Path, feed_ref: str) -> Path:
    """Where a feed reference of `tariff_file` points: relative to the file's folder."""
    ref = Path(feed_ref)
    return ref if ref.is_absolute() else tariff_file.parent / ref


def _feed_ref(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    transit = data.get("transit")
    if not isinstance(transit, dict):
        return None
    gtfs = transit.get("gtfs")
    if not isinstance(gtfs, dict):
        return None
    ref = gtfs.get("feed")
    return ref if isinstance(ref, str) and ref else None


def read_tariff(path: str | Path) -> tuple[Tariff, FareFeed | None]:
    """The tariff in file `path` and the feed it names (None: flat fares only)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_TARIFF_BYTES:
            raise TariffError(f"{file}: larger than {MAX_TARIFF_BYTES} bytes")
        raw = file.read_bytes()
    except OSError as exc:
        raise TariffError(f"{file}: cannot read ({exc.strerror or exc})") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TariffError(f"{file}: not valid JSON ({exc})") from None
    feed: FareFeed | None = None
    ref = _feed_ref(data)
    if ref is not None:
        try:
            feed = load_feed_dir(feed_path(file, ref))
        except FeedError as exc:
            raise TariffError(f"{file}: transit.gtfs.feed {ref!r}: {exc}") from None
    try:
        return Tariff.from_dict(data, feed=feed), feed
    except ValueError as exc:
        raise TariffError(f"{file}: {exc}") from None


def load_tariff_file(path: str | Path) -> Tariff:
    """Read and validate the tariff in file `path`; `TariffError` if it cannot be used."""
    return read_tariff(path)[0]
