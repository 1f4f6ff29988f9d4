"""seawall.otel through the real OpenTelemetry SDK (``MeterProvider`` + ``InMemoryMetricReader``):
values exact against objects driven on the manual clock, one ``collect()`` per collection cycle,
no double counting, stop, histograms, and attributes that are never a client key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)

import seawall.otel
from seawall import Backpressure, CircuitBreaker, Limiter, _metrics_model
from seawall._metrics_model import Family, Histogram
from seawall.concurrency import ConcurrencyLimiter
from seawall.rules import RulesEngine
from seawall.testing import ManualClock

Points = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def provider() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def read(reader: InMemoryMetricReader) -> tuple[Points, dict[str, Any]]:
    """Every data point of seawall's meter, and each metric's data (for its type and unit)."""
    points: Points = {}
    metrics: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "seawall"
            for m in sm.metrics:
                metrics[m.name] = m
                for p in m.data.data_points:
                    assert not isinstance(p, HistogramDataPoint)
                    assert isinstance(p, NumberDataPoint)
                    key = (m.name, tuple(sorted((k, str(v)) for k, v in p.attributes.items())))
                    points[key] = p.value
    return points, metrics


def point(points: Points, name: str, **attributes: str) -> float:
    return points[(name, tuple(sorted(attributes.items())))]


@pytest.fixture
def collects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times seawall.otel called the real ``collect()``."""
    calls = [0]
    real = seawall.otel.collect

    def counting() -> list[Family]:
        calls[0] += 1
        return real()

    monkeypatch.setattr(seawall.otel, "collect", counting)
    yield calls


def test_values_types_and_units_match_the_objects(collects: list[int]) -> None:
    clock = ManualClock()
    limiter = Limiter("3/second; 19/minute", clock=clock)
    for _ in range(5):
        limiter.hit("client-otel")
    breaker = CircuitBreaker("otel-db", failure_threshold=1, clock=clock, replace=True)
    with pytest.raises(RuntimeError), breaker:
        raise RuntimeError("down")
    engine = RulesEngine(clock=clock)
    engine.add_rule({"name": "otel-api", "scope": "per_user", "rate": 1, "window_seconds": 60})
    engine.check("otel-api", "user:otel")
    engine.check("otel-api", "user:otel")
    bp = Backpressure("otel-bp", max_concurrency=6, clock=clock)
    concurrency = ConcurrencyLimiter(9, clock=clock)
    permit = concurrency.try_acquire()

    mp, reader = provider()
    handle = seawall.otel.instrument(mp)
    before = collects[0]
    points, metrics = read(reader)
    # One snapshot for the whole cycle, however many instruments read it.
    assert collects[0] - before == 1 and len(handle.instruments) > 10

    lim = {"limiter": "3/second; 19/minute", "store": "memory"}
    assert point(points, "seawall_limiter_decisions", **lim, outcome="allowed") == 3
    assert point(points, "seawall_limiter_decisions", **lim, outcome="denied") == 2
    assert point(points, "seawall_limiter_keys", **lim) == 1
    assert point(points, "seawall_breaker_state", breaker="otel-db", state="open") == 1
    assert point(points, "seawall_breaker_calls", breaker="otel-db", outcome="failures") == 1
    assert point(points, "seawall_breaker_opened", breaker="otel-db") == 1
    assert point(points, "seawall_backpressure_limit", handler="otel-bp") == bp.limit == 6
    denied = [
        v
        for (name, attrs), v in points.items()
        if name == "seawall_rule_requests" and ("rule", "otel-api") in attrs
    ]
    assert sorted(denied) == [1, 1]  # one allowed, one denied
    assert any(
        name == "seawall_concurrency_in_flight" and v == 1 for (name, _), v in points.items()
    )
    # Counters are monotonic sums, additive gauges non-monotonic sums, the others gauges.
    decisions = metrics["seawall_limiter_decisions"].data
    assert isinstance(decisions, Sum) and decisions.is_monotonic
    keys = metrics["seawall_limiter_keys"].data
    assert isinstance(keys, Sum) and not keys.is_monotonic
    assert isinstance(metrics["seawall_breaker_state"].data, Gauge)
    assert isinstance(metrics["seawall_backpressure_limit"].data, Gauge)
    # Attributes are object names only.
    values = {v for _, attrs in points for _, v in attrs}
    assert not {v for v in values if "client-otel" in v or "user:otel" in v}

    # The next cycle sees the objects' new counts, again with one collect().
    limiter.hit("client-otel")
    clock.advance(60)
    limiter.hit("client-otel")
    before = collects[0]
    points, _ = read(reader)
    assert collects[0] - before == 1
    assert point(points, "seawall_limiter_decisions", **lim, outcome="allowed") == 4
    assert point(points, "seawall_limiter_decisions", **lim, outcome="denied") == 3
    assert permit is not None
    handle.stop()


