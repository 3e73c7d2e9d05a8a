"""The terminal wire protocol (one module, `protocol`), its websocket transport and its test
vectors."""
