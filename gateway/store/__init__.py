"""Where a tap becomes durable: the gateway's `Store` and its Redis and in-memory
implementations, and the launcher of the embedded server."""
