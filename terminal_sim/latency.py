"""Latency histograms: HDR histogram in microseconds, 1 us .. 60 s, 3 significant digits.

Values are recorded in whole microseconds and reported in milliseconds. Histograms
from several processes are merged through their compact HdrHistogram encoding
(``encode()`` -> ``bytes``, ``LatencyHistogram.decode()``).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "LOWEST_US", "SIGNIFICANT_DIGITS", "LatencyHistogram"]

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3


class LatencyHistogram:
    """An HDR histogram of latencies in microseconds.

    Values outside ``[1 us, 60 s]`` are clamped to the range (and counted in
    ``clamped``, which is process-local: it is not carried by ``encode()``).
    """

    __slots__ = ("_h", "clamped")

    def __init__(self, _hist: HdrHistogram | None = None) -> None:
        self._h: HdrHistogram = (
            _hist if _hist is not None else HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        )
        self.clamped = 0

    # ---------------------------------------------------------------- recording

    def record_us(self, us: int, count: int = 1) -> None:
        """Record ``count`` occurrences of a latency of ``us`` microseconds."""
        if us < LOWEST_US:
            us = LOWEST_US
            self.clamped += count
        elif us > HIGHEST_US:
            us = HIGHEST_US
            self.clamped += count
        self._h.record_value(us, count)

    def record_s(self, seconds: float) -> None:
        """Record a latency given in seconds."""
        self.record_us(round(seconds * 1e6))

    def record_many_s(self, seconds: Iterable[float]) -> None:
        """Record many latencies given in seconds (values are counted first: fast in bulk)."""
        for us, n in collections.Counter(round(s * 1e6) for s in seconds).items():
            self.record_us(us, n)

    # ---------------------------------------------------------------- merging

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram."""
        self._h.add(other._h)
        self.clamped += other.clamped

    def encode(self) -> bytes:
        """Compressed, base64 HdrHistogram encoding (portable across processes/languages)."""
        data: bytes = self._h.encode()
        return data

    @classmethod
    def decode(cls, data: bytes) -> LatencyHistogram:
        """Inverse of :meth:`encode`."""
        return cls(HdrHistogram.decode(data))

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable through the HDR encoding (results travel between processes).
        return (_restore, (self.encode(), self.clamped))

    @classmethod
    def merged(cls, parts: Iterable[LatencyHistogram | bytes]) -> LatencyHistogram:
        """A new histogram holding the sum of ``parts`` (histograms or encodings)."""
        out = cls()
        for part in parts:
            out.merge(cls.decode(part) if isinstance(part, bytes) else part)
        return out

    # ---------------------------------------------------------------- reading

    @property
    def count(self) -> int:
        total: int = self._h.get_total_count()
        return total

    def percentile_us(self, percentile: float) -> int:
        """Value at ``percentile`` (0..100) in microseconds; 0 if empty."""
        if self.count == 0:
            return 0
        value: int = self._h.get_value_at_percentile(percentile)
        return value

    def percentile_ms(self, percentile: float) -> float:
        return self.percentile_us(percentile) / 1000.0

    def p50_ms(self) -> float:
        return self.percentile_ms(50.0)

    def p99_ms(self) -> float:
        return self.percentile_ms(99.0)

    def p999_ms(self) -> float:
        return self.percentile_ms(99.9)

    def max_ms(self) -> float:
        if self.count == 0:
            return 0.0
        top: int = self._h.get_max_value()  # highest equivalent value of the max bucket
        return top / 1000.0

    def min_ms(self) -> float:
        if self.count == 0:
            return 0.0
        low: int = self._h.get_min_value()
        return low / 1000.0

    def mean_ms(self) -> float:
        if self.count == 0:
            return 0.0
        return float(self._h.get_mean_value()) / 1000.0

    def summary(self) -> dict[str, float | int]:
        """``count``, ``min/mean/p50/p90/p99/p99.9/max`` in ms, and ``clamped``."""
        return {
            "count": self.count,
            "min_ms": self.min_ms(),
            "mean_ms": round(self.mean_ms(), 4),
            "p50_ms": self.p50_ms(),
            "p90_ms": self.percentile_ms(90.0),
            "p99_ms": self.p99_ms(),
            "p99.9_ms": self.p999_ms(),
            "max_ms": self.max_ms(),
            "clamped": self.clamped,
        }

    def __repr__(self) -> str:
        return (
            f"LatencyHistogram(count={self.count}, p50={self.p50_ms()}ms, p99={self.p99_ms()}ms, "
            f"p99.9={self.p999_ms()}ms, max={self.max_ms()}ms)"
        )


def _restore(data: bytes, clamped: int) -> LatencyHistogram:
    hist = LatencyHistogram.decode(data)
    hist.clamped = clamped
    return hist
