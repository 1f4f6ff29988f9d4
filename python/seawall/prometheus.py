"""``seawall.prometheus``: seawall's counters for Prometheus, read at scrape time.

``seawall.prometheus.register()`` adds a :class:`SeawallCollector` to ``prometheus_client``'s
registry; ``metrics_app()`` is an ASGI app to mount at ``/metrics``. The collector reads the
``stats()`` of every live limiter, circuit breaker, backpressure handler, concurrency limiter,
rules engine, middleware and MCP tool of this process (``seawall._metrics_model``, shared with
``seawall.otel``): nothing is counted per decision in Python. Labels are object names only,
never a client key. Needs the ``prometheus`` extra (``prometheus_client``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from seawall._metrics_model import Family, Histogram, collect

__all__ = ["SeawallCollector", "metrics_app", "register"]


def _translate(family: Family) -> Metric:
    labels = list(family.labels)
    if family.kind == "counter":
        counter = CounterMetricFamily(family.name, family.doc, labels=labels, unit=family.unit)
        for values, v in family.samples:
            assert not isinstance(v, Histogram)
            counter.add_metric(list(values), v)
        return counter
    if family.kind == "gauge":
        gauge = GaugeMetricFamily(family.name, family.doc, labels=labels, unit=family.unit)
        for values, v in family.samples:
            assert not isinstance(v, Histogram)
            gauge.add_metric(list(values), v)
        return gauge
    histogram = HistogramMetricFamily(family.name, family.doc, labels=labels, unit=family.unit)
    for values, h in family.samples:
        assert isinstance(h, Histogram)
        buckets = [("+Inf" if b == float("inf") else repr(b), c) for b, c in h.buckets]
        histogram.add_metric(list(values), buckets, h.sum)
    return histogram


class SeawallCollector(Collector):
    """A ``prometheus_client`` collector of every live seawall object (see the module)."""

    def collect(self) -> Iterator[Metric]:
        for family in collect():
            yield _translate(family)


def register(registry: CollectorRegistry = REGISTRY) -> SeawallCollector:
    """Adds a :class:`SeawallCollector` to ``registry`` (the default one); returns it."""
    collector = SeawallCollector()
    registry.register(collector)
    return collector


def metrics_app(
    registry: CollectorRegistry | None = None, *, top_keys: bool = False
) -> Callable[..., Any]:
    """An ASGI app serving ``registry`` (default: a new one holding a collector) in the
    Prometheus text format; mount it at ``/metrics``.

    ``top_keys=True`` also answers ``<mount>/top-keys`` with JSON of every live limiter's most
    refused keys (``seawall._top_keys.report``), which ``python -m seawall top`` shows. Off by
    default: **it shows client keys (IPs, user ids), so mount an app with it behind
    authentication.** The keys are never part of the Prometheus output."""
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
        register(registry)
    app = make_asgi_app(registry)
    if not isinstance(top_keys, bool):
        raise TypeError(f"top_keys must be a bool, got {type(top_keys).__name__}")
    if top_keys:
        from seawall._top_keys import with_top_keys

        return with_top_keys(app)
    return app
