"""The actor runtime (`runtime`: bounded mailboxes, activation on demand, passivation,
supervised restarts) and the card actor (`card`), with the store port it needs
(`card_store`). Backend-neutral anyio: runs on asyncio and trio."""
