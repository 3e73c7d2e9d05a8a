"""The tariff: every number the rules use, as versioned data rather than code.

This module owns `Tariff` (flat fare per network, the double-tap window and the per-operation and
balance limits), its validation and plain-data round trip, and `default_tariff()` for tests,
demos and the simulator. A tariff is validated once when it is built, so the rules can trust it
and `decide` never has to re-check it on the hot path. Every decision carries `version`, which
is how a disputed charge is traced back to the prices that produced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from policies._validate import check_int, check_keys, check_mapping, check_str

_INT_FIELDS: Final = (
    "double_tap_window_ms",
    "max_balance",
    "max_purchase",
    "max_topup",
)
_FIELDS: Final = ("version", "currency", "network_fares", *_INT_FIELDS)


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

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "currency": self.currency,
            "network_fares": dict(self.network_fares),
            "double_tap_window_ms": self.double_tap_window_ms,
            "max_balance": self.max_balance,
            "max_purchase": self.max_purchase,
            "max_topup": self.max_topup,
        }

    @classmethod
    def from_dict(cls, data: object) -> Tariff:
        """Build a tariff from plain data; `ValueError` names the offending field."""
        d = check_mapping(data, "tariff")
        check_keys(d, "tariff", _FIELDS)
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
    )
