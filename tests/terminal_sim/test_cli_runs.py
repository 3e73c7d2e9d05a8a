"""The load tools, run as a user runs them: `citycard sim` (with a gateway of its own), `citycard
bench`, and the key/card admin commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "ops.cli"]


def test_sim_without_url_starts_its_own_gateway(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [*CLI, "sim", "--terminals", "10", "--cards", "50", "--rate", "100", "--duration", "1.5",
         "--seed", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    for key in ("taps_sent", "approved", "declined", "errors", "signature_failures",
                "taps_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "client_cpu_bound"):
        assert key in result, key
    assert result["taps_sent"] == 150
    assert result["approved"] + result["declined"] == 150
    assert result["errors"] == 0 and result["signature_failures"] == 0


def test_bench_smoke(tmp_path: Path) -> None:
    run = subprocess.run(
        [*CLI, "bench", "--rate", "50", "--duration", "0.5", "--terminals", "10",
         "--cards", "100", "--json", str(tmp_path / "bench.json")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert set(fields) == {"gateway_taps_per_s", "p99_ms", "echo_msgs_per_s", "echo_p99_ms",
                           "ratio"}, last
    assert int(fields["gateway_taps_per_s"]) > 0 and int(fields["echo_msgs_per_s"]) > 0
    assert json.loads((tmp_path / "bench.json").read_text())["summary"]["ratio"] > 0


def test_keys_and_cards_admin(redis_url: str, tmp_path: Path) -> None:
    def cli(*args: str) -> str:
        run = subprocess.run([*CLI, *args, "--redis-url", redis_url], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    shown = subprocess.run([*CLI, "keys", "show", "--data-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60).stdout
    assert shown.startswith("key_id=k") and "public_key=" in shown
    made = cli("keys", "new-terminal", "kiosk-7", "--kind", "kiosk", "--operator", "city")
    assert "seed=" in made and "registered kiosk-7" in made
    assert "revoked kiosk-7" in cli("keys", "revoke", "kiosk-7")
    assert "balance=700" in cli("cards", "issue", "c-9", "--balance", "700")
    assert '"status":"blocked"' in cli("cards", "block", "c-9")
    assert '"balance":700' in cli("cards", "show", "c-9")
