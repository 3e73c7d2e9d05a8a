"""The control room: operators, their roles and sessions (`operators`), the append-only audit
log (`audit`), admin actions (`actions`, `card_commands`), the journal tailer and live
subscriptions (`tailer`, `streams`), today's figures, terminal health and alerts (`aggregates`,
`health`, `alerts`), and the web application serving the dashboard (`app`, `server`).

It runs as its own process (or beside the demo), on its own port, reading Redis: nothing an
operator does runs on a gateway's event loop. Its instructions reach the gateways through the
control channel (`gateway.store.deny_store`)."""
