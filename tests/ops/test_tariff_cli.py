"""`citycard tariff check FILE`: the summary of a valid tariff, the refusal of a bad one."""

from __future__ import annotations

import io
from argparse import Namespace
from pathlib import Path

import orjson
import pytest

from ops.cli import build_parser
from ops.tariff_cli import cmd_tariff_check

REPO = Path(__file__).resolve().parents[2]
CITY = REPO / "tariffs" / "city-2026.json"


def test_tariff_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert cmd_tariff_check(Namespace(file=str(CITY)), out) == 0
    text = out.getvalue()
    assert "tariff: version city-2026.2, currency USD" in text
    assert "GTFS feed: gtfs/ctran-fares-v2 = ctran-fares-v2 version 20250914-20260110" in text
    assert "adult-day: daily 5.00 USD for adult" in text
    assert "TOURIST-48H" in text and "one entry each: museum-city" in text
    assert "GTFS legs after 2026-01-10 are declined" in text  # a warning, still valid
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"version": "x"}))
    assert cmd_tariff_check(Namespace(file=str(bad)), io.StringIO()) == 1
    assert "invalid tariff" in capsys.readouterr().err
    # Wired into the main parser.
    args = build_parser().parse_args(["tariff", "check", str(CITY)])
    assert args.func is cmd_tariff_check
