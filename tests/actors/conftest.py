"""Run every ``@pytest.mark.anyio`` test on asyncio, asyncio + uvloop (production) and trio."""

from __future__ import annotations

from typing import Any

import pytest

from . import helpers


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every semantic runtime test runs twice: workers only, and with inline handling of idle
    actors (modules about the worker pool itself set WORKER_POOL_TESTS = True; a test about what
inline handling documents as different is marked `workers_only`)."""
    if "inline_mode" in metafunc.fixturenames:
        workers_only = getattr(metafunc.module, "WORKER_POOL_TESTS", False) or (
            metafunc.definition.get_closest_marker("workers_only") is not None
        )
        modes = [False] if workers_only else [False, True]
        metafunc.parametrize(
            "inline_mode", modes, ids=["inline" if m else "workers" for m in modes], indirect=True
        )


@pytest.fixture(autouse=True)
def inline_mode(request: pytest.FixtureRequest) -> Any:
    helpers.INLINE[0] = getattr(request, "param", False)
    yield helpers.INLINE[0]
    helpers.INLINE[0] = False
