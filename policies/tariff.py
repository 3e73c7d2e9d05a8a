"""The tariff: every number the rules use, as versioned data rather than code.

This module owns `Tariff` (flat fare per network, the double-tap window and the per-operation and
balance limits), its validation and plain-data round trip, and `default_tariff()` for tests,
demos and the simulator. Larger sections live in their owners' modules and hang off one optional
field each: `transit` (policies/transit_tariff.py: the GTFS feed, categories, caps, products, tap
on / tap off, negative allowance). A section absent from the file keeps its default, which
changes nothing, so a v1 tariff file still loads and prices exactly as before. The file format
is documented in docs/tariff.md; gateway/tariffs/tariff_io.py reads it (and the feed it names). A
tariff is validated once when it is built, so the rules can trust it and `decide` never has to
re-check it on the hot path. Every decision carries `version`, which
is how a disputed charge is traced back to the prices that produced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from policies._validate import check_int, check_keys, check_mapping, check_str
from policies.gtfs.model import FareFeed
from policies.services.tariff import (
    NO_SERVICES,
    ServicesTariff,
    check_product_entitlements,
    demo_services,
)
from policies.transit_tariff import NO_TRANSIT_RULES, TransitRules

_INT_FIELDS: Final = (
    "double_tap_window_ms",
    "max_balance",
    "max_purchase",
    "max_topup",
)
_FIELDS: Final = ("version", "currency", "network_fares", *_INT_FIELDS)
_SECTIONS: Final = ("transit", "services")
"""Optional top-level sections of the file, each parsed by its owner's `from_dict`."""


@dataclass(frozen=True, slots=True)
class Tariff:
    """Prices and limits, all in minor units of `currency` and milliseconds."""

    version: str
    currency: str
    network_fares: Mapping[str, int]
    double_tap_window_ms: int
    max_balance: int
    max_purchase: int
    max_topup: int
    transit: TransitRules = NO_TRANSIT_RULES
    """GTFS fares, categories, caps, products, tap on / off (default: flat fares only)."""
    services: ServicesTariff = NO_SERVICES
    """City services: parking, taxi, venues, recycling, discounts, rewards, facility access
    (policies/services/tariff.py; default: none offered)."""

    def __post_init__(self) -> None:
        # Validated here rather than only in from_dict so a Tariff built in code is as safe as
        # one loaded from a file: the rules rely on these invariants without re-checking.
        check_str(self.version, "tariff field version")
        currency = self.currency
        if not (
            isinstance(currency, str)
            and len(currency) == 3
            and currency.isascii()
            and currency.isalpha()
            and currency.isupper()
        ):
            raise ValueError(
                f"tariff field currency: expected an ISO 4217 code like 'EUR', got {currency!r}"
            )
        fares = check_mapping(self.network_fares, "tariff field network_fares")
        frozen: dict[str, int] = {}
        for network, fare in fares.items():
            check_str(network, "tariff field network_fares key")
            frozen[network] = check_int(fare, f"tariff field network_fares[{network!r}]", minimum=0)
        # A read-only copy: the caller's dict must not be able to change prices after validation.
        object.__setattr__(self, "network_fares", MappingProxyType(frozen))
        for name in _INT_FIELDS:
            check_int(getattr(self, name), f"tariff field {name}", minimum=0)
        transit = self.transit
        if not isinstance(transit, TransitRules):
            raise ValueError("tariff field transit: expected TransitRules")
        if not transit.plain:
            self._check_transit(transit, frozen)
        if not isinstance(self.services, ServicesTariff):
            raise ValueError("tariff field services: expected ServicesTariff")
        check_product_entitlements(
            self.services, ((k, p.venues, p.discounts) for k, p in transit.products.items())
        )

    def _check_transit(self, transit: TransitRules, flat: Mapping[str, int]) -> None:
        """Cross-checks between the transit section and the rest of the tariff."""
        feed = transit.feed
        if feed is not None and feed.currency != self.currency:
            raise ValueError(
                f"tariff transit.gtfs.feed: the feed prices in {feed.currency}, "
                f"the tariff in {self.currency}"
            )
        known = set(flat) | set(transit.network_route)
        for pid, product in transit.products.items():
            for network in product.networks or ():
                if network not in known:
                    raise ValueError(
                        f"tariff transit.products[{pid!r}].networks: unknown network "
                        f"{network!r} (known: {', '.join(sorted(known))})"
                    )

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "version": self.version,
            "currency": self.currency,
            "network_fares": dict(self.network_fares),
            "double_tap_window_ms": self.double_tap_window_ms,
            "max_balance": self.max_balance,
            "max_purchase": self.max_purchase,
            "max_topup": self.max_topup,
        }
        if self.transit is not NO_TRANSIT_RULES:
            d["transit"] = self.transit.to_dict()
        if not self.services.is_empty:
            d["services"] = self.services.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: object, *, feed: FareFeed | None = None) -> Tariff:
        """Build a tariff from plain data; `ValueError` names the offending field.

        `feed` is the parsed GTFS feed that `transit.gtfs.feed` refers to (the caller reads
        it: this module opens no file); a tariff naming a feed cannot be built without it."""
        d = check_mapping(data, "tariff")
        check_keys(d, "tariff", _FIELDS, _SECTIONS)
        raw_transit = d.get("transit")
        if raw_transit is not None:
            transit = TransitRules.from_dict(raw_transit, feed=feed)
        elif feed is not None:
            raise ValueError("tariff: a feed was given but the tariff has no transit section")
        else:
            transit = NO_TRANSIT_RULES
        fares = check_mapping(d["network_fares"], "tariff field network_fares")
        return cls(
            version=check_str(d["version"], "tariff field version"),
            currency=check_str(d["currency"], "tariff field currency"),
            network_fares={
                k: check_int(v, f"tariff field network_fares[{k!r}]") for k, v in fares.items()
            },
            double_tap_window_ms=check_int(
                d["double_tap_window_ms"], "tariff field double_tap_window_ms"
            ),
            max_balance=check_int(d["max_balance"], "tariff field max_balance"),
            max_purchase=check_int(d["max_purchase"], "tariff field max_purchase"),
            max_topup=check_int(d["max_topup"], "tariff field max_topup"),
            transit=transit,
            services=(
                NO_SERVICES
                if d.get("services") is None
                else ServicesTariff.from_dict(d["services"])
            ),
        )


def default_tariff() -> Tariff:
    """A small city tariff (EUR cents): the fixture for tests, demos and the simulator."""
    return Tariff(
        version="city-2026.1",
        currency="EUR",
        network_fares={"METRO": 250, "BUS": 200, "TRAM": 200},
        double_tap_window_ms=60_000,
        max_balance=50_000,
        max_purchase=20_000,
        max_topup=20_000,
        services=demo_services(),
    )
