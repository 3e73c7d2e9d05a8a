"""HDR latency histogram wrapper: percentiles, clamping, encode/decode, merge, pickling."""

from __future__ import annotations

import pickle

import pytest

from terminal_sim.latency import HIGHEST_US, LatencyHistogram


def test_empty_histogram_reads_zero() -> None:
    h = LatencyHistogram()
    assert h.count == 0
    assert (h.p50_ms(), h.p99_ms(), h.p999_ms(), h.max_ms(), h.mean_ms()) == (0, 0, 0, 0, 0)
    assert h.summary()["count"] == 0


def test_percentiles_in_ms_with_3_significant_digits() -> None:
    h = LatencyHistogram()
    for us in range(1, 10_001):  # 1 us .. 10 ms, uniform
        h.record_us(us)
    assert h.count == 10_000
    assert h.p50_ms() == pytest.approx(5.0, rel=1e-3)
    assert h.p99_ms() == pytest.approx(9.9, rel=1e-3)
    assert h.p999_ms() == pytest.approx(9.99, rel=1e-3)
    assert h.max_ms() == pytest.approx(10.0, rel=1e-3)
    s = h.summary()
    assert set(s) >= {"count", "p50_ms", "p99_ms", "p99.9_ms", "max_ms", "mean_ms"}


def test_record_seconds_and_bulk() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    values = [0.000250, 0.0012, 0.0012, 0.5, 2.0]
    for v in values:
        a.record_s(v)
    b.record_many_s(values)
    assert a.encode() == b.encode()
    assert a.max_ms() == pytest.approx(2000, rel=1e-3)
    assert a.percentile_us(0) == pytest.approx(250, rel=1e-3)


def test_out_of_range_values_are_clamped() -> None:
    h = LatencyHistogram()
    h.record_us(0)
    h.record_s(-0.5)
    h.record_s(3600.0)
    assert h.count == 3
    assert h.clamped == 3
    assert h.max_ms() == pytest.approx(HIGHEST_US / 1000, rel=1e-3)


def test_merge_encoded_histograms_from_several_processes() -> None:
    parts = []
    for k in range(3):
        h = LatencyHistogram()
        for us in range(1000 * k + 1, 1000 * (k + 1) + 1):
            h.record_us(us)
        parts.append(h)
    blobs = [p.encode() for p in parts]
    assert all(isinstance(b, bytes) for b in blobs)

    merged = LatencyHistogram.merged(blobs)
    assert merged.count == 3000
    assert merged.p50_ms() == pytest.approx(1.5, rel=1e-3)
    assert merged.max_ms() == pytest.approx(3.0, rel=1e-3)

    same = LatencyHistogram.merged(parts)
    assert same.encode() == merged.encode()

    into = LatencyHistogram.decode(blobs[0])
    into.merge(LatencyHistogram.decode(blobs[2]))
    assert into.count == 2000
    assert into.p50_ms() == pytest.approx(1.0, rel=1e-2)


def test_pickle_roundtrip() -> None:
    h = LatencyHistogram()
    h.record_us(42)
    h.record_us(HIGHEST_US + 1)
    back = pickle.loads(pickle.dumps(h))
    assert back.count == 2
    assert back.clamped == 1
    assert back.summary() == h.summary()
