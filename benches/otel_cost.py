"""The cost of one OpenTelemetry collection of seawall's instruments in a loaded process (the
load of benches/scrape_cost.py: a Limiter holding 1,000,000 keys, a rules engine with 100
rules), through the real SDK's InMemoryMetricReader. Run: ``python benches/otel_cost.py``
(needs ``opentelemetry-sdk``, in the ``dev`` extra)."""

from __future__ import annotations

import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import seawall.otel
from seawall import Limiter
from seawall.rules import RulesEngine


def main() -> None:
    limiter = Limiter("100/second; 10000/day", max_keys=1_000_000)
    for i in range(1_000_000):
        limiter.hit(f"client-{i}")
    engine = RulesEngine()
    for i in range(100):
        engine.add_rule(
            {"name": f"rule-{i}", "scope": "per_user", "rate": 10, "window_seconds": 60}
        )
        engine.check(f"rule-{i}", "user:x")
    reader = InMemoryMetricReader()
    handle = seawall.otel.instrument(MeterProvider(metric_readers=[reader]))
    times = []
    points = 0
    for _ in range(20):
        start = time.perf_counter()
        data = reader.get_metrics_data()
        times.append(time.perf_counter() - start)
        assert data is not None
        points = sum(
            len(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
    times.sort()
    print(f"keys held: {len(limiter):,}; rules: {len(engine.rules())}")
    print(f"instruments: {len(handle.instruments)}; data points: {points:,}")
    print(f"collection: median {times[10] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms (20)")
    handle.stop()


if __name__ == "__main__":
    main()
