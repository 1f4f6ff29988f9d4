"""The cost of counting who is being limited: a refused ``Limiter.hit`` with the top-K of refused
keys off (``top_keys=0``) and on (the default 100, and 1,000), for a few hot keys refused again
and again (held: one lookup) and for a flood of distinct keys (each one evicts the smallest), and
an admitted hit for comparison (its path does not touch the top-K). Interleaved rounds, best of
each. Run: ``python benches/top_keys_cost.py`` (a release build: ``maturin develop --release``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from seawall import Limiter
from seawall.testing import ManualClock

N = 200_000
ROUNDS = 7


def refused(top_keys: int, keys: list[str]) -> Callable[[], float]:
    """ns per refused hit over ``keys`` (each already out of budget)."""
    limiter = Limiter("1/hour", clock=ManualClock(), top_keys=top_keys, max_keys=len(keys) + 1)
    for key in set(keys):
        limiter.hit(key)
    hit = limiter.hit

    def run() -> float:
        start = time.perf_counter_ns()
        for key in keys:
            hit(key)
        return (time.perf_counter_ns() - start) / len(keys)

    return run


def admitted(top_keys: int) -> Callable[[], float]:
    limiter = Limiter("1000000000/second", clock=ManualClock(), top_keys=top_keys)
    keys = [f"ip:10.0.{i >> 8}.{i & 255}" for i in range(1000)] * (N // 1000)
    hit = limiter.hit

    def run() -> float:
        start = time.perf_counter_ns()
        for key in keys:
            hit(key)
        return (time.perf_counter_ns() - start) / len(keys)

    return run


def main() -> None:
    hot = [f"ip:203.0.113.{i % 10}" for i in range(N)]
    flood = [f"ip:10.{i >> 16}.{(i >> 8) & 255}.{i & 255}" for i in range(N)]
    cases = {
        f"{what}, top_keys={k}": make
        for k in (0, 100, 1000)
        for what, make in (
            ("refused, 10 hot keys", lambda k=k: refused(k, hot)),
            ("refused, 200k distinct keys", lambda k=k: refused(k, flood)),
            ("admitted", lambda k=k: admitted(k)),
        )
    }
    best = {name: float("inf") for name in cases}
    for _ in range(ROUNDS):  # interleaved: every case sees the same machine load
        for name, make in cases.items():
            best[name] = min(best[name], make()())
    for name in sorted(best, key=lambda n: (n.split(",")[0], n)):
        print(f"{name:45s} {best[name]:7.1f} ns per hit (best of {ROUNDS})")


if __name__ == "__main__":
    main()
