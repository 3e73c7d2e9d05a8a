"""`citycard chaos`, short: the gateway and Redis are killed with SIGKILL under load and
restarted; every tap a terminal saw decided is journaled once and every balance is right."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from terminal_sim.chaos import ChaosTotals, kill_schedule, run_chaos


def test_kill_schedule_is_seeded_and_complete() -> None:
    s = kill_schedule(7, 3, seed=5)
    assert sorted(s) == ["gateway"] * 7 + ["redis"] * 3
    assert s == kill_schedule(7, 3, seed=5) != kill_schedule(7, 3, seed=6)


def test_chaos_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    totals = run_chaos(
        gateway_kills=3,
        redis_kills=2,
        seed=11,
        terminals=12,
        cards=40,
        rate=120,
        round_kills=3,
        data_dir=tmp_path,
        out=out,
    )
    assert (totals.gateway_kills, totals.redis_kills, totals.rounds) == (3, 2, 2)
    assert totals.ok, totals.examples
    assert totals.taps > 300 and totals.approved + totals.declined == totals.taps
    assert totals.unresolved == 0 and totals.reconnects > 0
    assert totals.gateway_tracebacks == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    assert out.getvalue().count("[round ") == 2


def test_totals_classify_differences() -> None:
    from terminal_sim.auditor import AuditReport, Difference

    rep = AuditReport(
        1,
        differences=[
            Difference("c", "journal entries of a decided tap", 1, 0),
            Difference("c", "journal entries of a decided tap", 1, 2),
            Difference("c", "journal entries of an unanswered tap", "<= 1", 2),
            Difference("c", "balance", 10, 9),
            Difference("c", "status", "active", "blocked"),
        ],
    )
    t = ChaosTotals()
    t.add_audit(rep)
    assert (t.lost, t.doubled, t.balance_errors, t.other_differences) == (1, 2, 1, 1)
    assert not t.ok and "lost=1 doubled=2 balance_errors=1" in t.line()


def test_chaos_command_line() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.cli",
            "chaos",
            "--gateway-kills",
            "1",
            "--redis-kills",
            "1",
            "--terminals",
            "6",
            "--cards",
            "20",
            "--rate",
            "60",
            "--seed",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("taps=") and last.endswith("lost=0 doubled=0 balance_errors=0"), last
    assert "gateway_kills=1 redis_kills=1" in last
