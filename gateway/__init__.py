"""The gateway process: terminals connect over websockets, each tap is decided by the pure core
(`policies`) in a card actor (`actors`), made durable, signed and answered.

Where things are:

- `server` starts everything; `session` is one terminal's connection (hello, proof, taps);
  `tap_commands` turns a tap into a pure-core command; `connections` tracks live terminals.
- `wire/` — the terminal protocol (`protocol`), the websocket transport (`ws_server`), the
  published test vectors (`vectors`).
- `store/` — where a tap becomes durable: the `Store` (`interface`), Redis (`redis_store`,
  `redis_pipe`), the embedded server launcher (`redis_server`), an in-memory store for tests.
- `keys/` — where a decision is signed: keys and Ed25519 (`signing`), the key holder process
  (`keyholder`), proofs and auth frames (`authority`).
- `tariffs/` — tariff and GTFS feed files, and the tariff in force (`holder`).
- `provisioning` enrols terminals and issues cards; `config`, `launch` (`python -m gateway`),
  `events` (live fan-out), `gc_monitor`.
"""
