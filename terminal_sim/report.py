"""Reports of a simulator run: the live progress line, the final table, percentiles per terminal
kind, latency over time (an HTML page with an inline SVG drawn here -- no plotting library, no
network), and the comparison of two JSON results.

`python -m terminal_sim.report OLD.json NEW.json` compares two saved results.
"""

from __future__ import annotations

import html
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from terminal_sim.kinds import KIND_ORDER
from terminal_sim.latency import LatencyHistogram

KIND_COLOURS = {
    "gate": "#4e79a7",
    "bus": "#f28e2b",
    "taxi": "#59a14f",
    "parking": "#9c755f",
    "retail": "#ff9da7",
    "venue": "#b07aa1",
    "recycling": "#76b7b2",
    "kiosk": "#bab0ac",
}
P50_COLOUR, P99_COLOUR, MAX_COLOUR = "#000000", "#b2182b", "#999999"
#: Figures `compare` looks at, and whether higher is better.
COMPARED: tuple[tuple[str, bool], ...] = (
    ("taps_per_s", True),
    ("p50_ms", False),
    ("p99_ms", False),
    ("p999_ms", False),
    ("max_ms", False),
    ("errors", False),
    ("auditor_differences", False),
)
#: A figure that got this much worse (relative) is flagged.
REGRESSION = 0.10


def hist_summary(h: LatencyHistogram) -> dict[str, float | None]:
    if not h.count:
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    return {
        "p50_ms": h.p50_ms(),
        "p99_ms": h.p99_ms(),
        "p999_ms": h.p999_ms(),
        "max_ms": h.max_ms(),
    }


