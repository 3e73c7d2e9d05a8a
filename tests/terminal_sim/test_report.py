"""Reports: latency over time, the inline SVG plot, the HTML page and the comparison of runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from terminal_sim.report import compare, main, print_final, svg_plot, timeline, write_html


def summary(p99: float = 5.0, rate: float = 100.0) -> dict[str, Any]:
    done = [i * 100 for i in range(50)]
    lat = [1000 + (i % 10) * 500 for i in range(50)]
    kind = {"taps": 50, "approved": 49, "declined": 1, "errors": 0, "p50_ms": 2.0,
            "p99_ms": p99, "p999_ms": p99, "max_ms": p99, "ops": ["fare"]}
    return {
        "taps_sent": 50, "approved": 49, "declined": 1, "errors": 0, "signature_failures": 0,
        "taps_per_s": rate, "p50_ms": 2.0, "p99_ms": p99, "p999_ms": p99, "max_ms": p99,
        "city": "ctran", "seed": 4, "profile": "peak", "load": "open", "speed": 60.0,
        "sim_start": "07:30", "sim_duration_s": 600.0, "wall_s": 10.0, "retries": 0,
        "reconnects": 1, "outages": 1, "outage_delayed_taps": 0, "outage_p99_ms": None,
        "blocks": 1, "double_taps": 2, "unknown_card_taps": 0, "client_cpu_share": [0.1],
        "client_send_lag_p99_ms": 1.0, "client_cpu_bound": False, "auditor_checked_cards": 40,
        "auditor_differences": 0, "auditor_examples": [], "by_kind": {"gate": kind},
        "timeline": timeline(done, lat), "schedule_digest": "abc",
    }


def test_timeline_buckets() -> None:
    tl = timeline([0, 500, 999, 1000, 3500, -1], [1000, 2000, 3000, 4000, 5000, 9000])
    assert tl["t_s"] == [0.0, 1.0, 2.0, 3.0]
    assert tl["taps"] == [3, 1, 0, 1]
    assert tl["max_ms"][0] == 3.0 and tl["p50_ms"][2] is None


def test_svg_is_well_formed_and_has_the_lines() -> None:
    s = summary()
    svg = svg_plot(s["timeline"], {"gate": s["timeline"]})
    root = ET.fromstring(svg)
    polylines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(polylines) >= 4  # p50, p99, max, p99 per kind
    assert ET.fromstring(svg_plot({"t_s": []})) is not None


def test_html_report(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    write_html(out, summary())
    text = out.read_text()
    assert "<svg" in text and "gate" in text and "abc" in text


def test_final_table_renders() -> None:
    con = Console(record=True, width=120)
    print_final(summary(), con)
    text = con.export_text()
    assert "gate" in text and "auditor: 40 cards checked, 0 differences" in text


def test_compare_flags_regressions(tmp_path: Path) -> None:
    old, new = summary(p99=5.0, rate=100.0), summary(p99=9.0, rate=80.0)
    _, regs = compare(old, new)
    assert any(r.startswith("p99_ms") for r in regs)
    assert any(r.startswith("taps_per_s") for r in regs)
    assert any(r.startswith("gate p99_ms") for r in regs)
    _, same = compare(old, old)
    assert same == []
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(orjson.dumps(old))
    b.write_bytes(orjson.dumps(new))
    assert main([str(a), str(a)]) == 0
    assert main([str(a), str(b)]) == 1
