"""The settlement tests run their async parts on asyncio (MemoryStore is backend-neutral)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
