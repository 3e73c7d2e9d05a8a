"""The README's main job and the load tools, run as a user runs them: `citycard demo`, `citycard
sim` (with a gateway of its own), `citycard bench`, and the key/card admin commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.store.redis_server import free_port

CLI = [sys.executable, "-m", "ops.cli"]


def run_demo_once(data_dir: Path, port: int) -> tuple[list[str], str, int]:
    """`citycard demo` until its second report line, then Ctrl-C: (lines before the signal,
    everything printed after it, exit status)."""
    proc = subprocess.Popen(
        [*CLI, "demo", "--port", str(port), "--data-dir", str(data_dir),
         "--terminals", "8", "--cards", "30", "--rate", "40", "--period", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    lines: list[str] = []
    rest = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            ln.lstrip().startswith("[1]") for ln in lines
        ):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    return lines, rest, proc.returncode


def test_demo_serves_a_simulated_city(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "var"
    # Twice on the same data folder, as a newcomer would: the second run must not be refused
    # the first one's tap ids, and Ctrl-C must stop each quietly.
    for _ in range(2):
        lines, rest, code = run_demo_once(data, port)
        text = "".join(lines)
        assert f"gateway ws://127.0.0.1:{port}/" in text, text
        period = next(ln for ln in lines if ln.lstrip().startswith("[1]"))
        assert "errors=0" in period and "sig_failures=0" in period, period
        assert "approved=0 " not in period, period
        for noise in ("Traceback", "Task was destroyed", "Task exception", "Error"):
            assert noise not in rest, rest
        # Stopped by a signal, the demo shut its embedded Redis down (removing its pid file).
        assert code == 0
        assert not (data / "redis" / "redis.pid").exists()
    # The embedded Redis and the generated key live in the data folder.
    assert (data / "keys" / "gateway.key").exists()
    assert (data / "redis" / "appendonlydir").exists()


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
