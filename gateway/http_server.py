"""An ASGI application served by uvicorn inside the caller's anyio task group: the gateway's
`/metrics`, `/healthz` and `/readyz` listener, and the control room (ops).

uvicorn is made to leave signals alone (the process's own handler stops everything in order)
and, when the surrounding scope is cancelled, to shut down gracefully within a bound instead of
being torn down mid-request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskStatus

#: Seconds open HTTP connections get to finish once the server is asked to stop.
GRACEFUL_SHUTDOWN_S = 2.0
#: Seconds the stop waits for uvicorn at most (then the task is abandoned to cancellation).
STOP_TIMEOUT_S = 5.0
#: Seconds a new server may take to bind its socket.
START_TIMEOUT_S = 10.0


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGINT / SIGTERM belong to the process (gateway.server.until_signalled).
        yield


async def serve_http(
    app: Any,
    host: str,
    port: int,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on host:port until cancelled; reports the bound port through `task_status`
    (use `await tg.start(serve_http, app, host, 0)` for an ephemeral one)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="websockets-sansio",
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        # Small bounds: operators' requests are small; nothing here should buffer much.
        limit_concurrency=512,
        ws_max_size=65_536,
        ws_max_queue=32,
    )
    server = _QuietServer(config)
    done = anyio.Event()

    async def run() -> None:
        try:
            # Shielded: cancellation is turned into should_exit below, so uvicorn closes its
            # sockets and connections itself.
            with anyio.CancelScope(shield=True):
                await server.serve()
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(START_TIMEOUT_S):
            while not server.started:
                if done.is_set():
                    raise OSError(f"HTTP server on {host}:{port} did not start")
                await anyio.sleep(0.01)
        bound = int(server.servers[0].sockets[0].getsockname()[1])
        task_status.started(bound)
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_TIMEOUT_S):
                await done.wait()
