"""Gateway settings: one frozen dataclass with every bound the process enforces, and where the
data (embedded Redis, keys) lives. Defaults are what `citycard serve` runs with."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    return Path(os.environ.get("CITYCARD_DATA_DIR", "var"))


def default_gateway_id() -> str:
    """This process's name in the control room: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    #: None: start an embedded redis-server with its data under data_dir/redis.
    redis_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    #: Durability of the embedded Redis: `always` fsyncs every write before it is acknowledged;
    #: `everysec` may lose up to a second of acknowledged writes on a power cut (not on a gateway
    #: or Redis process crash). See docs/operations.md.
    appendfsync: str = "everysec"
    #: Tariff file (JSON); None uses policies.default_tariff().
    tariff_path: Path | None = None
    #: At start, how long to wait for a Redis that is unreachable or still loading its AOF.
    redis_ready_wait_s: float = 60.0
    heartbeat_s: int = 15
    #: Connections that have not completed hello/proof by then (from TCP accept) are closed.
    handshake_timeout_s: float = 10.0
    #: Unauthenticated connections accepted at once from one IP address (a depot behind NAT
    #: reconnecting after a restart stays far below: a handshake takes milliseconds) ...
    max_preauth_per_address: int = 256
    #: ... and in all; beyond either, a new TCP connection is dropped at accept.
    max_preauth_total: int = 4_096
    #: Connections closed after this many heartbeat periods without a frame.
    idle_heartbeats: int = 3
    #: Live terminal connections this process accepts.
    max_connections: int = 20_000
    #: Largest websocket message the transport reads at all; protocol frames are capped lower
    #: (gateway.wire.protocol.MAX_FRAME_BYTES) and refused with `frame_too_large`.
    max_ws_message: int = 65_536
    #: Frames one connection may send per second on average, and in a burst (more: `busy`).
    max_frames_per_s: float = 200.0
    frame_burst: float = 400.0
    #: Frames buffered per connection before the gateway stops reading from that terminal.
    max_ws_queue: int = 32
    card_mailbox: int = 32
    #: Resident card actors (about 6 KB each when idle); the least recently used idle one is
    #: passivated to make room.
    max_resident_cards: int = 50_000
    card_idle_s: float = 120.0
    #: Where authorisations are signed: "keyholder" (a child process holds the key and does the
    #: Ed25519 work on another core; gateway.keys.keyholder) or "local" (in this process).
    signer: str = "keyholder"
    #: Seconds between two lines of operating figures on stdout (0: none).
    stats_interval_s: float = 60.0
    #: Name of this process in the control room's views (default: host and pid).
    gateway_id: str = field(default_factory=default_gateway_id)
    #: Port of `/metrics`, `/healthz` and `/readyz` (0: any free one; None: not served).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: Report figures and connected terminals to Redis for the control room (gateway.presence).
    report_presence: bool = True

    def __post_init__(self) -> None:
        if self.signer not in ("keyholder", "local"):
            raise ValueError(f"signer must be 'keyholder' or 'local', not {self.signer!r}")
