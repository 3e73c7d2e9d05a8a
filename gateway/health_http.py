"""The gateway's own HTTP listener, beside (never on) the terminal endpoint: `/metrics`
(Prometheus text format), `/healthz` (the process is alive) and `/readyz` (Redis answers and the
signer signs: send terminals here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.metrics import GatewayCollector, MetricSources


def health_app(
    sources: MetricSources, checks: dict[str, Callable[[], Awaitable[bool]]]
) -> Starlette:
    """`checks`: name -> async probe (each bounds its own wait); all must pass for ready."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(sources))

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        results = {name: await probe() for name, probe in checks.items()}
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
        )

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )
