"""`citycard demo`: a gateway plus a small simulated city tapping against it, in one process,
printing where to look and a line of figures every reporting period. Ctrl-C stops it."""

from __future__ import annotations

import itertools
import secrets

from gateway.config import GatewayConfig
from gateway.provisioning import gateway_keys
from gateway.server import open_gateway
from terminal_sim.driver import TapDriver
from terminal_sim.fleet import make_cards, make_fleet, provision

#: Seconds of simulated traffic between two report lines.
REPORT_PERIOD_S = 10.0


async def run_demo(
    config: GatewayConfig,
    terminals: int,
    cards: int,
    rate: float,
    seed: int,
    period_s: float = REPORT_PERIOD_S,
) -> None:
    async with open_gateway(config) as gw:
        fleet = make_fleet(terminals, seed)
        card_ids = make_cards(cards, seed)
        await provision(gw.store, fleet, card_ids)
        keys = gateway_keys(gw.redis_url)
        print(
            f"citycard demo: gateway {gw.url}  redis {gw.redis_url}  key {gw.authority.key_id}",
            flush=True,
        )
        print(
            f"  {terminals} simulated terminals, {cards} cards, {rate:g} taps/s "
            f"(control-room dashboard: not built yet)",
            flush=True,
        )
        # Tap ids are unique to this run: a demo started again on the same data folder must not
        # reuse the last one's (they would be refused as `tap_id_reused`).
        run_tag = secrets.token_hex(3)
        for period in itertools.count():
            driver = TapDriver(
                gw.url,
                fleet,
                card_ids,
                keys,
                rate=rate,
                duration=period_s,
                seed=seed * 100_000 + period,
                drain_s=5.0,
                tap_prefix=f"d{seed}x{run_tag}p{period}",
            )
            r = await driver.run()
            h = r.hist
            p99 = f"{h.p99_ms():.1f}" if h.count else "-"
            print(
                f"  [{period}] sent={r.taps_sent} approved={r.approved} declined={r.declined} "
                f"errors={r.errors} sig_failures={r.signature_failures} p99_ms={p99} "
                f"resident_cards={gw.cards.resident}",
                flush=True,
            )
