"""The cost of one Prometheus scrape of seawall's collector in a loaded process: one Limiter
holding 1,000,000 keys and a rules engine with 100 rules (issue 17's bar: under 50 ms, output
bounded). Run: ``python benches/scrape_cost.py`` (needs the ``prometheus`` extra)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from seawall import Limiter
from seawall.prometheus import register
from seawall.rules import RulesEngine


def loaded_process() -> tuple[Limiter, RulesEngine]:
    """The load both collection benches read: a Limiter holding 1,000,000 keys and a rules
    engine with 100 rules, each decided once (``benches/otel_cost.py`` reuses it)."""
    limiter = Limiter("100/second; 10000/day", max_keys=1_000_000)
    for i in range(1_000_000):
        limiter.hit(f"client-{i}")
    engine = RulesEngine()
    for i in range(100):
        engine.add_rule(
            {"name": f"rule-{i}", "scope": "per_user", "rate": 10, "window_seconds": 60}
        )
        engine.check(f"rule-{i}", "user:x")
    return limiter, engine


def main() -> None:
    limiter, engine = loaded_process()
    registry = CollectorRegistry()
    register(registry)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        text = generate_latest(registry)
        times.append(time.perf_counter() - start)
    times.sort()
    print(f"keys held: {len(limiter):,}; rules: {len(engine.rules())}")
    print(f"scrape: median {times[10] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms (20 scrapes)")
    lines = len(text.splitlines())
    print(f"output: {len(text):,} bytes, {lines:,} lines")


if __name__ == "__main__":
    main()
