"""The gateway's operating figures: what the tap path counts (cheaply: a dict increment and a
bucket increment per tap), and their export as Prometheus metrics at scrape time.

Nothing on the tap path touches prometheus-client: `TapMetrics.observe` updates plain ints, and
`GatewayCollector` turns them, the store's, the actor registry's and the connections' figures
into metric families only when `/metrics` is scraped. Each gateway has its own registry, so
several gateways in one process (tests) do not mix their figures.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: Fine latency buckets: upper bounds from 50 µs to about 14 s, each 2^(1/4) times the last, so
#: a quantile read from them is within 19 % of the true one.
FINE_BOUNDS_S: Final = tuple(50e-6 * 2 ** (i / 4) for i in range(73))
#: Every fourth fine bound (each twice the last): what Prometheus sees.
EXPORT_BOUNDS_S: Final = FINE_BOUNDS_S[::4]
#: Distinct (kind, result, reason) label sets counted; more are folded into "other" so a
#: misbehaving terminal cannot grow the metrics without bound.
MAX_TAP_LABELS: Final = 512


class LatencyHistogram:
    """Counts of observed durations per fine bucket (the last bucket holds everything above
    the last bound)."""

    __slots__ = ("count", "counts", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(FINE_BOUNDS_S) + 1)
        self.count = 0
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(FINE_BOUNDS_S, seconds)] += 1
        self.count += 1
        self.sum_s += seconds

    def snapshot(self) -> LatencySnapshot:
        return LatencySnapshot(tuple(self.counts), self.count, self.sum_s)


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    counts: tuple[int, ...]
    count: int
    sum_s: float

    def since(self, earlier: LatencySnapshot) -> LatencySnapshot:
        """What was observed between `earlier` and this snapshot."""
        return LatencySnapshot(
            tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True)),
            self.count - earlier.count,
            self.sum_s - earlier.sum_s,
        )

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile `q` (seconds; 0.0 when empty, inf
        when it lies above the last bound)."""
        if self.count == 0:
            return 0.0
        rank = math.ceil(q * self.count)
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return FINE_BOUNDS_S[i] if i < len(FINE_BOUNDS_S) else math.inf
        return math.inf

    def cumulative(self, bounds: tuple[float, ...] = EXPORT_BOUNDS_S) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs for a Prometheus histogram, ending with +Inf."""
        out: list[tuple[str, int]] = []
        running, i = 0, 0
        for bound in bounds:
            while i < len(FINE_BOUNDS_S) and FINE_BOUNDS_S[i] <= bound:
                running += self.counts[i]
                i += 1
            out.append((repr(bound), running))
        out.append(("+Inf", self.count))
        return out


@dataclass(slots=True)
class TapMetrics:
    """Taps by terminal kind, outcome and reason, and how long each took to answer (from the
    frame's arrival to the answer written), counted by the terminal sessions."""

    outcomes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def observe(self, kind: str, result: str, reason: str, seconds: float) -> None:
        """`result`: approved, declined, duplicate (a retry answered with its original) or
        error (`reason` is then the error code)."""
        key = (kind, result, reason)
        outcomes = self.outcomes
        n = outcomes.get(key)
        if n is None and len(outcomes) >= MAX_TAP_LABELS:
            key = (kind if len(kind) <= 16 else "other", result, "other")
            n = outcomes.get(key)
        outcomes[key] = (n or 0) + 1
        self.latency.observe(seconds)

    def totals(self) -> dict[str, int]:
        """Taps per result."""
        out: dict[str, int] = {}
        for (_, result, _), n in self.outcomes.items():
            out[result] = out.get(result, 0) + n
        return out


@dataclass(frozen=True, slots=True)
class MetricSources:
    """Where the collector reads each figure (closures over the running gateway's parts)."""

    taps: TapMetrics
    store_latency: LatencyHistogram
    store_stats: Callable[[], Mapping[str, float]]
    actors: Callable[[], Mapping[str, int]]
    connections: Callable[[], Mapping[str, int]]
    events: Callable[[], Mapping[str, int]]
    signer: Callable[[], Mapping[str, int]]
    deny_version: Callable[[], int]


class GatewayCollector(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self._s = sources

    def collect(self) -> Iterator[Metric]:
        s = self._s
        taps = CounterMetricFamily(
            "citycard_taps",
            "Taps answered, by terminal kind, result (approved, declined, duplicate, error) and "
            "reason (decline reason or error code)",
            labels=["kind", "result", "reason"],
        )
        declines = CounterMetricFamily(
            "citycard_declines", "Declined taps by reason", labels=["reason"]
        )
        by_reason: dict[str, int] = {}
        for (kind, result, reason), n in list(s.taps.outcomes.items()):
            taps.add_metric([kind, result, reason], n)
            if result == "declined":
                by_reason[reason] = by_reason.get(reason, 0) + n
        for reason, n in sorted(by_reason.items()):
            declines.add_metric([reason], n)
        yield taps
        yield declines
        yield _histogram(
            "citycard_tap_latency_seconds",
            "Time from a tap frame's arrival to its answer being written",
            s.taps.latency.snapshot(),
        )
        yield _histogram(
            "citycard_redis_write_seconds",
            "Round trip of one group-commit pipeline to Redis",
            s.store_latency.snapshot(),
        )
        store = s.store_stats()
        yield _counter("citycard_redis_batches", "Commit pipelines sent", store["batches"])
        yield _counter(
            "citycard_redis_writes", "Card writes sent in commit pipelines", store["writes"]
        )
        yield _gauge(
            "citycard_redis_batch_size_mean", "Mean writes per commit pipeline", store["mean_batch"]
        )
        yield _counter(
            "citycard_redis_failed_batches",
            "Commit pipelines that failed whole",
            store["failed_batches"],
        )
        actors = s.actors()
        yield _gauge("citycard_actors_resident", "Card actors in memory", actors["resident"])
        yield _gauge("citycard_actors_busy", "Card actors with work now", actors["busy"])
        yield _gauge(
            "citycard_mailbox_depth",
            "Messages waiting in card actors' mailboxes",
            actors["mailbox_depth"],
        )
        yield _counter(
            "citycard_actor_activations", "Card actor activations", actors["activations"]
        )
        conns = s.connections()
        yield _gauge("citycard_connections", "Open websocket connections", conns["open"])
        yield _gauge(
            "citycard_terminals_connected", "Authenticated terminals connected", conns["ready"]
        )
        yield _gauge(
            "citycard_connections_unauthenticated",
            "Connections that have not completed hello and proof",
            conns.get("preauth_open", 0),
        )
        yield _counter(
            "citycard_connections_refused_at_accept",
            "Connections dropped at accept by the unauthenticated-connection caps",
            conns.get("preauth_refused", 0),
        )
        yield _counter(
            "citycard_handshake_timeouts",
            "Connections closed for not completing hello and proof in time",
            conns.get("preauth_expired", 0),
        )
        yield _counter(
            "citycard_frames_refused",
            "Frames answered busy unread by the per-connection frame budget",
            conns.get("frames_refused", 0),
        )
        events = s.events()
        yield _gauge(
            "citycard_stream_subscribers",
            "In-process live event subscribers",
            events["subscribers"],
        )
        yield _counter(
            "citycard_stream_dropped", "Live events dropped for slow subscribers", events["dropped"]
        )
        signer = s.signer()
        yield _counter("citycard_signer_restarts", "Key holder restarts", signer.get("restarts", 0))
        yield _gauge(
            "citycard_deny_list_version",
            "Version of the deny list this gateway holds",
            s.deny_version(),
        )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, snap: LatencySnapshot) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=snap.cumulative(), sum_value=snap.sum_s)
