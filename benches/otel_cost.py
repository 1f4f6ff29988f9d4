"""The cost of one OpenTelemetry collection of seawall's instruments in a loaded process (the
load of benches/scrape_cost.py: a Limiter holding 1,000,000 keys, a rules engine with 100
rules), through the real SDK's InMemoryMetricReader. Run: ``python benches/otel_cost.py``
(needs ``opentelemetry-sdk``, in the ``dev`` extra)."""

from __future__ import annotations

import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from scrape_cost import loaded_process

import seawall.otel


def main() -> None:
    limiter, engine = loaded_process()
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