def timeline(
    done_ms: Sequence[int], latency_us: Sequence[int], bucket_s: float = 1.0
) -> dict[str, Any]:
    """Per wall-clock bucket of answers: count, p50, p99 and max latency (ms)."""
    buckets: dict[int, list[int]] = {}
    width = max(1, round(bucket_s * 1000))
    for d, lat in zip(done_ms, latency_us, strict=True):
        if d >= 0:
            buckets.setdefault(d // width, []).append(lat)
    if not buckets:
        return {
            "bucket_s": bucket_s,
            "t_s": [],
            "taps": [],
            "p50_ms": [],
            "p99_ms": [],
            "max_ms": [],
        }
    out: dict[str, list[Any]] = {"t_s": [], "taps": [], "p50_ms": [], "p99_ms": [], "max_ms": []}
    for b in range(0, max(buckets) + 1):
        vals = sorted(buckets.get(b, ()))
        out["t_s"].append(round(b * width / 1000, 3))
        out["taps"].append(len(vals))
        if vals:
            out["p50_ms"].append(round(vals[len(vals) // 2] / 1000, 3))
            out["p99_ms"].append(round(vals[min(len(vals) - 1, int(len(vals) * 0.99))] / 1000, 3))
            out["max_ms"].append(round(vals[-1] / 1000, 3))
        else:
            out["p50_ms"].append(None)
            out["p99_ms"].append(None)
            out["max_ms"].append(None)
    return {"bucket_s": bucket_s, **out}


# ---------------------------------------------------------------------------- the final table


def _ms(v: object) -> str:
    return "-" if v is None else f"{float(v):.2f}"  # type: ignore[arg-type]


def final_table(summary: Mapping[str, Any]) -> Table:
    t = Table(
        title=f"citycard sim -- {summary.get('city', 'fleet')} seed {summary.get('seed')} "
        "(latency in ms)"
    )
    for col in ("kind", "taps", "approved", "declined", "errors", "p50", "p99", "p99.9", "max"):
        t.add_column(col, justify="left" if col == "kind" else "right", no_wrap=True)
    by_kind: Mapping[str, Mapping[str, Any]] = summary.get("by_kind", {})
    for kind in sorted(by_kind, key=lambda k: KIND_ORDER.index(k) if k in KIND_ORDER else 99):
        k = by_kind[kind]
        t.add_row(
            kind,
            str(k["taps"]),
            str(k["approved"]),
            str(k["declined"]),
            str(k["errors"]),
            _ms(k["p50_ms"]),
            _ms(k["p99_ms"]),
            _ms(k["p999_ms"]),
            _ms(k["max_ms"]),
        )
    t.add_row(
        Text("all", style="bold"),
        str(summary["taps_sent"]),
        str(summary["approved"]),
        str(summary["declined"]),
        str(summary["errors"]),
        _ms(summary["p50_ms"]),
        _ms(summary["p99_ms"]),
        _ms(summary["p999_ms"]),
        _ms(summary["max_ms"]),
    )
    return t


def footer_lines(summary: Mapping[str, Any]) -> list[str]:
    s = summary
    lines = []
    if s.get("by_kind"):
        ops = "; ".join(f"{k} {'+'.join(v.get('ops', [])) or '-'}" for k, v in s["by_kind"].items())
        lines.append(f"ops: {ops}")
    lines += [
        f"throughput {s['taps_per_s']} taps/s over {s.get('wall_s', s.get('duration_s'))} s wall"
        + (
            f" (speed {s['speed']}x, {s['sim_duration_s']:.0f} s simulated from {s['sim_start']})"
            if "speed" in s
            else ""
        ),
        f"retries {s['retries']}  reconnects {s['reconnects']}  "
        f"signature failures {s['signature_failures']}",
    ]
    if "outages" in s:
        lines.append(
            f"outages {s['outages']} (taps delayed by them {s['outage_delayed_taps']}, "
            f"their p99 {_ms(s['outage_p99_ms'])} ms, not in the figures above)  "
            f"blocked cards {s['blocks']}  double taps {s['double_taps']}  "
            f"unknown-card taps {s['unknown_card_taps']}"
        )
    if "auditor_checked_cards" in s:
        lines.append(
            f"auditor: {s['auditor_checked_cards']} cards checked, "
            f"{s['auditor_differences']} differences, "
            f"{s.get('auditor_chains_verified', 0)} balance chains verified"
        )
    lines.append(
        f"client CPU share {s['client_cpu_share']}  send lag p99 {s['client_send_lag_p99_ms']} ms  "
        + (
            "CLIENT CPU-BOUND: the figures measure the simulator; use --processes"
            if s["client_cpu_bound"]
            else "client starved of CPU by other processes (gateway, Redis, other jobs): the "
            "machine is saturated, the figures include it"
            if s.get("client_starved")
            else "client not the bottleneck"
        )
    )
    return lines


def _console() -> Console:
    con = Console(stderr=True)
    return con if con.is_terminal else Console(stderr=True, width=120)


def print_final(summary: Mapping[str, Any], console: Console | None = None) -> None:
    con = console or _console()
    if "by_kind" in summary:
        con.print(final_table(summary))
    for line in footer_lines(summary):
        con.print(line, highlight=False)


# ---------------------------------------------------------------------------- live progress


class Progress:
    """A live status line on stderr (rich), fed from the workers' shared counters."""

    def __init__(
        self,
        read: Callable[[], list[int]],
        total: int,
        wall_s: float,
        *,
        enabled: bool = True,
        console: Console | None = None,
    ) -> None:
        self.read = read
        self.total = total
        self.wall_s = wall_s
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.t0: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = (0.0, 0)

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def line(self) -> Text:
        c = self.read()
        sent, appr, decl, err, pend, _retries, reco, outg, blk, t0_us = (c + [0] * 10)[:10]
        if t0_us > 0:
            self.t0 = t0_us / 1e6
        now = time.monotonic()
        el = 0.0 if self.t0 is None else max(0.0, now - self.t0)
        done = appr + decl
        t_prev, d_prev = self._last
        rate = (done - d_prev) / (now - t_prev) if t_prev and now > t_prev else 0.0
        self._last = (now, done)
        phase = "connecting" if self.t0 is None else ("running" if el < self.wall_s else "draining")
        return Text.assemble(
            (f"{phase:>10} ", "bold cyan"),
            f"{el:5.1f}/{self.wall_s:.0f}s sent {sent}/{self.total} ",
            ("ok ", "green"),
            f"{appr} ",
            ("no ", "yellow"),
            f"{decl} ",
            ("err ", "red" if err else ""),
            f"{err} fly {pend} {rate:.0f}/s reconn {reco} out {outg} blk {blk}",
        )

    def _loop(self) -> None:
        if self.console.is_terminal:
            with Live(
                self.line(), console=self.console, refresh_per_second=4, transient=False
            ) as live:
                while not self._stop.wait(0.25):
                    live.update(self.line())
                live.update(self.line())
        else:
            while not self._stop.wait(5.0):
                self.console.print(self.line(), highlight=False)


# ---------------------------------------------------------------------------- HTML + SVG


def _polyline(
    xs: Sequence[float],
    ys: Sequence[float | None],
    sx: Callable[[float], float],
    sy: Callable[[float], float],
    colour: str,
    width: float = 1.5,
    dash: str = "",
) -> str:
    parts: list[str] = []
    seg: list[str] = []
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if len(seg) > 1:
                parts.append(" ".join(seg))
            seg = []
            continue
        seg.append(f"{sx(x):.1f},{sy(y):.1f}")
    if len(seg) > 1:
        parts.append(" ".join(seg))
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return "".join(
        f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{d} points="{p}"/>'
        for p in parts
    )


def _el(tag: str, text: str = "", **attrs: object) -> str:
    """One SVG/HTML element; attribute names use _ for - (and a trailing _ is dropped)."""
    a = " ".join(f'{k.rstrip("_").replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f"<{tag} {a}>{html.escape(text)}</{tag}>" if text else f"<{tag} {a}/>"


def svg_plot(
    tl: Mapping[str, Any],
    by_kind_tl: Mapping[str, Mapping[str, Any]] | None = None,
    width: int = 900,
    height: int = 360,
) -> str:
    """Latency (p50, p99, max; log scale) and answers per second over wall time."""
    xs: list[float] = list(tl.get("t_s", []))
    kinds = [k for k, ktl in (by_kind_tl or {}).items() if ktl.get("t_s")]
    legend_rows = math.ceil((3 + len(kinds)) / 6)
    ml, mr, mt, mb = 60, 60, 14 + 14 * legend_rows, 40
    height += 14 * legend_rows
    pw, ph = width - ml - mr, height - mt - mb
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
    if not xs:
        return head + 'height="40">' + _el("text", "no answers", x=10, y=25) + "</svg>"
    vals = [float(v) for k in ("p50_ms", "p99_ms", "max_ms") for v in tl[k] if v is not None]
    lo = max(0.01, min(vals))
    hi = max(vals) * 1.2
    llo, lhi = math.log10(lo), math.log10(max(hi, lo * 10))
    x_max = max(float(xs[-1]), 1.0)
    bucket = float(tl.get("bucket_s", 1.0))
    rmax = float(max(max(tl["taps"]), 1)) / bucket

    def sx(x: float) -> float:
        return ml + pw * x / x_max

    def sy(v: float) -> float:
        return mt + ph * (1 - (math.log10(max(v, lo)) - llo) / (lhi - llo))

    def sr(v: float) -> float:
        return mt + ph * (1 - v / (rmax * 1.1))

    out = [head + f'height="{height}" font-family="sans-serif" font-size="11">']
    out.append(_el("rect", x=ml, y=mt, width=pw, height=ph, fill="#fafafa", stroke="#ccc"))
    bw = max(1.0, pw / max(1, len(xs)) - 1)
    for x, n in zip(xs, tl["taps"], strict=True):  # answers per second, as bars
        if n:
            y = sr(n / bucket)
            h = mt + ph - y
            out.append(
                _el(
                    "rect",
                    x=f"{sx(x):.1f}",
                    y=f"{y:.1f}",
                    width=f"{bw:.1f}",
                    height=f"{h:.1f}",
                    fill="#c6dbef",
                )
            )
    for e in range(math.floor(llo), math.ceil(lhi) + 1):  # grid: 1, 2, 5 per decade
        for m in (1, 2, 5):
            v = m * 10**e
            if lo <= v <= 10**lhi:
                y = sy(v)
                out.append(
                    _el("line", x1=ml, x2=ml + pw, y1=f"{y:.1f}", y2=f"{y:.1f}", stroke="#e4e4e4")
                )
                out.append(_el("text", f"{v:g}", x=ml - 4, y=f"{y + 4:.1f}", text_anchor="end"))
    for i in range(6):
        x = x_max * i / 5
        out.append(_el("text", f"{x:.0f}", x=f"{sx(x):.1f}", y=mt + ph + 14, text_anchor="middle"))
        r = rmax * 1.1 * i / 5
        out.append(_el("text", f"{r:.0f}", x=ml + pw + 4, y=f"{sr(r) + 4:.1f}"))
    cy = mt + ph / 2
    out.append(
        _el("text", "wall seconds since start", x=ml + pw / 2, y=height - 6, text_anchor="middle")
    )
    out.append(
        _el(
            "text",
            "latency ms (log)",
            x=14,
            y=cy,
            transform=f"rotate(-90 14 {cy})",
            text_anchor="middle",
        )
    )
    rx = width - 12
    out.append(
        _el(
            "text",
            "answers / s (bars)",
            x=rx,
            y=cy,
            transform=f"rotate(90 {rx} {cy})",
            text_anchor="middle",
        )
    )
    legend = [("p50", P50_COLOUR), ("p99", P99_COLOUR), ("max", MAX_COLOUR)]
    for kind in kinds:
        ktl = (by_kind_tl or {})[kind]
        colour = KIND_COLOURS.get(kind, "#000")
        out.append(_polyline(ktl["t_s"], ktl["p99_ms"], sx, sy, colour, 1.0, "3,2"))
        legend.append((f"p99 {kind}", colour))
    out.append(_polyline(xs, tl["max_ms"], sx, sy, MAX_COLOUR, 1.0))
    out.append(_polyline(xs, tl["p99_ms"], sx, sy, P99_COLOUR, 2.0))
    out.append(_polyline(xs, tl["p50_ms"], sx, sy, P50_COLOUR, 2.0))
    for i, (name, col) in enumerate(legend):
        x = ml + (i % 6) * 130
        y = 14 + (i // 6) * 14
        out.append(_el("line", x1=x, x2=x + 18, y1=y - 4, y2=y - 4, stroke=col, stroke_width=2))
        out.append(_el("text", name, x=x + 22, y=y))
    out.append("</svg>")
    return "".join(out)


def write_html(
    path: Path,
    summary: Mapping[str, Any],
    by_kind_tl: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    s = summary
    cols = (
        "kind",
        "taps",
        "approved",
        "declined",
        "errors",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "ops",
    )
    rows = ["<tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for kind, k in s.get("by_kind", {}).items():
        cells = (
            kind,
            k["taps"],
            k["approved"],
            k["declined"],
            k["errors"],
            _ms(k["p50_ms"]),
            _ms(k["p99_ms"]),
            _ms(k["p999_ms"]),
            _ms(k["max_ms"]),
            ", ".join(k.get("ops", [])),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
    cells = (
        "all",
        s["taps_sent"],
        s["approved"],
        s["declined"],
        s["errors"],
        _ms(s["p50_ms"]),
        _ms(s["p99_ms"]),
        _ms(s["p999_ms"]),
        _ms(s["max_ms"]),
        "",
    )
    rows.append("<tr>" + "".join(f"<th>{html.escape(str(v))}</th>" for v in cells) + "</tr>")
    e = html.escape
    title = (
        f"citycard sim: {s.get('city', 'fleet')}, profile {s.get('profile', '-')}, "
        f"load {s.get('load', 'open')}, seed {s.get('seed')}"
    )
    style = (
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} "
        "td:first-child{text-align:left}"
    )
    parts = [
        "<!doctype html>",
        f'<html><head><meta charset="utf-8"><title>{e(title)}</title>',
        f"<style>{style}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>schedule digest <code>{e(str(s.get('schedule_digest', '-')))}</code>, "
        f"run <code>{e(str(s.get('run_tag', '-')))}</code></p>",
        "<h2>Latency over time</h2>",
        svg_plot(s.get("timeline", {}), by_kind_tl),
        "<p>Latency counts from each tap's intended send time (open loop) and excludes taps held "
        "back by a simulated mobile-network outage. Bars: answers per second.</p>",
        "<h2>Per terminal kind</h2>",
        "<table>" + "".join(rows) + "</table>",
        "<ul>" + "".join(f"<li>{e(x)}</li>" for x in footer_lines(s)) + "</ul>",
    ]
    examples = s.get("auditor_examples", [])
    if examples:
        parts.append("<h2>Auditor differences</h2><ul>")
        parts += [f"<li><code>{e(x)}</code></li>" for x in examples]
        parts.append("</ul>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n")


# ---------------------------------------------------------------------------- comparison


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Table, list[str]]:
    """A table of old vs new figures (overall and p99 per kind) and the regressions found."""
    t = Table(title="compared with the earlier run")
    for col in ("figure", "old", "new", "change"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    regressions: list[str] = []

    def row(name: str, a: object, b: object, higher_better: bool) -> None:
        if a is None and b is None:
            return
        change = ""
        style = ""
        if isinstance(a, int | float) and isinstance(b, int | float):
            if a:
                rel = (b - a) / abs(a)
                change = f"{rel:+.1%}"
                worse = rel < -REGRESSION if higher_better else rel > REGRESSION
                if worse:
                    regressions.append(f"{name}: {a} -> {b} ({change})")
                    style = "red"
                elif (rel > REGRESSION) if higher_better else (rel < -REGRESSION):
                    style = "green"
            elif b != a:
                change = f"{b - a:+g}"
                if (b > a) != higher_better:
                    regressions.append(f"{name}: {a} -> {b}")
                    style = "red"
        t.add_row(name, str(a), str(b), Text(change, style=style))

    for name, hb in COMPARED:
        row(name, old.get(name), new.get(name), hb)
    kinds = sorted(set(old.get("by_kind", {})) | set(new.get("by_kind", {})))
    for k in kinds:
        a = old.get("by_kind", {}).get(k, {})
        b = new.get("by_kind", {}).get(k, {})
        row(f"{k} p99_ms", a.get("p99_ms"), b.get("p99_ms"), False)
        row(f"{k} taps", a.get("taps"), b.get("taps"), True)
    return t, regressions


def print_compare(
    old: Mapping[str, Any], new: Mapping[str, Any], console: Console | None = None
) -> list[str]:
    con = console or _console()
    table, regs = compare(old, new)
    con.print(table)
    if old.get("schedule_digest") and old.get("schedule_digest") != new.get("schedule_digest"):
        con.print(
            "note: the two runs played different schedules "
            "(seed, city, profile or population differ)"
        )
    for r in regs:
        con.print(f"[red]regression[/red] {r}")
    return regs


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m terminal_sim.report OLD.json NEW.json", file=sys.stderr)
        return 2
    old, new = (orjson.loads(Path(a).read_bytes()) for a in args)
    return 1 if print_compare(old, new) else 0


if __name__ == "__main__":
    sys.exit(main())
