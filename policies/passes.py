"""Passes and other products bought onto the card: buying, activation on first use, expiry, and
the entitlements (venues, discounts) the city-services rules read.

This module owns:

- `buy_product` (the `BuyProduct` rule): a product of the tariff is paid from stored value at
  the price of the card's effective category (the default category's when the category has no
  price of its own) and stored on the card with its terms copied (`HeldProduct`), inactive.
  Expired products are dropped first; a card holds at most MAX_PRODUCTS.
- `covering_pass`: which held product covers a transit tap on a network (an active one first,
  else the oldest not yet activated, which the tap activates).
- `activate`: a product's validity starts at its first use and runs `duration` from there
  (days, weeks and months in the tariff's local wall-clock time, so a 1-day pass first used at
  10:00 ends at 10:00 the next day, across a DST change too).
- The services-side view: `entitlements(state, now_ms)` lists each usable product's venues and
  discounts under a `grant_id` unique per product instance; `use_entitlement` activates the
  product when a venue entry or discount is its first use. The services rules keep track of
  which one-time venue entries were used (keyed by `grant_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from policies import reasons
from policies.concessions import effective_category, unknown_category_step
from policies.gtfs.local_time import pass_end_ms
from policies.gtfs.model import Duration
from policies.model import EVENT_PRODUCT_BOUGHT, BuyProduct, CardState, Outcome
from policies.outcomes import approved, declined
from policies.tariff import Tariff
from policies.transit_state import MAX_PRODUCTS, HeldProduct
from policies.transit_tariff import TransitRules, gtfs_unit


def product_name(command: BuyProduct) -> str:
    return "product:" + str(command.product)


def expires_at(rules: TransitRules, product: HeldProduct, start_ms: int) -> int:
    assert rules.zone is not None
    duration = Duration(0, product.duration_amount, gtfs_unit(product.duration_unit), 1)
    return pass_end_ms(rules.zone, start_ms, duration)


def activate(rules: TransitRules, product: HeldProduct, now_ms: int) -> HeldProduct:
    """`product` with its validity started at `now_ms` (unchanged if already active)."""
    if product.activated_ms is not None:
        return product
    return replace(product, activated_ms=now_ms, expires_ms=expires_at(rules, product, now_ms))


def live(products: tuple[HeldProduct, ...], now_ms: int) -> tuple[HeldProduct, ...]:
    """The products not yet expired (unactivated ones never expire)."""
    return tuple(p for p in products if p.expires_ms is None or now_ms < p.expires_ms)


def covering_pass(products: tuple[HeldProduct, ...], network: str, now_ms: int) -> int | None:
    """Index of the product that covers a ride on `network` now, or None.

    An active product first (using it costs nothing more), else the oldest one not yet
    activated (it will be activated by this ride)."""
    waiting: int | None = None
    for i, p in enumerate(products):
        if not p.covers(network):
            continue
        if p.activated_ms is not None:
            if p.expires_ms is not None and p.activated_ms <= now_ms < p.expires_ms:
                return i
        elif waiting is None:
            waiting = i
    return waiting


def use_pass(
    rules: TransitRules, products: tuple[HeldProduct, ...], index: int, now_ms: int
) -> tuple[tuple[HeldProduct, ...], HeldProduct, Mapping[str, object]]:
    """(products with `index` activated if it was not, the product, its explain step)."""
    held = products[index]
    used = activate(rules, held, now_ms)
    step: dict[str, object] = {
        "rule": "pass",
        "product": used.product_id,
        "grant": used.grant_id,
        "valid_until_ms": used.expires_ms,
    }
    if used is not held:
        step["activated_ms"] = now_ms
        products = (*products[:index], used, *products[index + 1 :])
    return products, used, step


def buy_product(state: CardState, command: BuyProduct, now_ms: int, tariff: Tariff) -> Outcome:
    rules = tariff.transit
    name = product_name(command)
    product_id = command.product
    definition = rules.products.get(product_id) if isinstance(product_id, str) else None
    terminal, operator = command.terminal_id, command.operator
    if definition is None:
        return declined(
            state,
            terminal,
            operator,
            now_ms,
            tariff,
            reasons.UNKNOWN_PRODUCT,
            name,
            (
                {
                    "rule": "product_known",
                    "product": str(product_id)[:64],
                    "known": sorted(rules.products)[:32],
                },
            ),
        )
    if (rules.valid_from_ms is not None and now_ms < rules.valid_from_ms) or (
        rules.valid_until_ms is not None and now_ms >= rules.valid_until_ms
    ):
        return declined(
            state,
            terminal,
            operator,
            now_ms,
            tariff,
            reasons.OUTSIDE_VALIDITY,
            name,
            (
                {
                    "rule": "tariff_validity",
                    "valid_from": rules.valid_from,
                    "valid_until": rules.valid_until,
                },
            ),
        )
    resolved = effective_category(state, now_ms, rules)
    if resolved is None:
        return declined(
            state,
            terminal,
            operator,
            now_ms,
            tariff,
            reasons.UNKNOWN_CATEGORY,
            name,
            (unknown_category_step(state, rules),),
        )
    price = definition.prices.get(resolved.name)
    price_category = resolved.name
    if price is None:
        price = definition.prices.get(rules.default_category)
        price_category = rules.default_category
    if price is None:
        return declined(
            state,
            terminal,
            operator,
            now_ms,
            tariff,
            reasons.UNKNOWN_PRODUCT,
            name,
            (
                resolved.step,
                {"rule": "product_price", "product": product_id, "category": resolved.name},
            ),
        )
    kept = live(state.products, now_ms)
    if len(kept) >= MAX_PRODUCTS:
        return declined(
            state,
            terminal,
            operator,
            now_ms,
            tariff,
            reasons.PRODUCT_LIMIT,
            name,
            ({"rule": "product_limit", "held": len(kept), "max": MAX_PRODUCTS},),
        )
    balance = state.balance
    if balance < price:
        return declined(
            state,
            terminal,
            operator,
            now_ms,
            tariff,
            reasons.INSUFFICIENT_FUNDS,
            name,
            (resolved.step, {"rule": "sufficient_funds", "balance": balance, "required": price}),
        )
    seller = definition.operator or operator
    held = HeldProduct(
        product_id=product_id,
        bought_ms=now_ms,
        operator=seller,
        price=price,
        duration_amount=definition.duration_amount,
        duration_unit=definition.duration_unit,
        networks=definition.networks,
        venues=definition.venues,
        discounts=definition.discounts,
    )
    new_state = replace(state, balance=balance - price, products=(*kept, held))
    step: dict[str, object] = {
        "rule": "product_bought",
        "product": product_id,
        "grant": held.grant_id,
        "category": price_category,
        "price": price,
        "duration": f"{definition.duration_amount} {definition.duration_unit}",
        "activation": "first_use",
        "attributed_to": seller,
    }
    return approved(
        new_state,
        terminal,
        seller,
        now_ms,
        tariff,
        reasons.OK,
        price,
        name,
        EVENT_PRODUCT_BOUGHT,
        (resolved.step, step),
    )


# ------------------------------------------------------------------------------------------------
# The services-side view of entitlements
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What one usable product entitles to, for the venue and discount rules."""

    grant_id: str
    """Unique per product instance ("<product>@<bought ms>"): key the used entries on it."""
    product_id: str
    venues: frozenset[str]
    """One entry per listed venue while valid."""
    discounts: frozenset[str]
    from_ms: int | None
    """None: not activated yet (the first use activates it: call `use_entitlement`)."""
    until_ms: int | None


def entitlements(state: CardState, now_ms: int) -> tuple[Entitlement, ...]:
    """The venue and discount entitlements of the card's usable products at `now_ms`."""
    return tuple(
        Entitlement(
            p.grant_id,
            p.product_id,
            frozenset(p.venues),
            frozenset(p.discounts),
            p.activated_ms,
            p.expires_ms,
        )
        for p in state.products
        if (p.venues or p.discounts) and p.usable(now_ms)
    )


def use_entitlement(
    state: CardState, grant_id: str, now_ms: int, tariff: Tariff
) -> tuple[CardState, Entitlement] | None:
    """`state` with the product `grant_id` activated if this is its first use (and the
    entitlement as now valid), or None when no usable product has that id."""
    for i, p in enumerate(state.products):
        if p.grant_id == grant_id and p.usable(now_ms):
            used = activate(tariff.transit, p, now_ms)
            new_state = state
            if used is not p:
                products = (*state.products[:i], used, *state.products[i + 1 :])
                new_state = replace(state, products=products)
            return new_state, Entitlement(
                used.grant_id,
                used.product_id,
                frozenset(used.venues),
                frozenset(used.discounts),
                used.activated_ms,
                used.expires_ms,
            )
    return None
