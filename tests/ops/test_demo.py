"""The README's main job, run as a newcomer runs it: `citycard demo` on embedded defaults, twice
on the same data folder, each stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.store.redis_server import free_port

CLI = [sys.executable, "-m", "ops.cli"]


def run_demo_once(data_dir: Path, port: int) -> tuple[list[str], str, int]:
    """`citycard demo` until its first city round's line, then Ctrl-C: (lines before the
    signal, everything printed after it, exit status)."""
    proc = subprocess.Popen(
        [*CLI, "demo", "--port", str(port), "--control-port", str(free_port()),
         "--metrics-port", str(free_port()), "--data-dir", str(data_dir),
         "--cards", "60", "--rate", "40", "--profile", "peak"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    lines: list[str] = []
    rest = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            ln.lstrip().startswith("[round 1]") for ln in lines
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
        assert "control room: http://127.0.0.1:" in text, text
        assert "sign in with the operator token: cco.demo." in text, text
        played = next(ln for ln in lines if ln.lstrip().startswith("[round 1]"))
        assert "errors=0" in played and "sig_failures=0" in played, played
        assert "auditor_differences=0" in played and "approved=0 " not in played, played
        for noise in ("Traceback", "Task was destroyed", "Task exception", "Error"):
            assert noise not in rest, rest
        # Stopped by a signal, the demo shut its embedded Redis down (removing its pid file).
        assert code == 0
        assert not (data / "redis" / "redis.pid").exists()
    # The embedded Redis and the generated key live in the data folder.
    assert (data / "keys" / "gateway.key").exists()
    assert (data / "redis" / "appendonlydir").exists()