def test_instrument_twice_counts_once_and_stop_is_idempotent(collects: list[int]) -> None:
    limiter = Limiter("2/second; 11/minute", clock=ManualClock())
    for _ in range(3):
        limiter.hit("client-twice")
    mp, reader = provider()
    first = seawall.otel.instrument(mp)
    assert seawall.otel.instrument(mp) is first and first.active
    points, _ = read(reader)
    lim = {"limiter": "2/second; 11/minute", "store": "memory"}
    assert point(points, "seawall_limiter_decisions", **lim, outcome="allowed") == 2

    first.stop()
    first.stop()
    before = collects[0]
    points, _ = read(reader)
    assert not points and collects[0] == before and not first.active
    # Started again by a second instrument(): the same instruments, not new ones.
    assert seawall.otel.instrument(mp) is first and first.active
    points, _ = read(reader)
    assert point(points, "seawall_limiter_decisions", **lim, outcome="denied") == 1
    first.stop()


def test_each_reader_gets_its_own_snapshot(collects: list[int]) -> None:
    limiter = Limiter("1/minute; 3/hour", clock=ManualClock())
    limiter.hit("client-two-readers")
    a, b = InMemoryMetricReader(), InMemoryMetricReader()
    handle = seawall.otel.instrument(MeterProvider(metric_readers=[a, b]))
    lim = {"limiter": "1/minute; 3/hour", "store": "memory"}
    before = collects[0]
    assert point(read(a)[0], "seawall_limiter_decisions", **lim, outcome="allowed") == 1
    limiter.hit("client-two-readers")
    assert point(read(b)[0], "seawall_limiter_decisions", **lim, outcome="denied") == 1
    assert collects[0] - before == 2
    handle.stop()


def test_histograms_as_bucket_sum_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenTelemetry API has no asynchronous histogram: a histogram family (handled
    generically, whichever reader yields it) becomes three observable counters."""

    def latency(objs: list[Any]) -> Iterator[Family]:
        family = Family("seawall_test_latency_seconds", "histogram", "A test.", ("limiter",))
        family.unit = "seconds"
        family.add(["x"], Histogram(((0.001, 2), (0.01, 5), (float("inf"), 6)), 0.125, 6))
        yield family

    monkeypatch.setattr(_metrics_model, "_READERS", (*_metrics_model._READERS, latency))
    mp, reader = provider()
    handle = seawall.otel.instrument(mp)
    points, metrics = read(reader)
    name = "seawall_test_latency_seconds"
    assert point(points, f"{name}_bucket", limiter="x", le="0.001") == 2
    assert point(points, f"{name}_bucket", limiter="x", le="0.01") == 5
    assert point(points, f"{name}_bucket", limiter="x", le="+Inf") == 6
    assert point(points, f"{name}_sum", limiter="x") == 0.125
    assert point(points, f"{name}_count", limiter="x") == 6
    assert metrics[f"{name}_sum"].unit == "s" and metrics[f"{name}_count"].unit == ""
    assert all(metrics[f"{name}_{s}"].data.is_monotonic for s in ("bucket", "sum", "count"))
    handle.stop()


def test_bad_meter_provider() -> None:
    with pytest.raises(TypeError, match="meter_provider"):
        seawall.otel.instrument("http://collector")  # type: ignore[arg-type]


def test_the_global_provider_set_before_or_after() -> None:
    """Without a provider: the API's global one. Instruments made while it is still the API's
    proxy report once an SDK provider is set; instrument() again is the same handle."""
    code = """
import seawall, seawall.otel
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from seawall.testing import ManualClock

handle = seawall.otel.instrument()
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
assert seawall.otel.instrument() is handle
limiter = seawall.Limiter("3/second; 8/minute", clock=ManualClock())
for _ in range(4):
    limiter.hit("client-global")
data = reader.get_metrics_data()
points = {
    (m.name, tuple(sorted(p.attributes.items()))): p.value
    for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    for p in m.data.data_points
}
key = (
    "seawall_limiter_decisions",
    (("limiter", "3/second; 8/minute"), ("outcome", "denied"), ("store", "memory")),
)
print(points[key])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr
