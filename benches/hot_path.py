"""The Python→Rust hot path alone: ns per call of the cheapest seawall decisions.

Used to choose between an abi3 (stable ABI) build and a per-version build: run it under each build.
``python benches/hot_path.py``
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from collections.abc import Callable

from seawall import ClientRateLimiter, TokenBucket, TokenBucketConfig

N = 1_000_000
REPEATS = 5
BIG = TokenBucketConfig(capacity=10**12, refill_rate=1e9, initial_tokens=10**12)


def best_ns(run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - start) / N)
    return best


def main() -> None:
    bucket = TokenBucket(BIG)
    limiter = ClientRateLimiter(BIG)
    keys = [f"client-{i}" for i in range(100_000)]
    for k in keys:
        limiter.try_consume(k)
    try_consume = bucket.try_consume
    client_consume = limiter.try_consume

    def bucket_sync() -> None:
        for _ in range(N):
            try_consume()

    def client_sync_hot() -> None:
        for _ in range(N):
            client_consume("client-7")

    def client_sync_100k() -> None:
        for i in range(N):
            client_consume(keys[i % 100_000])

    def awaited(coro_fn: Callable[[], object]) -> Callable[[], None]:
        async def loop() -> None:
            for _ in range(N):
                await coro_fn()  # type: ignore[misc]

        return lambda: asyncio.run(loop())

    rows = [
        ("TokenBucket.try_consume()", best_ns(bucket_sync)),
        ("await TokenBucket.consume()", best_ns(awaited(bucket.consume))),
        ("ClientRateLimiter.try_consume(hot key)", best_ns(client_sync_hot)),
        ("ClientRateLimiter.try_consume(100k keys)", best_ns(client_sync_100k)),
    ]
    print(f"# {platform.python_implementation()} {sys.version.split()[0]}, {platform.machine()}")
    for name, ns in rows:
        print(f"{name:45s} {ns:8.1f} ns")


if __name__ == "__main__":
    main()
