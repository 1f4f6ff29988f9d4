"""The Python→Rust hot path alone: ns per call of the cheapest seawall decisions.

Used to choose between an abi3 (stable ABI) build and a per-version build: run it under each build.
``python benches/hot_path.py`` (``--keys-only`` prints only the issue 18 many-keys section).

The many-keys section (issue 18, gaps 2 and 3) prints, for ``Limiter.allow`` and
``ClientRateLimiter.try_consume``, a decision on an existing key among 100,000 against the same
decision on one hot key, the ratio with its bar (<= 1.3x), and the bytes per key at 1,000,000 keys
(RSS growth, one fresh process each, ``benches/memory_per_key.py``) with its bar. Both loops have
the same shape (``for k in keys: f(k)`` over a pre-built list of 100,000 references), so that
neither pays for building key strings. The 100,000 keys are inserted in a random order and then
visited in the order they were allocated: the key strings are read sequentially (as a server's
freshly built key would be in cache), while the store's records are visited at random.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from seawall import ClientRateLimiter, Limiter, TokenBucket, TokenBucketConfig

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


MANY = 100_000
PASSES = 10
RATIO_BAR = 1.3
BYTES_BAR = {"Limiter": 96.0, "ClientRateLimiter": None}


def per_call_ns(f: Callable[[str], object], keys: list[str]) -> float:
    """Best of ``REPEATS`` of ``PASSES`` passes over ``keys`` (GC off), in ns per call."""
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in range(PASSES):
                for k in keys:
                    f(k)
            best = min(best, (time.perf_counter_ns() - start) / (PASSES * len(keys)))
        finally:
            gc.enable()
    return best


def bytes_per_key(config: int) -> float:
    """RSS growth per key at 1,000,000 7-character keys, in a fresh process."""
    script = Path(__file__).with_name("memory_per_key.py")
    out = subprocess.run(
        [sys.executable, str(script), "--one", str(config), "7"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[1])


def many_keys() -> None:
    """Issue 18 gaps 2 and 3: 100,000 keys against one hot key, and bytes per key."""
    keys = [f"client-{i}" for i in range(MANY)]
    shuffled = random.Random(18).sample(keys, len(keys))
    hot = [keys[7]] * MANY
    limiter = Limiter("1000000000/second", max_keys=1_000_000)
    clients = ClientRateLimiter(BIG, max_clients=1_000_000)
    types = [("Limiter", limiter.allow, 1), ("ClientRateLimiter", clients.try_consume, 0)]
    for _, f, _ in types:
        for k in shuffled:
            f(k)
    print(f"# {MANY:,} keys vs one hot key: ns per sync decision, best of {REPEATS}")
    for name, f, config in types:
        # Alternate, so that a busy moment on the machine weighs on both.
        hot_ns = min(per_call_ns(f, hot) for _ in range(2))
        many_ns = min(per_call_ns(f, keys) for _ in range(2))
        ratio = many_ns / hot_ns
        per_key = bytes_per_key(config)
        bar = BYTES_BAR[name]
        met = "met" if bar is None or per_key <= bar else "NOT met"
        bytes_note = f"(bar <= {bar:.0f} B: {met})" if bar is not None else "(no bar)"
        print(
            f"{name:18s} hot {hot_ns:6.1f} ns  100k {many_ns:6.1f} ns  ratio {ratio:4.2f}x "
            f"(bar <= {RATIO_BAR}x: {'met' if ratio <= RATIO_BAR else 'NOT met'})  "
            f"{per_key:5.0f} B/key at 1M {bytes_note}"
        )


def main() -> None:
    if "--keys-only" in sys.argv:
        many_keys()
        return
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
    many_keys()


if __name__ == "__main__":
    main()
