"""Starting the gateway process from a command line: its options, the `GatewayConfig` they
make, and the production event loop (asyncio with uvloop). `citycard serve` (ops.cli) and
`python -m gateway` (what the simulator and the benchmark start as a child process) share it."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import GatewayConfig, default_data_dir


def run_async(coro_fn: object, *args: object) -> None:
    """Run an async main on asyncio with uvloop when available (the production loop)."""
    import anyio

    try:
        import uvloop  # noqa: F401

        options: dict[str, object] = {"use_uvloop": True}
    except ImportError:  # pragma: no cover
        options = {}
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(coro_fn, *args, backend="asyncio", backend_options=options)  # type: ignore[arg-type]


def add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis to use (default $REDIS_URL; unset: start an embedded Redis)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the embedded Redis and the keys live (default ./var)",
    )
    p.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default="everysec",
        help="durability of the embedded Redis (default everysec)",
    )
    p.add_argument("--tariff", type=Path, default=None, help="tariff JSON file")
    p.add_argument(
        "--signer",
        choices=("keyholder", "local"),
        default="keyholder",
        help="where authorisations are signed: a key holder child process that alone holds the "
        "key (default), or this process",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz and /readyz on this port (default: not served)",
    )
    p.add_argument("--gateway-id", default=None, help="this process's name in the control room")


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    return GatewayConfig(
        host=args.host,
        port=args.port,
        redis_url=args.redis_url,
        data_dir=args.data_dir,
        appendfsync=args.appendfsync,
        tariff_path=args.tariff,
        stats_interval_s=getattr(args, "stats_interval", 60.0),
        signer=args.signer,
        metrics_port=args.metrics_port,
        **({"gateway_id": args.gateway_id} if args.gateway_id else {}),
    )


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """The options of the serving process: the server's, and its stats line."""
    add_server_args(p)
    p.add_argument(
        "--stats-interval",
        type=float,
        default=60.0,
        help="seconds between operating-figure lines on stdout; 0 for none (default 60)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m gateway [options]`: serve until SIGTERM or SIGINT."""
    from gateway.server import serve_forever

    parser = argparse.ArgumentParser(prog="python -m gateway", description=main.__doc__)
    add_serve_args(parser)
    run_async(serve_forever, config_from_args(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
