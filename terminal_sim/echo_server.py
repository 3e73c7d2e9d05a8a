"""Bare websockets echo server: the baseline the gateway's benchmarks are divided by.

Same stack as the gateway: ``websockets.asyncio.server`` on uvloop, compression off.
Run it in its own process::

    python -m terminal_sim.echo_server --host 127.0.0.1 --port 8765

It prints ``ready <port>`` on stdout (flushed) once listening (``--port 0`` picks a
free port), and exits cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve

__all__ = ["echo", "main", "run"]


async def echo(ws: ServerConnection) -> None:
    """Send every message back unchanged (text stays text, binary stays binary)."""
    async for message in ws:
        await ws.send(message)


async def run(host: str, port: int, *, max_size: int | None = 1 << 20) -> None:
    """Serve until SIGINT/SIGTERM; announce ``ready <port>`` on stdout."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    async with serve(echo, host, port, compression=None, max_size=max_size) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"ready {bound}", flush=True)
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--max-size", type=int, default=1 << 20, help="max message bytes")
    parser.add_argument(
        "--cpu", type=int, default=None, help="pin this process to one CPU (Linux only)"
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        asyncio.run(run(args.host, args.port, max_size=args.max_size))
    else:
        uvloop.run(run(args.host, args.port, max_size=args.max_size))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
