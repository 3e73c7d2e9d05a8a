"""Open-loop baseline: the bare websockets echo server under the lean client.

Starts ``python -m terminal_sim.echo_server`` in its own process, then for each client
process count and target rate runs :func:`terminal_sim.loadgen.run_multiprocess`
(fresh worker processes, each with its own uvloop and share of the connections) with
~300-byte tap-like JSON messages, and prints one row per run:

    python bench/echo_bench.py                      # 2k/5k/10k/20k msgs/s, 1 and 2 procs
    python bench/echo_bench.py --rates 5000 --procs 2 --duration 10 --json out.json

Latency is measured from each message's intended send time (coordinated-omission
free); ``svc p50`` is from the actual write, ``lag p99`` is how late the client sent.
``srv cpu`` is the echo server's CPU use (fraction of one core, from /proc): near
100% means the server, not the client, is the limit. ``bg cpu`` is what OTHER
processes on the machine used meanwhile: if it is not ~0 the run was disturbed
(``--quiet-wait`` waits for a quiet machine before each run). ``bound`` is the
client's saturation verdict (CPU > 90% of a core or send lag p99 > threshold).

CPU pinning (``--pin``, off by default): server on CPU 0, client workers on the other
CPUs. On a 2-core machine this keeps the client from stealing the server's core,
but it also confines 2 client processes to one core; report which you used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from terminal_sim.loadgen import JsonSeqMessages, LoadResult, LoadSpec, Target, run_multiprocess


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` from /proc (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float | None:
    """CPU seconds the machine spent in processes (user + nice + system), from /proc/stat.

    irq/softirq time is left out: loopback TCP delivery shows up there, and it is our
    own traffic, not another process's.
    """
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return (ticks[0] + ticks[1] + ticks[2]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process plus its reaped children (the load workers, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_for_quiet(max_busy: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until other processes use < ``max_busy`` cores."""
    deadline = time.monotonic() + max_wait
    while True:
        m0, w0 = machine_cpu_seconds(), time.monotonic()
        time.sleep(1.0)
        m1, w1 = machine_cpu_seconds(), time.monotonic()
        if m0 is None or m1 is None:
            return 0.0
        busy = (m1 - m0) / (w1 - w0)
        if busy < max_busy or time.monotonic() > deadline:
            return busy


def measure(
    n: int, target: Target, spec: LoadSpec, server_pid: int, client_cpus: set[int] | None
) -> tuple[dict[str, Any], LoadResult]:
    """One ``run_multiprocess`` call, plus server and background CPU over the same wall."""
    cpu0, m0, own0 = cpu_seconds(server_pid), machine_cpu_seconds(), own_cpu_seconds()
    wall0 = time.monotonic()
    result = run_multiprocess(n, target, spec, affinity=client_cpus)
    cpu1, m1, own1 = cpu_seconds(server_pid), machine_cpu_seconds(), own_cpu_seconds()
    wall = time.monotonic() - wall0
    row = result.summary()
    # Over the whole call (incl. connection setup and drain, so slightly below the
    # steady-state figures); in cores, as fractions of one.
    server = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / wall
    row["server_cpu"] = server
    row["background_cpu"] = (
        None
        if m0 is None or m1 is None or server is None
        else max(0.0, (m1 - m0 - (own1 - own0)) / wall - server)
    )
    row["client_cpus"] = [round(u, 3) for u in result.cpu_utils]
    row["loadavg"] = os.getloadavg()[0]
    return row, result


def start_echo_server(cpu: int | None) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "terminal_sim.echo_server", "--host", "127.0.0.1", "--port", "0"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        raise RuntimeError(f"echo server did not start: {line}")
    return proc, int(line[1])


HEADER = (
    f"{'procs':>5} {'target':>7} {'achieved':>8} {'p50':>7} {'p99':>7} {'p99.9':>7} "
    f"{'max':>7} {'svc p50':>7} {'lag p99':>7} {'cli cpu':>7} {'srv cpu':>7} "
    f"{'bg cpu':>7} {'lost':>5} {'bound':>5}"
)


def fmt_row(row: dict[str, Any]) -> str:
    srv, bg = row["server_cpu"], row["background_cpu"]
    return (
        f"{row['processes']:>5} {row['target_rate']:>7.0f} {row['achieved_rate']:>8.0f} "
        f"{row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['p99.9_ms']:>7.2f} "
        f"{row['max_ms']:>7.1f} {row['service_p50_ms']:>7.2f} {row['send_lag_p99_ms']:>7.2f} "
        f"{row['client_cpu']:>7.0%} {'-' if srv is None else format(srv, '>7.0%'):>7} "
        f"{'-' if bg is None else format(bg, '>7.0%'):>7} "
        f"{row['lost']:>5} {'YES' if row['client_cpu_bound'] else 'no':>5}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="2000,5000,10000,20000", help="msgs/s, comma-separated")
    ap.add_argument("--procs", default="1,2", help="client process counts, comma-separated")
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per run (incl. warmup)")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds not recorded")
    ap.add_argument("--size", type=int, default=300, help="message bytes")
    ap.add_argument("--max-inflight", type=int, default=64, help="per connection")
    ap.add_argument("--pin", action="store_true", help="server on CPU 0, clients elsewhere")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="shared machine: before each run wait up to this many seconds for the other "
        "processes to use less than --max-background cores",
    )
    ap.add_argument("--max-background", type=float, default=0.15)
    ap.add_argument(
        "--retries",
        type=int,
        default=0,
        help="re-run a point whose background CPU exceeded 2 x --max-background",
    )
    args = ap.parse_args(argv)

    rates = [float(r) for r in args.rates.split(",")]
    procs = [int(p) for p in args.procs.split(",")]
    ncpu = os.cpu_count() or 1
    client_cpus = set(range(1, ncpu)) if args.pin and ncpu > 1 else None
    msgs = JsonSeqMessages(size=args.size)

    server, port = start_echo_server(0 if client_cpus else None)
    print(
        f"# echo server pid {server.pid} on 127.0.0.1:{port}; {ncpu} CPUs; "
        f"pin={'server=0 clients=' + str(sorted(client_cpus)) if client_cpus else 'off'}; "
        f"loadavg before {os.getloadavg()[0]:.2f}; {args.connections} connections, "
        f"{args.size} B messages, {args.duration:.1f} s per run ({args.warmup} s warmup)"
    )
    print("# latencies in ms; cpu as a fraction of one core")
    print(HEADER)
    rows: list[dict[str, Any]] = []
    try:
        for n in procs:
            for rate in rates:
                spec = LoadSpec(
                    rate=rate,
                    duration=args.duration,
                    make_message=msgs.make,
                    reply_key=msgs.key,
                    max_inflight=args.max_inflight,
                    warmup=args.warmup,
                )
                target = Target("127.0.0.1", port, connections=args.connections)
                for attempt in range(1 + args.retries):
                    if args.quiet_wait > 0:
                        wait_for_quiet(args.max_background, args.quiet_wait)
                    row, result = measure(n, target, spec, server.pid, client_cpus)
                    bg = row["background_cpu"]
                    if bg is None or bg <= 2 * args.max_background:
                        break
                    if attempt < args.retries:
                        print(f"#   (disturbed: other processes used {bg:.0%} of a core; retry)")
                row["attempts"] = attempt + 1
                rows.append(row)
                print(fmt_row(row), flush=True)
                for why in result.saturation:
                    print(f"#   client saturated: {why}")
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=10)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
