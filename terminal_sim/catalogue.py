"""What the gateway's tariff offers, as the simulator needs it: the ids its taps must name.

A venue scanner sends `venue=<id>`, a car park `facility=<id>`, a recycling kiosk a `material`,
a kiosk selling a pass a `product`: the ids must be the tariff's, or every such tap is declined
(`unknown_venue`, ...). So the city names its venues, car parks and materials after the tariff
the gateway runs: `policies.default_tariff()` (what `citycard serve` runs without `--tariff`) or
the file given with `--tariff`. Everything is read defensively (getattr with defaults): the
tariff grows with the core, and a section it does not have yet just leaves the simulator's own
generic names in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: str
    currency: str
    #: networks with a fare (flat fares and the feed's networks)
    networks: frozenset[str]
    #: card categories the tariff knows (empty: any)
    categories: tuple[str, ...]
    #: car park ids
    parking: tuple[str, ...]
    #: (venue id, kind, price)
    venues: tuple[tuple[str, str, int], ...]
    #: facility ids (access without payment)
    facilities: tuple[str, ...]
    #: recyclable materials
    materials: tuple[str, ...]
    #: products sold onto the card (passes, tourist card)
    products: tuple[str, ...]
    #: largest taxi amount per tap (None: no rule)
    taxi_max: int | None
    max_purchase: int

    def venue_ids(self, kind: str) -> list[str]:
        return [v for v, k, _ in self.venues if k == kind]

    def venue_price(self, vid: str, default: int) -> int:
        for v, _, p in self.venues:
            if v == vid:
                return p
        return default


def _keys(obj: Any, *path: str) -> tuple[str, ...]:
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return ()
    try:
        return tuple(sorted(str(k) for k in obj))
    except TypeError:
        return ()


def from_tariff(tariff: Any) -> Catalogue:
    services = getattr(tariff, "services", None)
    transit = getattr(tariff, "transit", None)
    networks = set(_keys(tariff, "network_fares")) | set(_keys(transit, "network_route"))
    venues: list[tuple[str, str, int]] = []
    for vid, v in sorted((getattr(services, "venues", None) or {}).items()):
        venues.append((str(vid), str(getattr(v, "kind", "")), int(getattr(v, "price", 0) or 0)))
    taxi = getattr(services, "taxi", None)
    return Catalogue(
        version=str(getattr(tariff, "version", "?")),
        currency=str(getattr(tariff, "currency", "")),
        networks=frozenset(networks),
        categories=_keys(transit, "categories"),
        parking=_keys(services, "parking"),
        venues=tuple(venues),
        facilities=_keys(services, "facilities"),
        materials=_keys(services, "recycling", "materials"),
        products=_keys(transit, "products"),
        taxi_max=getattr(taxi, "max_per_tap", None) if taxi is not None else None,
        max_purchase=int(getattr(tariff, "max_purchase", 20_000)),
    )


def load(tariff_path: Path | None = None) -> Catalogue:
    """The catalogue of the tariff in `tariff_path`, or of the built-in default tariff."""
    if tariff_path is None:
        from policies import default_tariff

        return from_tariff(default_tariff())
    try:
        from gateway.tariffs.tariff_io import load_tariff_file

        return from_tariff(load_tariff_file(tariff_path))
    except ImportError:  # an older gateway: a plain JSON tariff
        import orjson

        from policies import Tariff

        return from_tariff(Tariff.from_dict(orjson.loads(Path(tariff_path).read_bytes())))
