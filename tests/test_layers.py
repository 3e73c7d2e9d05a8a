"""The packages are layered, each importing only those below it:
policies <- actors <- gateway <- terminal_sim <- ops. policies imports nothing of the project but
itself; every import counts, the ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("policies", "actors", "gateway", "terminal_sim", "ops")
RANK = {name: i for i, name in enumerate(LAYERS)}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def wrong_way(package: str, root: Path = REPO) -> list[str]:
    rank = RANK[package]
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for line, top in imported_packages(path):
            if top in RANK and RANK[top] > rank:
                bad.append(f"{path.relative_to(root)}:{line} imports {top}")
    return bad


@pytest.mark.parametrize("package", LAYERS)
def test_imports_run_down_the_layers(package: str) -> None:
    assert wrong_way(package) == []


def test_policies_imports_nothing_of_the_project() -> None:
    for path in sorted((REPO / "policies").rglob("*.py")):
        others = {top for _, top in imported_packages(path) if top in RANK and top != "policies"}
        assert not others, f"{path.relative_to(REPO)} imports {sorted(others)}"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    (tmp_path / "actors").mkdir()
    sample = tmp_path / "actors" / "m.py"
    sample.write_text(
        "import policies\ndef f():\n    from ops.cli import main\n    import gateway.server\n"
    )
    assert imported_packages(sample) == [(1, "policies"), (3, "ops"), (4, "gateway")]
    assert wrong_way("actors", tmp_path) == [
        "actors/m.py:3 imports ops",
        "actors/m.py:4 imports gateway",
    ]
