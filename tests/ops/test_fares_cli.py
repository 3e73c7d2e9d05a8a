"""`fares check` / `fares quote` and the feed directory loader, on the copied real feeds.

The commands are driven through a parser built here with `add_fares_parser` (the way
ops/cli.py wires them in), and once end to end in a subprocess via `python -c`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.tariffs.fares_io import load_feed_dir, read_feed_files
from ops.fares_cli import add_fares_parser
from policies.gtfs import FeedError

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO / "tests" / "data" / "gtfs"
CTRAN = FEEDS / "ctran-fares-v2"
MDOT = FEEDS / "mdot-metro-fares-v2"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="citycard")
    add_fares_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_load_feed_dir_reads_only_fare_files() -> None:
    files = read_feed_files(CTRAN)
    assert "fare_products.txt" in files and "trips.txt" not in files
    assert files["agency.txt"].startswith("\ufeff")  # BOM and CRLF reach the parser untouched
    assert "\r\n" in files["fare_leg_rules.txt"]
    feed = load_feed_dir(CTRAN)
    assert (feed.name, feed.version) == ("ctran-fares-v2", "20250914-20260110")


def test_load_feed_dir_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="not a directory"):
        load_feed_dir(tmp_path / "nope")


def test_check_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["fares", "check", str(CTRAN)], capsys)
    assert code == 0
    for expected in (
        "feed: ctran-fares-v2 (version 20250914-20260110)",
        "agency: C-TRAN",
        "timezone: America/Los_Angeles",
        "valid: 2025-09-14 .. 2026-01-10",
        "networks (3): EXPRESS, LOCAL, REGIONAL",
        "rider categories (3): ADULT (default), HONORED_CITIZEN, YOUTH",
        "fare media (5): 0 Cash, 1 Ticket, 2 HOP Fastpass",
        "ADULT_LOCAL_SINGLE_RIDE 'Adult Local 2 1/2 Hours': 1.25 USD [ADULT; 0, 1, 2, 3, 4]",
        "leg rules: 21 (leg groups: EXPRESS, LOCAL, REGIONAL, SYSTEM_FREE)",
        "transfer rules: 19",
        "HC_EXPRESS_SINGLE_RIDE_MIDDAY (line 40) is used by no leg or transfer rule",
    ):
        assert expected in out


def test_check_shows_pass_durations(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["fares", "check", str(MDOT)], capsys)
    assert code == 0
    assert "core_local_7_day_fare '7-Day Pass - Core Service': 22.00 USD" in out
    assert "valid 7 day (rolling)" in out
    assert "no fare_transfer_type column" in out


def test_check_refuses_an_invalid_feed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(CTRAN, broken)
    products = broken / "fare_products.txt"
    products.chmod(0o644)
    lines = products.read_text(encoding="utf-8").split("\n")
    lines[6] = lines[6].replace("0.60", '"1,25"')
    products.write_text("\n".join(lines), encoding="utf-8")
    code, out, err = run(["fares", "check", str(broken)], capsys)
    assert code == 1 and out == ""
    assert 'fare_products.txt line 7, amount: "1,25" is not a decimal amount' in err


def test_quote_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fares", "quote", "--feed", str(CTRAN), "--category", "ADULT", "--medium", "2"]
    argv += ["--leg", "050,8126,8111,2025-10-06T07:30", "--leg", "105,8126,8111,2025-10-06T08:30"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    result = json.loads(out)
    assert (result["total"], result["currency"], result["total_display"]) == (300, "USD", "3.00")
    assert [leg["amount"] for leg in result["legs"]] == [125, 175]
    assert result["legs"][1]["transfer"]["rule"] == "fare_transfer_rules.txt line 10"


def test_quote_accepts_offsets_and_arrival_times(capsys: pytest.CaptureFixture[str]) -> None:
    # 14:30Z is 07:30 in Vancouver WA (PDT); the optional fifth field is the arrival.
    argv = ["fares", "quote", "--feed", str(CTRAN), "--category", "YOUTH", "--medium", "2"]
    argv += ["--leg", "050,8126,8111,2025-10-06T14:30:00+00:00,2025-10-06T14:50:00+00:00"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and json.loads(out)["total"] == 0


def test_quote_refusal_is_json_with_a_code(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fares", "quote", "--feed", str(CTRAN), "--leg", "999,8126,8111,2025-10-06T07:30"]
    code, out, _ = run(argv, capsys)
    assert code == 1
    assert json.loads(out) == {"error": "unknown_route", "leg": 0, "message": "route '999'"}


@pytest.mark.parametrize("bad", ["050,8126,2025-10-06T07:30", "050,8126,8111,yesterday"])
def test_quote_bad_leg_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["fares", "quote", "--feed", str(CTRAN), "--leg", bad], capsys)
    assert code == 2 and "--leg" in err


def test_end_to_end_in_a_subprocess() -> None:
    argv = ["fares", "quote", "--feed", str(MDOT), "--category", "sen"]
    argv += ["--medium", "charmcard_senior", "--leg", "11682,7500,7510,2021-03-02T08:00"]
    code = f"import sys; from ops.cli import main; sys.exit(main({argv!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"] == 230
